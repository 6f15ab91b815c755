"""`launch sim ollama …` and `launch sim lmstudio …`: simulated laptop servers in the foreground
(Ctrl-C or SIGTERM stops them)."""
from __future__ import annotations

from typing import List, Optional

import typer


def _serve(sim, label: str) -> None:
    import signal
    import threading

    stop = threading.Event()
    old = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        sim.start()
        print(f"{label} simulator listening on {sim.url}", flush=True)
        while not stop.wait(3600):
            pass
    finally:
        sim.stop()
        for s, h in old.items():
            signal.signal(s, h)


def _port_error(exc: OSError, port: int, what: str):
    from launcher.errors import RuntimeFailure

    return RuntimeFailure(f"cannot listen on port {port}: {exc.strerror}", where=f"launch sim {what}",
                          fix="pick another --port (0: any free port)")


def register(app: typer.Typer) -> None:
    @app.command("ollama")
    def sim_ollama(
        port: int = typer.Option(11434, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
        local: Optional[List[str]] = typer.Option(None, "--local", help="A model already pulled (repeatable)."),
        max_context: Optional[int] = typer.Option(None, "--max-context",
                                                  help="Largest context memory allows; above it the load "
                                                       "steps down by halving, as Ollama does."),
        default_ctx: int = typer.Option(4096, "--default-ctx", help="num_ctx of a model without one."),
        no_ps_context: bool = typer.Option(False, "--no-ps-context",
                                           help="Act like Ollama < 0.9.7 (/api/ps without context_length)."),
        pull_delay: float = typer.Option(0.0, "--pull-delay", help="Seconds between pull progress lines."),
    ):
        """Serve a simulated Ollama (/api/* with NDJSON streams, /v1 chat with tools) until Ctrl-C.
        Registry: qwen3-coder:30b (tools), qwen3:0.6b (tools), gemma3:4b (no tools)."""
        from launcher.errors import InputError
        from launcher.sim.ollama import OllamaSim, default_registry

        known = default_registry()
        for m in local or []:
            if m not in known:
                raise InputError(f"--local {m}: not in the simulated registry", where="launch sim ollama",
                                 fix=f"use one of: {', '.join(known)}")
        try:
            sim = OllamaSim(host, port, local=list(local or []), max_context=max_context,
                            default_ctx=default_ctx, ps_context=not no_ps_context, pull_delay=pull_delay)
        except OSError as exc:
            raise _port_error(exc, port, "ollama") from None
        _serve(sim, "Ollama")

    @app.command("lmstudio")
    def sim_lmstudio(
        port: int = typer.Option(1234, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
        max_context: Optional[int] = typer.Option(None, "--max-context",
                                                  help="Largest context memory allows: a bigger request is "
                                                       "silently reduced to this."),
        report_requested: bool = typer.Option(False, "--report-requested",
                                              help="The load answer echoes the requested context (only the "
                                                   "models list tells the truth)."),
        v0_only: bool = typer.Option(False, "--v0-only", help="Act like LM Studio 0.3.x (no /api/v1)."),
    ):
        """Serve a simulated LM Studio (REST v1 + v0, /v1 chat with tools) until Ctrl-C.
        Models: qwen/qwen3-coder-30b (tools), google/gemma-3-4b."""
        from launcher.sim.lmstudio import LmStudioSim

        try:
            sim = LmStudioSim(host, port, max_loadable_context=max_context, report_requested=report_requested,
                              v1=not v0_only)
        except OSError as exc:
            raise _port_error(exc, port, "lmstudio") from None
        _serve(sim, "LM Studio")
