"""`launch up/down` with the local runtime and the vLLM simulator as `vllm` (it prints vLLM's real log
lines and serves its HTTP API, so this exercises the same watch, probe and capacity code as vLLM)."""
from __future__ import annotations

import json
import os

import yaml

from conftest import run_launch
from deploy_helpers import KEY_ENV, running_with, simenv, up_json, wait_gone, write_recipe  # noqa: F401


def test_up_attach_replace_down(simenv):
    env = simenv["env"]
    recipe = write_recipe(simenv["dir"], "simone")
    port = str(yaml.safe_load(recipe.read_text())["port"])
    cp, d = up_json(recipe, env=env)
    assert cp.returncode == 0, cp.stderr
    assert d["attached"] is False and d["model"] == "simone-served"
    assert d["base_url"] == f"http://127.0.0.1:{port}/v1"
    assert d["capacity"]["kv_tokens"] == 643232 and d["capacity"]["max_model_len"] == 32768
    assert d["capacity"]["max_concurrency"] > 19
    assert env[KEY_ENV] not in cp.stdout + cp.stderr  # the key never shows
    assert not any(env[KEY_ENV] in c for c in running_with(port))  # nor in any argv
    first = running_with(f"--port {port}")
    assert first

    cp2, d2 = up_json(recipe, env=env)
    assert cp2.returncode == 0, cp2.stderr
    assert d2["attached"] is True and d2["plan_hash"] == d["plan_hash"]
    assert running_with(f"--port {port}") == first  # nothing restarted

    data = yaml.safe_load(recipe.read_text())
    data["vllm"]["max_model_len"] = 16384
    recipe.write_text(yaml.safe_dump(data))
    cp3, _ = up_json(recipe, env=env)
    assert cp3.returncode == 1 and "different plan" in cp3.stderr and "--replace" in cp3.stderr
    assert running_with(f"--port {port}") == first  # refused: the old one untouched

    cp4, d4 = up_json(recipe, "--replace", env=env)
    assert cp4.returncode == 0, cp4.stderr
    assert d4["attached"] is False and d4["plan_hash"] != d["plan_hash"]
    assert d4["capacity"]["max_model_len"] == 16384

    st = run_launch("status", "--json", env=env)
    assert st.returncode == 0, st.stderr
    rows = [r for r in json.loads(st.stdout) if r["name"] == "simone"]
    assert rows and rows[0]["healthy"] and rows[0]["models"] == ["simone-served"]
    assert rows[0]["running"] == 0 and rows[0]["kv_usage_pct"] is not None

    lg = run_launch("logs", "simone", env=env)
    assert lg.returncode == 0 and "GPU KV cache size" in lg.stdout

    dn = run_launch("down", "simone", env=env)
    assert dn.returncode == 0 and "server@local" in dn.stdout
    assert wait_gone(f"--port {port}") == []
    dn2 = run_launch("down", "simone", env=env)
    assert "nothing launch started" in dn2.stdout


def test_down_never_touches_an_attached_server(simenv):
    """A server launch did not start (here: the simulator started by hand) is left alone by down."""
    import subprocess
    import sys

    from conftest import free_port

    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "launcher.sim.vllm_cli", "serve", "x", "--port", str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        dn = run_launch("down", "simone", env=simenv["env"])
        assert dn.returncode == 0 and p.poll() is None
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_preflight_lists_every_problem_at_once(simenv):
    """Port taken and `vllm` missing (and, on a machine without GPUs, no GPU): one error, all listed, exit 2."""
    import socket

    recipe = write_recipe(simenv["dir"], "pre")
    port = yaml.safe_load(recipe.read_text())["port"]
    env = {**simenv["env"], "PATH": "/usr/bin:/bin", "LAUNCHER_SIM_HOSTS": "0"}
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        cp = run_launch("up", str(recipe), env=env)
    assert cp.returncode == 2, cp.stderr
    assert "preflight found" in cp.stderr
    assert f"port {port} is already in use" in cp.stderr and "`vllm` is not on PATH" in cp.stderr
    assert cp.stderr.count("fix:") >= 3
