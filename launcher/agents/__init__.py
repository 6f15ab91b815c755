"""Coding agents: config writers and the command that runs each (opencode, codex, claude).

get(name) returns an Agent; see launcher.agents.base for configure()/prepare(), exec_agent() and
run_supervised().
"""
from __future__ import annotations

import difflib
import importlib

from launcher.agents.base import (Agent, ConfigResult, effective_limits, exec_agent,  # noqa: F401
                                  run_supervised)

_REGISTRY = {
    "opencode": ("launcher.agents.opencode", "OpenCode"),
    "codex": ("launcher.agents.codex", "Codex"),
    "claude": ("launcher.agents.claude", "Claude"),
}


def names() -> list[str]:
    return list(_REGISTRY)


def get(name: str) -> Agent:
    """The Agent called name. An unknown name raises InputError listing the valid ones."""
    if name not in _REGISTRY:
        from launcher.errors import InputError

        close = difflib.get_close_matches(str(name), names(), n=1)
        raise InputError(f"no agent named '{name}'", where="--agent",
                         fix=(f"did you mean '{close[0]}'? " if close else "") +
                             f"valid agents: {', '.join(names())} (or none: serve only)")
    module, cls = _REGISTRY[name]
    return getattr(importlib.import_module(module), cls)()
