"""Helpers for the deploy tests: the simulators as `vllm` / `ray` on PATH, recipes on random ports,
and a check that nothing a test started is still running."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from conftest import free_port, run_launch

KEY_ENV = "LAUNCHER_TEST_VLLM_KEY"


@pytest.fixture
def simenv(isolated, monkeypatch):
    """PATH with the vllm and ray simulators first, a private Ray rendezvous dir, a fast start-up and
    an API key in a private variable. Returns a dict of paths and the env for `launch` subprocesses."""
    from launcher.sim.shims import write_shims

    bin_dir = write_shims(isolated / "bin")
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "LAUNCHER_SIM_RAY_DIR": str(isolated / "ray"),
           "LAUNCHER_SIM_LOAD_SECONDS": "0.4", KEY_ENV: "test-key-" + os.urandom(6).hex(),
           "LAUNCHER_SIM_HOSTS": "1"}  # simulated hosts: preflight skips the GPU probe
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield {"dir": isolated, "bin": bin_dir, "env": env}
    # finalizer: whatever a failed test left behind is stopped (by its recorded handles only)
    from launcher.deploy import find_deployments, down

    for f in find_deployments():
        down(f.recipe)


def write_recipe(d: Path, name: str, *, port: int | None = None, hosts: str | None = None, nodes: int = 1,
                 backend: str = "ray", runtime: str = "local", **vllm) -> Path:
    opts = {"max_model_len": 32768, "enable_auto_tool_choice": True, "tool_call_parser": "qwen3_coder"}
    opts.update(vllm)
    r = {"name": name, "engine": "vllm", "model": "org/tiny-model", "served_name": f"{name}-served",
         "port": port or free_port(), "runtime": runtime, "vllm": opts, "api_key": {"env": KEY_ENV}}
    if hosts:
        r["hosts"] = hosts
    if nodes > 1:
        r["parallelism"] = {"tensor": nodes, "nodes": nodes, "backend": backend}
    path = d / f"{name}.yaml"
    path.write_text(yaml.safe_dump(r, sort_keys=False))
    return path


def write_inventory(d: Path, name: str, hosts: dict[str, dict]) -> Path:
    path = d / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "hosts": hosts}, sort_keys=False))
    return path


def up_json(recipe: Path, *args: str, env: dict, timeout: float = 90):
    cp = run_launch("up", str(recipe), "--json", *args, env=env, timeout=timeout)
    data = json.loads(cp.stdout) if cp.returncode == 0 and cp.stdout.strip() else None
    return cp, data


def running_with(marker: str) -> list[str]:
    """Command lines of live processes whose argv contains marker (a unique port or name)."""
    import psutil

    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmd = " ".join(p.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if marker in cmd and p.pid != os.getpid():
            out.append(cmd)
    return out


def wait_gone(marker: str, timeout: float = 10.0) -> list[str]:
    end = time.monotonic() + timeout
    left = running_with(marker)
    while left and time.monotonic() < end:
        time.sleep(0.1)
        left = running_with(marker)
    return left
