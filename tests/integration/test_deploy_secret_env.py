"""Secret environment references (`env: {HF_TOKEN: {env: MY_HF}}`): vLLM reads HF_TOKEN from its
environment to download gated weights, so the value must reach the server process's environment, and
never its argv, `launch plan` or launch's output. The vLLM simulator stands in for `vllm serve`."""
from __future__ import annotations

import psutil
import yaml

from conftest import run_launch
from deploy_helpers import simenv, up_json, wait_gone, write_recipe  # noqa: F401

SECRET = "hf_secret_value_for_the_test_0123456789"


def _server(port: str) -> psutil.Process:
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if "--port" in cmd and port in cmd and any("vllm" in c for c in cmd):
            return p
    raise AssertionError(f"no simulated vllm on port {port}")


def test_an_env_reference_reaches_the_server_environment_only(simenv):
    env = {**simenv["env"], "MY_HF": SECRET}
    recipe = write_recipe(simenv["dir"], "gated")
    data = yaml.safe_load(recipe.read_text())
    data["env"] = {"HF_TOKEN": {"env": "MY_HF"}}
    recipe.write_text(yaml.safe_dump(data))
    port = str(data["port"])
    plan = run_launch("plan", str(recipe), env=env)
    assert plan.returncode == 0, plan.stderr
    assert "HF_TOKEN" in plan.stdout and SECRET not in plan.stdout
    cp, d = up_json(recipe, env=env)
    try:
        assert cp.returncode == 0, cp.stderr
        proc = _server(port)
        assert proc.environ().get("HF_TOKEN") == SECRET
        assert SECRET not in " ".join(proc.cmdline())
        assert SECRET not in cp.stdout + cp.stderr
    finally:
        run_launch("down", "gated", env=env)
        assert wait_gone(f"--port {port}") == []


def test_a_missing_env_reference_stops_before_anything_starts(simenv):
    env = {k: v for k, v in simenv["env"].items() if k != "MY_HF"}
    recipe = write_recipe(simenv["dir"], "gated2")
    data = yaml.safe_load(recipe.read_text())
    data["env"] = {"HF_TOKEN": {"env": "MY_HF"}}
    recipe.write_text(yaml.safe_dump(data))
    port = str(data["port"])
    cp = run_launch("up", str(recipe), env=env, timeout=90)
    assert cp.returncode == 2, cp.stderr
    assert "env.HF_TOKEN secret variable MY_HF is not set" in cp.stderr
    assert f"{recipe}:" in cp.stderr and "Traceback" not in cp.stderr
    assert wait_gone(f"--port {port}") == []
