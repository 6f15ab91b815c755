"""`launch RECIPE` end to end: the server is started by launch, measured, validated, the OpenCode config
written, and the real OpenCode CLI (exec'd by launch, replacing it) talks to the server.

vLLM: the simulator stands in for `vllm serve` (same argv, log lines and HTTP API; see launcher/sim).
llama.cpp: the real llama-server on a tiny random-weight model (noise, but a real server).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from conftest import LAUNCH, free_port, require, run_launch
from tests.e2e.test_opencode import OFFLINE, files_holding

pytestmark = pytest.mark.slow

KEY = "sk-flow-5c0ffee1234"
ANSWER = 100  # characters of OpenCode's streamed answer that prove it got one
SERVED = "acme/flow-coder"


@pytest.fixture
def opencode():
    return Path(require("the OpenCode CLI", os.environ.get("LAUNCHER_TEST_OPENCODE"),
                        "scripts/test installs opencode-ai@1.18.33"))


def _env(tmp: Path, opencode: Path, **extra) -> dict[str, str]:
    from launcher.sim.shims import write_shims

    bin_dir = write_shims(tmp / "bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCODE")}
    env.update(OFFLINE)
    env["PATH"] = os.pathsep.join([str(bin_dir), str(opencode.parent), env.get("PATH", "")])
    env.update(extra)
    return env


def _run_group(*args: str, env: dict, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """`launch ARGS` in its own process group. launch execs the agent, which may start children of
    its own: on a timeout the whole group is killed, so nothing outlives the test."""
    env = {k: v for k, v in env.items() if k != "LAUNCHER_DEBUG"}
    proc = subprocess.Popen([*LAUNCH, *args], env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        raise AssertionError(f"launch {' '.join(args)} ran past {timeout} s:\n{out[-2000:]}\n{err[-3000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _no_server_left(marker: str) -> None:
    left = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(p.info["cmdline"] or []):
                left.append(p.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    assert not left, f"still running: {left}"


def test_launch_vllm_recipe_runs_opencode_against_the_measured_server(isolated, opencode):
    port = free_port()
    record = isolated / "wire.jsonl"
    recipe = isolated / "flow.yaml"
    recipe.write_text(f"""name: flow
engine: vllm
model: acme/Flow-Coder-7B
served_name: {SERVED}
runtime: local
port: {port}
vllm:
  max_model_len: 65536
  enable_auto_tool_choice: true
  tool_call_parser: qwen3_coder
  reasoning_parser: qwen3
api_key: {{env: FLOW_KEY}}
sampling: {{temperature: 0.4, top_p: 0.9}}
agent: {{name: opencode, provider: flowprov, output: 8192}}
""")
    env = _env(isolated, opencode, FLOW_KEY=KEY, LAUNCHER_SIM_LOAD_SECONDS="0.5", LAUNCHER_SIM_HOSTS="1",
               LAUNCHER_SIM_KV_TOKENS="100000", LAUNCHER_SIM_RECORD=str(record))
    try:
        proc = _run_group(str(recipe), "--", "run", "say hello to the flow test", env=env, cwd=isolated,
                          timeout=240)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        # the limits come from what the server measured: KV 100,000 tokens, max-model-len 65,536
        assert "min(max-model-len 65,536, KV 100,000 / 1 session)" in proc.stderr
        assert "endpoint OK" in proc.stdout + proc.stderr
        cfg = json.loads((isolated / "config" / "opencode" / "flow.json").read_text())
        model = cfg["provider"]["flowprov"]["models"][SERVED]
        ctx, out = model["limit"]["context"], model["limit"]["output"]
        assert 60000 < ctx < 65536 and out == 8192
        assert cfg["provider"]["flowprov"]["options"]["apiKey"] == "{env:FLOW_KEY}"
        # what reached the server from OpenCode (after the validation requests)
        wire = [json.loads(line) for line in record.read_text().splitlines()]
        def from_validator(w):  # the gate's requests carry its one get_weather tool
            return [t["function"]["name"] for t in w["json"].get("tools") or []] == ["get_weather"]

        chats = [w for w in wire if w["path"].endswith("/chat/completions") and w["json"].get("stream")
                 and not from_validator(w)]
        assert chats, "OpenCode's requests never reached the server"
        for w in chats:
            assert w["json"]["model"] == SERVED and w["auth_ok"]
            assert w["json"]["temperature"] == 0.4 and w["json"]["top_p"] == 0.9
            assert w["json"]["max_tokens"] == out
        assert KEY not in proc.stdout + proc.stderr
        assert not files_holding(isolated, KEY, skip=set())
    finally:
        down = run_launch("down", str(recipe), env=env, cwd=isolated)
    assert down.returncode == 0, down.stderr
    _no_server_left(f"--port {port}")


@pytest.mark.timeout(600)  # its own limits add up past the global 300 s: let them report first
def test_launch_llamacpp_recipe_validates_honestly_then_opencode_gets_an_answer(isolated, opencode):
    from tests.llama_server import llama_server_binary, tiny_model

    binary = llama_server_binary()
    model = tiny_model(binary=binary)
    port = free_port()
    recipe = isolated / "tiny.yaml"
    recipe.write_text(f"""name: tiny
engine: llamacpp
model: tiny-qwen2
served_name: tiny-qwen2
runtime: local
port: {port}
llamacpp: {{gguf: {model}, ctx: 32768, parallel: 1, extra_args: ["-t", "1"]}}
api_key: {{env: TINY_KEY}}
agent: {{name: opencode, provider: tinyprov, output: 256}}
""")
    # -t 1: llama.cpp's worker threads meet at a barrier per op; on a shared 2-core machine two of them
    # wait on the scheduler and noise drops to ~3 tokens/s (one thread: the same as tests/llama_server.py).
    # output 256 (the schema's minimum): OpenCode's title request (small_model) holds the one slot for up to `output` tokens
    # before its answer request starts; noise at a few tokens/s on a loaded 2-core machine must fit
    # both in the deadline below (with 512 the title alone took 110 s there).
    env = _env(isolated, opencode, TINY_KEY=KEY)
    env["PATH"] = str(Path(binary).parent) + os.pathsep + env["PATH"]
    try:
        # a noise model cannot call tools: the gate says so and nothing is written for the agent
        gate = run_launch(str(recipe), "--agent", "opencode", env=env, cwd=isolated, timeout=240)
        assert gate.returncode == 3, gate.stdout[-2000:] + gate.stderr[-3000:]
        text = gate.stdout + gate.stderr
        assert "✗  tool_call" in text and "prose" in text, text[-3000:]
        assert "✓  models" in text and "✓  streaming" in text
        assert not (isolated / "config" / "opencode" / "tiny.json").exists()
        # the server stays up (attached on the next run); skipping the gate, OpenCode gets its noise back.
        # Noise never ends a turn (finish_reason "length"), so OpenCode would keep going: once its answer
        # has streamed to the terminal, the test stops it.
        out_path, err_path = isolated / "oc.out", isolated / "oc.err"
        with open(out_path, "w") as out, open(err_path, "w") as err:
            proc = subprocess.Popen([*LAUNCH, str(recipe), "--no-validate", "--", "run", "hi"], env=env,
                                    cwd=isolated, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            try:
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline and proc.poll() is None and len(out_path.read_text()) < ANSWER:
                    time.sleep(0.5)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        answer, log = out_path.read_text(), err_path.read_text()
        assert len(answer) >= ANSWER, f"OpenCode printed no answer:\n{answer}\n{log[-3000:]}"
        assert "attaching to the running tiny" in log and "--no-validate" in log
        cfg = json.loads((isolated / "config" / "opencode" / "tiny.json").read_text())
        assert cfg["provider"]["tinyprov"]["models"]["tiny-qwen2"]["limit"]["context"] <= 32768
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if "llama-server" in cmd and str(port) in cmd:
                assert KEY not in cmd and "--api-key" not in cmd
    finally:
        run_launch("down", str(recipe), env=env, cwd=isolated)
    _no_server_left(f"--port {port}")
