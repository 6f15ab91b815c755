"""`launch RECIPE --agent codex|claude` end to end with the real CLIs (npm @openai/codex 0.169.0 and
@anthropic-ai/claude-code 2.1.330, installed by scripts/test into ~/.cache/launcher-ci). launch starts
the server (the vLLM simulator stands in for `vllm serve`: same argv, log lines, /v1/responses and
/v1/messages), measures it, validates it, writes Codex's profile or Claude Code's environment and execs
the agent, which must reach the server with the served model id, the key and the measured limits."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import free_port, require, run_launch
from tests.e2e.test_launch_flow import _no_server_left, _run_group
from tests.e2e.test_opencode import files_holding

pytestmark = pytest.mark.slow

KEY = "sk-agents-7e57c0de99"
SERVED = "acme/agent-coder"


def _cli(var: str, what: str, how: str) -> Path:
    return Path(require(what, os.environ.get(var), how))


def _recipe(d: Path, name: str, port: int, agent: str, max_len: int = 131072) -> Path:
    path = d / f"{name}.yaml"
    path.write_text(f"""name: {name}
engine: vllm
model: acme/Agent-Coder-7B
served_name: {SERVED}
runtime: local
port: {port}
vllm:
  max_model_len: {max_len}
  enable_auto_tool_choice: true
  tool_call_parser: qwen3_coder
  reasoning_parser: qwen3
api_key: {{env: AGENT_KEY}}
agent: {{name: {agent}, output: 8192}}
""")
    return path


def _env(tmp: Path, cli: Path, record: Path) -> dict[str, str]:
    from launcher.sim.shims import write_shims

    bin_dir = write_shims(tmp / "bin")
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(bin_dir), str(cli.parent), env.get("PATH", "")])
    env.update(AGENT_KEY=KEY, LAUNCHER_SIM_LOAD_SECONDS="0.5", LAUNCHER_SIM_HOSTS="1",
               LAUNCHER_SIM_KV_TOKENS="150000", LAUNCHER_SIM_RECORD=str(record))
    return env


def _agent_requests(record: Path, path: str) -> list[dict]:
    wire = [json.loads(line) for line in record.read_text().splitlines()]
    return [w for w in wire if w["path"] == path]


def _no_key_left(proc, root: Path, record: Path) -> None:
    """The key's value is in no output and no file (the simulator's own request record aside)."""
    assert KEY not in proc.stdout + proc.stderr
    assert not files_holding(root, KEY, skip={record})


def _down(recipe: Path, env: dict, cwd: Path, port: int) -> None:
    down = run_launch("down", str(recipe), env=env, cwd=cwd)
    assert down.returncode == 0, down.stderr
    _no_server_left(f"--port {port}")


def test_launch_runs_the_real_codex_on_its_profile(isolated):
    codex = _cli("LAUNCHER_TEST_CODEX", "the Codex CLI", "scripts/test installs @openai/codex@0.169.0")
    port, record = free_port(), isolated / "wire.jsonl"
    recipe = _recipe(isolated, "cx", port, "codex")
    env = _env(isolated, codex, record)
    work = isolated / "work"
    work.mkdir()
    try:
        proc = _run_group(str(recipe), "--", "exec", "--skip-git-repo-check", "Say hello to the codex test",
                          env=env, cwd=work, timeout=240)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        assert "endpoint OK" in proc.stdout + proc.stderr
        profile = isolated / "home" / ".codex" / "launch-cx.config.toml"
        import tomllib

        cfg = tomllib.loads(profile.read_text())
        window = cfg["model_context_window"]
        assert 120000 < window < 131072  # measured: min(max-model-len 131,072, KV 150,000) − margin
        # Codex spoke the Responses API to the server, with the served id and the key
        # (launch's own one-line check of /v1/responses comes first, from httpx)
        calls = [w for w in _agent_requests(record, "/v1/responses")
                 if "codex_exec" in w["headers"].get("user-agent", "")]
        assert calls, "Codex's requests never reached the server:\n" + proc.stdout[-2000:] + proc.stderr[-2000:]
        for w in calls:
            assert w["json"]["model"] == SERVED and w["auth_ok"]
        _no_key_left(proc, isolated, record)
    finally:
        _down(recipe, env, isolated, port)


def test_launch_runs_the_real_claude_code_on_its_environment(isolated):
    claude = _cli("LAUNCHER_TEST_CLAUDE", "the Claude Code CLI",
                  "scripts/test installs @anthropic-ai/claude-code@2.1.330")
    port, record = free_port(), isolated / "wire.jsonl"
    recipe = _recipe(isolated, "cc", port, "claude", max_len=65536)  # a context under Claude Code's 100k floor
    env = _env(isolated, claude, record)
    work = isolated / "work"
    work.mkdir()
    (work / "hello.txt").write_text("hello from the claude test\n")
    try:
        proc = _run_group(str(recipe), "--", "-p", "Use the Read tool to read hello.txt and say what it says.",
                          env=env, cwd=work, timeout=240)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        # Claude Code 2.1.330 replaces an auto-compact window under 100k by 100k (and says so): launch gives the
        # ~63k window as CLAUDE_CODE_MAX_CONTEXT_TOKENS instead
        assert "CLAUDE_CODE_AUTO_COMPACT_WINDOW" not in proc.stdout + proc.stderr
        calls = [w for w in _agent_requests(record, "/v1/messages")
                 if "python-httpx" not in w["headers"].get("user-agent", "")]  # launch's own check first
        assert len(calls) >= 2, "Claude Code's tool round trip never reached the server:\n" + proc.stderr[-3000:]
        for w in calls:
            assert w["json"]["model"] == SERVED and w["auth_ok"]
            assert w["json"]["max_tokens"] == 8192  # limit.output through CLAUDE_CODE_MAX_OUTPUT_TOKENS
        # the Read tool ran and its result went back (the simulator answers from the tool result)
        assert any(b.get("type") == "tool_result" for w in calls for m in w["json"]["messages"]
                   if isinstance(m.get("content"), list) for b in m["content"])
        assert "According to the tool result" in proc.stdout
        _no_key_left(proc, isolated, record)
    finally:
        _down(recipe, env, isolated, port)
