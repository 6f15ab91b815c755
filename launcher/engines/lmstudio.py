"""LM Studio: the server at 127.0.0.1:1234 (`lms server start`), models loaded with a context."""
from __future__ import annotations

from launcher.engines.base import Engine, NodeCtx, ProcSpec


class LmStudio(Engine):
    name = "lmstudio"
    api_key_env = None
    default_port = 1234
    unsupported = {"multi-node": "LM Studio serves from one machine"}

    def processes(self, recipe, nodes: list[NodeCtx], port: int) -> list[ProcSpec]:
        return [ProcSpec("server", nodes[0].name, "server", ["lms", "server", "start", "--port", str(port)],
                         port=port)]


ENGINE = LmStudio()
