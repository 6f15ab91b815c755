"""The real `launch watchdog` / `launch sim plug` CLIs in subprocesses, on 127.0.0.1."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx

from conftest import LAUNCH, free_port


def test_watchdog_once_dry_run_with_an_inventory(launch, tmp_path):
    from launcher.sim import SimConfig, VllmSim
    from launcher.sim.plug import make

    sim = VllmSim(SimConfig(quiet=True, fail="hang")).start()
    ok = VllmSim(SimConfig(quiet=True)).start()
    with make("shelly") as plug:
        inv = tmp_path / "inv.yaml"
        inv.write_text(f"""name: wdtest
reference: {ok.url}
hosts:
  n1:
    address: 127.0.0.1
    watch: {{url: "{sim.url}"}}
    power: {{driver: shelly, address: "{plug.url}"}}
  n2:
    address: 127.0.0.1
    watch: {{url: "{ok.url}"}}
""")
        journal = tmp_path / "j.jsonl"
        try:
            r = launch("watchdog", str(inv), "--once", "--dry-run", "--failures", "1", "--grace", "0",
                       "--timeout", "2", "--journal", str(journal), timeout=60)
        finally:
            sim.stop()
            ok.stop()
        assert r.returncode == 0, r.stderr
        assert "DRY RUN" in r.stderr and "n2: no usable power driver" in r.stderr
        events = [json.loads(x) for x in journal.read_text().splitlines()]
        would = [e for e in events if e["event"] in ("cycle", "restart")]
        assert would and would[0]["dry_run"] and would[0]["node"] == "n1"
        assert plug.changes == [] and all(r["method"] == "GET" for r in plug.requests)  # nothing switched


def test_install_systemd_writes_a_unit(launch, isolated, tmp_path):
    inv = tmp_path / "inv.yaml"
    inv.write_text("name: x\nhosts:\n  n1:\n    address: 10.0.0.5\n    watch: {url: 'http://10.0.0.5:8000'}\n")
    units = tmp_path / "units"
    r = launch("watchdog", str(inv), "--install", "systemd", "--period", "15", timeout=60,
               env={"LAUNCHER_SYSTEMD_DIR": str(units)})
    assert r.returncode == 0, r.stderr
    text = (units / "launch-watchdog.service").read_text()
    assert "Restart=always" in text and "--period=15" in text and str(inv) in text
    assert "enable --now launch-watchdog.service" in r.stdout


def test_sim_plug_cli_holds_state():
    port = free_port()
    p = subprocess.Popen([*LAUNCH, "sim", "plug", "tasmota", "--port", str(port)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/cm", params={"cmnd": "Power Off"}, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert r.json() == {"POWER": "OFF"}
        assert httpx.get(f"http://127.0.0.1:{port}/cm", params={"cmnd": "Power"}).json() == {"POWER": "OFF"}
    finally:
        p.terminate()
        out, _ = p.communicate(timeout=10)
    assert "power off" in out
