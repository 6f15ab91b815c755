"""Engine registry: one module per serving engine."""
from __future__ import annotations

import importlib

from launcher.errors import InputError

NAMES = ("vllm", "ollama", "lmstudio", "llamacpp", "openai")


def get(name: str):
    if name not in NAMES:
        raise InputError(f"unknown engine '{name}'", fix=f"use one of: {', '.join(NAMES)}")
    return importlib.import_module(f"launcher.engines.{name}").ENGINE
