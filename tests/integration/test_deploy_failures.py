"""Each start-up failure: the diagnosis (cause + fix + last log lines), exit code 4, and nothing left
running. The simulator prints vLLM's real failure text for each mode (../shared/reference/vllm.md)."""
from __future__ import annotations

import os
import stat

import pytest
import yaml

from conftest import run_launch
from deploy_helpers import simenv, wait_gone, write_inventory, write_recipe  # noqa: F401


def _records(d) -> list:
    base = d / "state" / "processes"
    return sorted(p.name for p in base.rglob("*.json")) if base.exists() else []


def _check_failed(cp, simenv, port, *needles):
    err = cp.stderr
    assert cp.returncode == 4, (cp.returncode, err)
    for n in needles:
        assert n in err, (n, err)
    assert "fix:" in err and "last log lines" in err
    assert wait_gone(f"--port {port}") == []
    assert _records(simenv["dir"]) == []


@pytest.mark.parametrize("mode,needles", [
    ("oom-weights", ["weights do not fit in GPU memory", "CUDA out of memory"]),
    ("no-kv", ["no GPU memory was left for the KV cache", "gpu_memory_utilization"]),
    ("kv-too-small", ["needs more KV cache than fits", "vLLM's own estimate", "max_model_len"]),
    ("bad-parser", ["does not know the tool call parser", "qwen3_coder"]),
])
def test_vllm_failure_modes(simenv, mode, needles):
    recipe = write_recipe(simenv["dir"], f"fail-{mode}")
    port = yaml.safe_load(recipe.read_text())["port"]
    cp = run_launch("up", str(recipe), env={**simenv["env"], "LAUNCHER_SIM_FAIL": mode}, timeout=60)
    _check_failed(cp, simenv, port, *needles)


def test_kv_too_small_hint_carries_vllms_estimate(simenv):
    recipe = write_recipe(simenv["dir"], "kvsmall", max_model_len=262144)
    port = yaml.safe_load(recipe.read_text())["port"]
    cp = run_launch("up", str(recipe), env={**simenv["env"], "LAUNCHER_SIM_KV_TOKENS": "100000"}, timeout=60)
    _check_failed(cp, simenv, port, "max_model_len 262144", "set vllm.max_model_len to 100000 or less")


def _fake_vllm(simenv, body: str) -> dict:
    """A `vllm` that fails the way a real process can (stands for a crash / a SIGKILL by the OOM killer)."""
    d = simenv["dir"] / "fakebin"
    d.mkdir(exist_ok=True)
    exe = d / "vllm"
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return {**simenv["env"], "PATH": f"{d}{os.pathsep}{simenv['env']['PATH']}"}


def test_process_exit(simenv):
    recipe = write_recipe(simenv["dir"], "exits")
    port = yaml.safe_load(recipe.read_text())["port"]
    env = _fake_vllm(simenv, 'echo "RuntimeError: something unexpected"; exit 3')
    cp = run_launch("up", str(recipe), env=env, timeout=60)
    _check_failed(cp, simenv, port, "exited before it was ready", "code 3", "something unexpected")


def test_killed_by_sigkill_is_oom_killer(simenv):
    recipe = write_recipe(simenv["dir"], "killed")
    port = yaml.safe_load(recipe.read_text())["port"]
    env = _fake_vllm(simenv, 'echo "Loading safetensors checkpoint shards:  50% Completed | 1/2"; kill -9 $$')
    cp = run_launch("up", str(recipe), env=env, timeout=60)
    _check_failed(cp, simenv, port, "out-of-memory killer", "gpu_memory_utilization")


def test_no_readiness_in_time(simenv):
    recipe = write_recipe(simenv["dir"], "slow")
    port = yaml.safe_load(recipe.read_text())["port"]
    cp = run_launch("up", str(recipe), "--timeout", "2", env={**simenv["env"], "LAUNCHER_SIM_LOAD_SECONDS": "60"},
                    timeout=60)
    _check_failed(cp, simenv, port, "no readiness within 2 s", "last stage", "--timeout")


def test_api_up_but_never_answers(simenv):
    recipe = write_recipe(simenv["dir"], "hang")
    port = yaml.safe_load(recipe.read_text())["port"]
    cp = run_launch("up", str(recipe), "--timeout", "10", env={**simenv["env"], "LAUNCHER_SIM_FAIL": "hang"},
                    timeout=60)
    _check_failed(cp, simenv, port, "said it started but was not ready")


def test_ray_worker_never_joins(simenv):
    inv = write_inventory(simenv["dir"], "two", {"a": {"address": "127.0.0.1", "gpus": {"count": 1}},
                                                 "b": {"address": "127.0.0.1", "gpus": {"count": 1}}})
    recipe = write_recipe(simenv["dir"], "raynojoin", hosts=str(inv), nodes=2, backend="ray")
    port = yaml.safe_load(recipe.read_text())["port"]
    # 10 s: the head's `ray start` and a later `ray status` (Python subprocesses) must both run before the
    # timeout for the message to say "1 of 2 GPUs" rather than "no cluster"
    cp = run_launch("up", str(recipe), "--timeout", "10",
                    env={**simenv["env"], "LAUNCHER_SIM_RAY_FAIL": "worker-never-joins"}, timeout=90)
    assert cp.returncode == 4, cp.stderr
    assert "the Ray worker on b never joined the Ray cluster" in cp.stderr and "1 of 2 GPUs" in cp.stderr
    assert wait_gone("start --block") == [] and wait_gone(f"--port {port}") == []
    assert _records(simenv["dir"]) == []


def test_diagnosis_shows_the_last_30_log_lines(simenv):
    recipe = write_recipe(simenv["dir"], "tail30")
    port = yaml.safe_load(recipe.read_text())["port"]
    env = _fake_vllm(simenv, 'i=1; while [ $i -le 45 ]; do echo "tailmark-$i"; i=$((i+1)); done; exit 3')
    cp = run_launch("up", str(recipe), env=env, timeout=60)
    _check_failed(cp, simenv, port, "exited before it was ready", "| tailmark-45")
    shown = [ln for ln in cp.stderr.splitlines() if "| tailmark-" in ln]
    assert [ln.split("tailmark-")[1] for ln in shown] == [str(i) for i in range(16, 46)]
