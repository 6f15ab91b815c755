"""launch sim vllm|ollama|lmstudio|plug …: simulated servers for tests and `launch demo`."""
from __future__ import annotations

import importlib

import typer

SIM_MODULES = ("launcher.cli.sim_vllm", "launcher.cli.sim_laptop", "launcher.cli.sim_plug")


def register(app: typer.Typer) -> None:
    sim_app = typer.Typer(help="Run a simulated server (vLLM, Ollama, LM Studio, smart plug, Redfish).",
                          no_args_is_help=True)
    for mod in SIM_MODULES:
        importlib.import_module(mod).register(sim_app)
    app.add_typer(sim_app, name="sim")
