"""llama.cpp's llama-server: -m, -c, -np, --jinja, KV cache types; the key through LLAMA_API_KEY."""
from __future__ import annotations

import os

from launcher.engines.base import Engine, NodeCtx, ProcSpec


def server_argv(recipe, host: str, port: int) -> list[str]:
    o = recipe.llamacpp
    argv = ["llama-server", "-m", os.path.expanduser(o.gguf), "-c", str(o.ctx), "-np", str(o.parallel),
            "--jinja", "--host", host, "--port", str(port), "-a", recipe.served]
    if o.cache_type_k:
        argv += ["-ctk", o.cache_type_k]
    if o.cache_type_v:
        argv += ["-ctv", o.cache_type_v]
    if o.flash_attn:
        argv += ["-fa", o.flash_attn]
    argv += list(o.extra_args)
    return argv


class LlamaCpp(Engine):
    name = "llamacpp"
    api_key_env = "LLAMA_API_KEY"
    default_port = 8080
    unsupported = {"multi-node": "llama-server serves from one machine (rpc backends are not managed)"}

    def processes(self, recipe, nodes: list[NodeCtx], port: int) -> list[ProcSpec]:
        host = "127.0.0.1" if nodes[0].address in ("127.0.0.1", "localhost", "local") else "0.0.0.0"
        return [ProcSpec("server", nodes[0].name, "server", server_argv(recipe, host, port), port=port)]


ENGINE = LlamaCpp()
