"""A port held by another of launch's deployments: preflight names it and how to free it, and
--replace stops that deployment first (only what launch started)."""
from __future__ import annotations

import yaml

from conftest import run_launch
from deploy_helpers import running_with, simenv, up_json, wait_gone, write_recipe  # noqa: F401


def test_port_held_by_another_launch_deployment_is_named_and_replace_frees_it(simenv):
    env = simenv["env"]
    first = write_recipe(simenv["dir"], "nemotron")
    port = yaml.safe_load(first.read_text())["port"]
    second = write_recipe(simenv["dir"], "qwen", port=port)
    try:
        cp, d = up_json(first, env=env)
        assert cp.returncode == 0, cp.stderr

        cp2 = run_launch("up", str(second), env=env, timeout=90)
        assert cp2.returncode == 2, cp2.stderr
        assert f"port {port} is already in use, held by launch deployment nemotron" in cp2.stderr
        assert "launch down nemotron" in cp2.stderr and "--replace" in cp2.stderr
        assert running_with(f"--served-model-name nemotron-served")  # refused: the first one untouched

        cp3, d3 = up_json(second, "--replace", env=env)
        assert cp3.returncode == 0, cp3.stderr
        assert "stopping launch deployment nemotron" in cp3.stderr
        assert d3["model"] == "qwen-served" and d3["attached"] is False
        assert wait_gone("--served-model-name nemotron-served") == []
        st = run_launch("down", "nemotron", env=env)
        assert "nothing launch started" in st.stdout
    finally:
        run_launch("down", "nemotron", env=env)
        run_launch("down", "qwen", env=env)
    assert wait_gone(f"--port {port}") == []
