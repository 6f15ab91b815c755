"""`launch sim plug shelly|shelly-gen1|tasmota|homeassistant|redfish`: a simulated power device."""
from __future__ import annotations

from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("plug")
    def sim_plug(
        kind: str = typer.Argument(..., help="shelly (gen2) | shelly-gen1 | tasmota | homeassistant | redfish"),
        port: int = typer.Option(0, "--port", min=0, max=65535, help="Port (0: any free port; printed)."),
        host: str = typer.Option("127.0.0.1", "--host"),
        off: bool = typer.Option(False, "--off", help="Start with the power off."),
        password_env: Optional[str] = typer.Option(None, "--password-env", help="Tasmota/Redfish password from this env var."),
        token_env: Optional[str] = typer.Option(None, "--token-env", help="Home Assistant token from this env var."),
        entity_id: str = typer.Option("switch.node1", "--entity-id"),
        allowable: Optional[str] = typer.Option(None, "--allowable", help="Redfish ResetTypes, comma-separated."),
        record: Optional[str] = typer.Option(None, "--record", help="Append each request as a JSON line here."),
    ):
        """Run a simulated smart plug or Redfish BMC that holds power state and records requests."""
        import json
        import os
        import signal
        import threading

        from launcher.errors import InputError
        from launcher.sim.plug import KINDS, make

        if kind not in KINDS:
            raise InputError(f"unknown simulated device {kind!r}", fix=f"use one of: {', '.join(KINDS)}")
        kw: dict = {"on": not off, "host": host, "port": port}
        secret = os.environ.get(password_env) if password_env else None
        if kind == "tasmota" and secret:
            kw["password"] = secret
        if kind == "redfish":
            if secret:
                kw["password"] = secret
            if allowable:
                kw["allowable"] = [a.strip() for a in allowable.split(",") if a.strip()]
        if kind == "homeassistant":
            kw["entity_id"] = entity_id
            if token_env:
                kw["token"] = os.environ.get(token_env)
        kw["on_change"] = lambda on: print(f"power {'on' if on else 'off'}", flush=True)
        dev = make(kind, **kw)
        if record:
            orig = dev._record

            def rec(req, _orig=orig):
                _orig(req)
                with open(record, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({k: v for k, v in req.items() if k != "authorization"}) + "\n")
            dev._record = rec
        dev.start()
        print(f"simulated {kind} on {dev.url} (power {'on' if dev.on else 'off'})", flush=True)
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        try:
            while not done.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            dev.stop()
