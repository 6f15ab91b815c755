"""vLLM dies while the two-node Ray head and worker keep running (the same plan): `launch status`
says the server exited, and `launch up` cleans up the leftovers and starts again, without --replace."""
from __future__ import annotations

import json
import signal
import time

import psutil
import yaml

from conftest import run_launch
from deploy_helpers import running_with, simenv, up_json, wait_gone, write_inventory, write_recipe  # noqa: F401


def _server_pids(port: int) -> list[int]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "vllm_cli serve" in cmd and f"--port {port}" in cmd and not cmd.startswith("sh "):
            out.append(p.pid)
    return out


def _up_then_kill_the_server(simenv, name: str):
    """A two-node Ray deployment whose vLLM dies (SIGKILL: no clean-up of its own); Ray keeps running."""
    inv = write_inventory(simenv["dir"], f"{name}-two", {
        "node-a": {"address": "127.0.0.1", "gpus": {"count": 1}, "interface": "lo"},
        "node-b": {"address": "127.0.0.1", "gpus": {"count": 1}, "interface": "lo"}})
    recipe = write_recipe(simenv["dir"], name, hosts=str(inv), nodes=2, backend="ray")
    port = yaml.safe_load(recipe.read_text())["port"]
    cp, d = up_json(recipe, env=simenv["env"])
    assert cp.returncode == 0, cp.stderr
    pids = _server_pids(port)
    assert pids
    for pid in pids:
        psutil.Process(pid).send_signal(signal.SIGKILL)
    end = time.monotonic() + 15
    while _server_pids(port) and time.monotonic() < end:
        time.sleep(0.1)
    assert len(running_with("ray_shim start --block")) == 2
    return recipe, port, d


def test_ray_server_died_status_says_exited_and_up_starts_again(simenv):
    env = simenv["env"]
    try:
        recipe, port, d = _up_then_kill_the_server(simenv, "raydead")

        st = run_launch("status", "--json", env=env)
        assert st.returncode == 0, st.stderr
        row = next(r for r in json.loads(st.stdout) if r["name"] == "raydead")
        assert row["health"] == "server exited", row

        cp2, d2 = up_json(recipe, env=env)
        assert cp2.returncode == 0, cp2.stderr
        assert "different plan" not in cp2.stderr
        assert "server exited" in cp2.stderr and "ray-head@node-a" in cp2.stderr
        assert d2["attached"] is False and d2["plan_hash"] == d["plan_hash"]
        assert len(running_with("ray_shim start --block")) == 2  # the old head and worker were replaced
        assert _server_pids(port)
    finally:
        run_launch("down", "raydead", env=env)
    assert wait_gone(f"--port {port}") == [] and wait_gone("start --block") == []


def test_a_server_answering_without_a_record_here_is_never_stopped_without_replace(simenv):
    """The Ray head and worker are recorded here, the server is not (what a `docker exec` started from
    another machine looks like: its record is moved away here) and it answers: `launch up` refuses instead
    of restarting it."""
    from pathlib import Path

    from launcher.state import processes_dir

    env = simenv["env"]
    inv = write_inventory(simenv["dir"], "else-two", {
        "node-a": {"address": "127.0.0.1", "gpus": {"count": 1}, "interface": "lo"},
        "node-b": {"address": "127.0.0.1", "gpus": {"count": 1}, "interface": "lo"}})
    recipe = write_recipe(simenv["dir"], "rayelse", hosts=str(inv), nodes=2, backend="ray")
    port = yaml.safe_load(recipe.read_text())["port"]
    moved: list[tuple[Path, Path]] = []
    try:
        cp, _ = up_json(recipe, env=env)
        assert cp.returncode == 0, cp.stderr
        for rec in (processes_dir() / "rayelse").glob("*.json"):
            if json.loads(rec.read_text())["role"] == "server":
                moved.append((rec, rec.with_suffix(".away")))
                rec.rename(moved[-1][1])
        assert len(moved) == 1
        server = _server_pids(port)
        assert server
        cp = run_launch("up", str(recipe), env=env, timeout=90)
        assert cp.returncode != 0
        assert f"server answers at http://127.0.0.1:{port}" in cp.stderr and "--replace" in cp.stderr
        assert _server_pids(port) == server and len(running_with("ray_shim start --block")) == 2  # untouched
    finally:
        for rec, away in moved:
            away.rename(rec)
        run_launch("down", "rayelse", env=env)
    assert wait_gone(f"--port {port}") == [] and wait_gone("start --block") == []
