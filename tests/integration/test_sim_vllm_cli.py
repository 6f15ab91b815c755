"""The simulator's `vllm serve …` entry, its shim and `launch sim vllm`, as subprocesses.

Each failure mode prints vLLM's own text (../shared/reference/vllm.md, "Failure text") and exits 1."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from launcher.sim.shims import write_shims
from conftest import free_port, run_launch

ENTRY = [sys.executable, "-m", "launcher.sim.vllm_cli"]


def _env(**extra) -> dict:
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("LAUNCHER_SIM_") or k == "VLLM_API_KEY":
            env.pop(k)
    env["LAUNCHER_SIM_LOAD_SECONDS"] = "0.05"
    env.update(extra)
    return env


def serve(*flags: str, timeout: float = 30, **env) -> subprocess.CompletedProcess:
    return subprocess.run([*ENTRY, "serve", "org/model", "--host", "127.0.0.1", "--port", str(free_port()), *flags],
                          capture_output=True, text=True, env=_env(**env), timeout=timeout)


@pytest.mark.parametrize("fail, text", [
    ("oom-weights", "Failed to load model - not enough GPU memory. Try lowering --gpu-memory-utilization"),
    ("oom-weights", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate"),
    ("no-kv", "ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` "
              "when initializing the engine."),
    ("kv-too-small", "To serve at least one request with the models's max seq len (32768), ("),
])
def test_fail_modes_text_and_exit(fail, text):
    p = serve("--max-model-len", "32768", LAUNCHER_SIM_FAIL=fail)
    assert p.returncode == 1, p.stdout[-2000:]
    assert text in p.stdout
    assert "Application startup complete." not in p.stdout


def test_kv_too_small_for_real_and_v0_wording():
    p = serve("--max-model-len", "32768", LAUNCHER_SIM_KV_TOKENS="16832")
    assert p.returncode == 1
    assert ("Based on the available memory, the estimated maximum model length is 16832. Try increasing "
            "`gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.") in p.stdout
    from launcher.sim import SimConfig, VllmSim
    s = VllmSim(SimConfig(quiet=True, max_model_len=32768, kv_tokens=16832, kv_error_format="v0")).start()
    assert s.exit_code == 1
    assert any("The model's max seq len (32768) is larger than the maximum number of tokens that can be stored "
               "in KV cache (16832)." in line for line in s.log_lines)


@pytest.mark.parametrize("flag, label", [("--tool-call-parser", "tool call parser"),
                                         ("--reasoning-parser", "reasoning parser")])
def test_unknown_parser_name(flag, label):
    p = serve(flag, "no_such_thing")
    assert p.returncode == 1
    assert f"KeyError: 'invalid {label}: no_such_thing (chose from {{ " in p.stdout
    assert "Starting to load model" not in p.stdout  # refused before any load


def test_forced_bad_parser():
    p = serve("--tool-call-parser", "hermes", "--enable-auto-tool-choice", LAUNCHER_SIM_FAIL="bad-parser")
    assert p.returncode == 1 and "KeyError: 'invalid tool call parser: hermes (chose from {" in p.stdout


def test_serve_flags_env_key_and_sigterm(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [*ENTRY, "serve", "org/model", "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "m1",
         "--max-model-len", "32k", "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
         "--unknown-flag", "7", "--trust-remote-code"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=_env(VLLM_API_KEY="k1", LAUNCHER_SIM_KV_TOKENS="100000", LAUNCHER_SIM_LOG_FORMAT="split"))
    try:
        deadline = time.monotonic() + 30
        r = None
        while r is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": "Bearer k1"}, timeout=2)
            except httpx.TransportError:
                time.sleep(0.05)
        assert r is not None, f"the simulator never answered (exit {proc.poll()})"
        m = r.json()["data"][0]
        assert (m["id"], m["max_model_len"]) == ("m1", 32000)
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 401
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "GPU KV cache size: 100,000 tokens\n" in out
        assert "Maximum concurrency for 32,000 tokens per request: 3.12x" in out
        assert "k1" not in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_crash_after_ready_exits_1():
    p = serve(LAUNCHER_SIM_FAIL="crash-after-ready", LAUNCHER_SIM_CRASH_AFTER_S="0.3")
    assert p.returncode == 1
    assert "Application startup complete." in p.stdout and "EngineDeadError" in p.stdout


def test_shim_runs_as_vllm(tmp_path):
    bin_dir = write_shims(tmp_path / "bin")
    assert os.access(bin_dir / "vllm", os.X_OK)
    env = _env(LAUNCHER_SIM_FAIL="no-kv", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    p = subprocess.run(["vllm", "serve", "org/model", "--port", str(free_port())], capture_output=True, text=True,
                       env=env, timeout=30)
    assert p.returncode == 1 and "No available memory for the cache blocks" in p.stdout


def test_launch_sim_vllm_command():
    env = {k: v for k, v in _env().items() if k.startswith("LAUNCHER_SIM_")}
    p = run_launch("sim", "vllm", "--port", "0", "--load-seconds", "0", "--fail", "kv-too-small",
                   "--kv-tokens", "1000", "--max-model-len", "2000", env=env, timeout=60)
    assert p.returncode == 1
    assert "the estimated maximum model length is 1000" in p.stdout
    bad = run_launch("sim", "vllm", "--fault", "nope", env=env, timeout=60)
    assert bad.returncode == 2
