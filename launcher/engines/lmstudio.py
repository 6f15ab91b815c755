"""LM Studio: the server at 127.0.0.1:1234 (`lms server start`), models loaded with a context.

Pure helpers for the REST API (v1 since 0.4, v0 since 0.3.6) and the `lms` CLI. A requested context
can be silently reduced by LM Studio: what counts is what the models list says was loaded.
Facts: ../shared/reference/laptop-engines.md.
"""
from __future__ import annotations

import platform

from launcher.engines.base import Engine, NodeCtx, ProcSpec

DEFAULT_PORT = 1234


class LmStudio(Engine):
    name = "lmstudio"
    api_key_env = None
    default_port = DEFAULT_PORT
    unsupported = {"multi-node": "LM Studio serves from one machine"}

    def processes(self, recipe, nodes: list[NodeCtx], port: int) -> list[ProcSpec]:
        return [ProcSpec("server", nodes[0].name, "server", server_start_argv(port), port=port)]


ENGINE = LmStudio()


def server_start_argv(port: int) -> list[str]:
    """`lms server start` returns once LM Studio's daemon serves (it is not a foreground server)."""
    return ["lms", "server", "start", "--port", str(port)]


def load_argv(key: str, context: int | None, *, gpu: str | float | None = None,
              identifier: str | None = None) -> list[str]:
    argv = ["lms", "load", key, "--yes"]
    if context:
        argv += ["--context-length", str(context)]
    if gpu is not None:
        argv += ["--gpu", str(gpu)]
    if identifier:
        argv += ["--identifier", identifier]
    return argv


def unload_argv(identifier: str) -> list[str]:
    return ["lms", "unload", identifier]


def ps_argv() -> list[str]:
    return ["lms", "ps", "--json"]


def loaded_from_ps(items, key: str) -> tuple[str, int] | None:
    """(identifier, context really loaded) from `lms ps --json` (a list of instances with `identifier`,
    `modelKey`, `contextLength`), matched by identifier or model key; None when absent."""
    for it in items if isinstance(items, list) else []:
        if isinstance(it, dict) and key in (it.get("identifier"), it.get("modelKey")) and it.get("contextLength"):
            return str(it.get("identifier") or key), int(it["contextLength"])
    return None


def load_body(key: str, context: int | None) -> dict:
    """POST /api/v1/models/load body."""
    body: dict = {"model": key}
    if context:
        body["context_length"] = int(context)
    return body


def install_hint(system: str | None = None) -> str:
    system = system or platform.system()
    boot = "`~/.lmstudio/bin/lms bootstrap`" if system != "Windows" else "`%USERPROFILE%/.lmstudio/bin/lms bootstrap`"
    return (f"start LM Studio's server (Developer tab → Start server), or install LM Studio from "
            f"https://lmstudio.ai and put its CLI on PATH with {boot}")


def rows(doc) -> list[dict]:
    """Model rows of a v1 ({"models": [...]}) or v0 ({"data": [...]}) answer."""
    if isinstance(doc, dict):
        for k in ("models", "data"):
            if isinstance(doc.get(k), list):
                return [r for r in doc[k] if isinstance(r, dict)]
    if isinstance(doc, list):
        return [r for r in doc if isinstance(r, dict)]
    return []


def find_model(doc, key: str) -> dict | None:
    """The row for a model key (v1 `key`, v0 `id`); for v0 prefer the loaded row (rows repeat)."""
    found = [r for r in rows(doc) if key in (r.get("key"), r.get("id"))
             or any(i.get("id") == key for i in r.get("loaded_instances") or [] if isinstance(i, dict))]
    loaded = [r for r in found if r.get("state") == "loaded" or r.get("loaded_instances")]
    return (loaded or found or [None])[0]


def loaded(doc, key: str) -> tuple[str, int] | None:
    """(instance id, context really loaded) for a model, from v1 loaded_instances[].config.context_length
    or v0 loaded_context_length (state "loaded"); None when not loaded."""
    for r in rows(doc):
        insts = r.get("loaded_instances")
        if isinstance(insts, list):
            for inst in insts:
                if not isinstance(inst, dict):
                    continue
                if key in (r.get("key"), inst.get("id")):
                    ctx = (inst.get("config") or {}).get("context_length")
                    if ctx:
                        return str(inst.get("id") or r.get("key")), int(ctx)
        elif r.get("id") == key and r.get("state") == "loaded" and r.get("loaded_context_length"):
            return key, int(r["loaded_context_length"])
    return None


def trained_for_tools(row: dict | None) -> bool | None:
    """v1 capabilities.trained_for_tool_use (None when the row does not say)."""
    caps = (row or {}).get("capabilities")
    if isinstance(caps, dict) and "trained_for_tool_use" in caps:
        return bool(caps["trained_for_tool_use"])
    if isinstance(caps, list):  # v0 lists capabilities as names
        return "tool_use" in caps
    return None


def max_context(row: dict | None) -> int | None:
    v = (row or {}).get("max_context_length")
    return int(v) if v else None
