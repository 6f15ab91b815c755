"""Two-node flows across two simulated hosts on 127.0.0.1 (local runtime): Ray (head, worker, wait for
`ray status` to show every GPU, then the server) and vLLM's multiprocessing (head + headless worker).
`ray` is launcher.sim.ray_shim (Ray's start/status texts); `vllm` the vLLM simulator."""
from __future__ import annotations

import yaml

from conftest import run_launch
from deploy_helpers import running_with, simenv, up_json, wait_gone, write_inventory, write_recipe  # noqa: F401


def _two_hosts(d):
    return write_inventory(d, "two", {"node-a": {"address": "127.0.0.1", "gpus": {"count": 1}, "interface": "lo"},
                                      "node-b": {"address": "127.0.0.1", "gpus": {"count": 1}, "interface": "lo"}})


def test_ray_two_nodes(simenv):
    recipe = write_recipe(simenv["dir"], "raytwo", hosts=str(_two_hosts(simenv["dir"])), nodes=2, backend="ray")
    port = yaml.safe_load(recipe.read_text())["port"]
    cp, d = up_json(recipe, env=simenv["env"])
    assert cp.returncode == 0, cp.stderr
    assert "Ray cluster up: 2/2 GPU(s)" in cp.stderr
    # order: head, then the worker, then the server once Ray shows both GPUs
    order = [line.split()[1] for line in cp.stderr.splitlines() if line.startswith("starting ")]
    assert order == ["ray-head", "ray-worker-1", "server"]
    assert d["capacity"]["kv_tokens"] and d["attached"] is False
    server = running_with(f"--port {port}")
    assert server and "--distributed-executor-backend ray" in server[0] and "--tensor-parallel-size 2" in server[0]
    assert len(running_with("ray_shim start --block")) == 2
    dn = run_launch("down", "raytwo", env=simenv["env"])
    assert dn.returncode == 0
    assert dn.stdout.index("server@node-a") < dn.stdout.index("ray-head@node-a")
    assert wait_gone(f"--port {port}") == [] and wait_gone("start --block") == []


def test_mp_two_nodes(simenv):
    recipe = write_recipe(simenv["dir"], "mptwo", hosts=str(_two_hosts(simenv["dir"])), nodes=2, backend="mp")
    port = yaml.safe_load(recipe.read_text())["port"]
    cp, d = up_json(recipe, env=simenv["env"])
    assert cp.returncode == 0, cp.stderr
    procs = [p for p in running_with(f"--port {port}") if "vllm_cli serve" in p]
    assert len(procs) == 2
    assert any("--node-rank 0" in p and "--headless" not in p for p in procs)
    assert any("--node-rank 1" in p and "--headless" in p for p in procs)
    cp2, d2 = up_json(recipe, env=simenv["env"])
    assert d2["attached"] is True
    run_launch("down", "mptwo", env=simenv["env"])
    assert wait_gone(f"--port {port}") == []


def test_worker_death_during_startup_is_reported(simenv):
    """mp: the headless worker dies while the head loads -> exit 4 naming the worker, all stopped."""
    import os
    import stat

    d = simenv["dir"] / "fakebin"
    d.mkdir()
    exe = d / "vllm"
    # the head runs the simulator; the worker (--headless) dies at once
    exe.write_text("#!/bin/sh\ncase \"$*\" in *--headless*) echo 'NCCL error: unhandled system error'; exit 1;; esac\n"
                   f"exec {simenv['bin']}/vllm \"$@\"\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    env = {**simenv["env"], "PATH": f"{d}{os.pathsep}{simenv['env']['PATH']}", "LAUNCHER_SIM_LOAD_SECONDS": "20"}
    recipe = write_recipe(simenv["dir"], "mpdie", hosts=str(_two_hosts(simenv["dir"])), nodes=2, backend="mp")
    port = yaml.safe_load(recipe.read_text())["port"]
    cp = run_launch("up", str(recipe), env=env, timeout=60)
    assert cp.returncode == 4, cp.stderr
    assert "worker-1 on node-b" in cp.stderr
    assert wait_gone(f"--port {port}") == []
