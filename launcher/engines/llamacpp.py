"""llama.cpp's llama-server: -m, -c, -np, --jinja, KV cache types; the key through LLAMA_API_KEY
(llama-server reads it from the environment, so it never appears in argv).

Pure helpers for readiness (/health) and the server's own report (/props, /slots).
Facts: ../shared/reference/laptop-engines.md.
"""
from __future__ import annotations

import os

from launcher.engines.base import Engine, NodeCtx, ProcSpec

DEFAULT_PORT = 8080
ATTACH_PORTS = (8080, 9931)  # the default moved from 8080 to 9931 in newer builds: probe both


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
    default_port = DEFAULT_PORT
    unsupported = {"multi-node": "llama-server serves from one machine (rpc backends are not managed)"}

    def processes(self, recipe, nodes: list[NodeCtx], port: int) -> list[ProcSpec]:
        host = "127.0.0.1" if nodes[0].address in ("127.0.0.1", "localhost", "local") else "0.0.0.0"
        return [ProcSpec("server", nodes[0].name, "server", server_argv(recipe, host, port), port=port)]


ENGINE = LlamaCpp()


def health_state(status: int, body) -> tuple[str, str]:
    """/health answer -> ("ready" | "loading" | "error", message).

    200 {"status":"ok"} is ready; 503 {"error":{"code":503,"message":"Loading model"}} is loading;
    anything else is an error with the server's message."""
    msg = ""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            msg = str(err.get("message") or "")
        elif err:
            msg = str(err)
        if status == 200 and (body.get("status") in ("ok", "no slot available", None)):
            return "ready", str(body.get("status") or "ok")
    if status == 200:
        return "ready", "ok"
    if status == 503 and (not msg or "loading" in msg.lower()):
        return "loading", msg or "Loading model"
    return "error", msg or f"HTTP {status}"


def props_model_path(props: dict | None) -> str | None:
    return (props or {}).get("model_path") or None


def supports_tool_calls(props: dict | None) -> bool | None:
    caps = (props or {}).get("chat_template_caps")
    if isinstance(caps, dict) and "supports_tool_calls" in caps:
        return bool(caps["supports_tool_calls"])
    return None


def same_file(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    try:
        return os.path.samefile(os.path.expanduser(a), os.path.expanduser(b))
    except OSError:
        return os.path.basename(a) == os.path.basename(b)
