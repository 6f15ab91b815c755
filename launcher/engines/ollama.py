"""Ollama: `ollama serve` (local runtime) or attach to a running one. The context is fixed through a
derived model created with /api/create (OpenAI-compatible clients cannot set num_ctx)."""
from __future__ import annotations

from launcher.engines.base import Engine, NodeCtx, ProcSpec, _url_host


class Ollama(Engine):
    name = "ollama"
    api_key_env = None
    default_port = 11434
    unsupported = {"tensor-parallel": "Ollama splits layers across local GPUs itself",
                   "multi-node": "Ollama serves from one machine"}

    def processes(self, recipe, nodes: list[NodeCtx], port: int) -> list[ProcSpec]:
        o = recipe.ollama
        env = {"OLLAMA_HOST": f"{_url_host(nodes[0].address)}:{port}",
               "OLLAMA_NUM_PARALLEL": str(o.num_parallel)}
        if o.keep_alive:
            env["OLLAMA_KEEP_ALIVE"] = o.keep_alive
        if o.kv_cache_type:
            env["OLLAMA_KV_CACHE_TYPE"] = o.kv_cache_type
            env["OLLAMA_FLASH_ATTENTION"] = "1"
        return [ProcSpec("server", nodes[0].name, "server", ["ollama", "serve"], env=env, port=port)]


ENGINE = Ollama()
