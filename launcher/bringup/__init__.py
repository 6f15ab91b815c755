"""Bring a planned server up (or attach to it), engine by engine.

Each module exports `up(plan, recipe, *, replace: bool, timeout: float, progress) -> Deployment`.
deploy.py picks the module by plan.engine. Engines (launcher/engines) stay pure data; bring-up code
uses runtimes to run what the engine planned and HTTP to talk to the server.
"""
from __future__ import annotations

import importlib


def module_for(engine: str):
    return importlib.import_module(f"launcher.bringup.{engine}")
