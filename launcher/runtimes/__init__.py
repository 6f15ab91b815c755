"""Runtime registry: where a planned process runs (local | ssh | docker).

`get(name)` returns one shared instance per name (the local runtime keeps its Popen children so it
can reap them). Build a class directly for custom settings (ssh options, docker pull callback).
"""
from __future__ import annotations

import importlib
import threading

from launcher.errors import InputError
from launcher.runtimes.base import CommandResult, ExitInfo, Handle, Runtime

NAMES = ("local", "ssh", "docker")
_CLASSES = {"local": ("launcher.runtimes.local", "LocalRuntime"),
            "ssh": ("launcher.runtimes.ssh", "SshRuntime"),
            "docker": ("launcher.runtimes.docker", "DockerRuntime")}
_instances: dict[str, Runtime] = {}
_lock = threading.Lock()

__all__ = ["NAMES", "get", "runtime_class", "Handle", "ExitInfo", "CommandResult", "Runtime"]


def runtime_class(name: str) -> type[Runtime]:
    if name not in _CLASSES:
        raise InputError(f"unknown runtime '{name}'", fix=f"use one of: {', '.join(NAMES)}")
    module, cls = _CLASSES[name]
    return getattr(importlib.import_module(module), cls)


def get(name: str) -> Runtime:
    """The shared runtime instance for a name. Unknown names raise InputError listing the valid ones."""
    cls = runtime_class(name)
    with _lock:
        if name not in _instances:
            _instances[name] = cls()
        return _instances[name]
