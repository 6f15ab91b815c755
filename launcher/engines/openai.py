"""Attach-only: an OpenAI-compatible endpoint launcher does not start (a gateway, a remote vLLM)."""
from __future__ import annotations

from launcher.engines.base import Engine, NodeCtx, ProcSpec


class OpenAI(Engine):
    name = "openai"
    api_key_env = "OPENAI_API_KEY"
    default_port = 443
    unsupported = {"start": "launcher only attaches to this endpoint; start the server yourself"}

    def processes(self, recipe, nodes: list[NodeCtx], port: int) -> list[ProcSpec]:
        return []

    def endpoint(self, recipe, nodes, port) -> str:
        url = recipe.openai.base_url.rstrip("/")
        return url.removesuffix("/v1")


ENGINE = OpenAI()
