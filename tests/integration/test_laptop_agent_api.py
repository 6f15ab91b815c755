"""`launch RECIPE --agent claude|codex` on laptop engines: the gate checks OpenAI chat completions, but
Claude Code speaks /v1/messages and Codex /v1/responses. A server without that API fails the launch
(exit 3) before the agent starts; one that serves it starts the agent. The agents here are stand-in
scripts that record that they ran (the real binaries are not needed to see whether launch started them)."""
from __future__ import annotations

import os
import stat

import pytest
import yaml

from conftest import run_launch
from launcher.sim.lmstudio import LmStudioSim
from launcher.sim.ollama import OllamaSim

RECIPES = __import__("pathlib").Path(__file__).resolve().parents[2] / "recipes"


def _fake_agents(tmp_path) -> tuple[dict, object]:
    bindir = tmp_path / "agents-bin"
    bindir.mkdir()
    marker = tmp_path / "agent-ran"
    for name in ("claude", "codex"):
        f = bindir / name
        f.write_text(f"#!/bin/sh\necho {name} \"$ANTHROPIC_BASE_URL\" >> '{marker}'\n")
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}, marker


@pytest.fixture
def lmstudio(isolated):
    s = LmStudioSim().start()
    body = yaml.safe_load((RECIPES / "lmstudio-qwen3-coder.yaml").read_text())
    body["port"] = s.port
    path = isolated / "lmstudio-qwen3-coder.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    yield s, str(path)
    s.stop()


@pytest.fixture
def ollama(isolated):
    s = OllamaSim(local=["qwen3-coder:30b"]).start()
    yield s
    s.stop()


def _ollama_env(sim) -> dict:
    return {"OLLAMA_HOST": f"127.0.0.1:{sim.port}", "LAUNCHER_FREE_MEMORY": "64G"}


def test_claude_on_lmstudio_fails_without_the_messages_api(lmstudio, tmp_path):
    sim, recipe = lmstudio
    env, marker = _fake_agents(tmp_path)
    cp = run_launch(recipe, "--agent", "claude", env=env)
    out = cp.stdout + cp.stderr
    assert cp.returncode == 3, out
    assert "endpoint OK" in out  # the chat completions gate passed: the failure is the agent's API
    assert "does not serve the Anthropic Messages API" in out and "--agent opencode" in out
    assert f"{sim.url}/v1/messages" in out
    assert not marker.exists(), "claude was started against a server without /v1/messages"
    assert ("POST", "/v1/messages") in [(m, p) for m, p, _ in sim.requests]


def test_codex_on_ollama_fails_without_the_responses_api(ollama, tmp_path):
    env, marker = _fake_agents(tmp_path)
    cp = run_launch("qwen3-coder", "--agent", "codex", env={**env, **_ollama_env(ollama)})
    out = cp.stdout + cp.stderr
    assert cp.returncode == 3, out
    assert "does not serve the OpenAI Responses API" in out and "--agent opencode" in out
    assert not marker.exists(), "codex was started against a server without /v1/responses"


def test_claude_on_ollama_starts_the_agent(ollama, tmp_path):
    """Ollama serves the Anthropic Messages API (/v1/messages): the check passes and claude runs."""
    env, marker = _fake_agents(tmp_path)
    cp = run_launch("qwen3-coder", "--agent", "claude", env={**env, **_ollama_env(ollama)})
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert marker.read_text().split() == ["claude", ollama.url]
    probe = [b for m, p, b in ollama.requests if p == "/v1/messages"]
    assert probe and probe[0]["model"] == "qwen3-coder:30b-256k" and probe[0]["max_tokens"] > 0


def test_ollama_sim_messages_tool_use(ollama):
    import httpx

    httpx.post(f"{ollama.url}/api/create", json={"model": "q", "from": "qwen3-coder:30b"}, timeout=10)
    tool = {"name": "read_file", "description": "read", "input_schema": {
        "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}
    r = httpx.post(f"{ollama.url}/v1/messages", json={"model": "qwen3-coder:30b", "max_tokens": 64, "tools": [tool],
                                                      "messages": [{"role": "user", "content": "read it"}]}).json()
    assert r["stop_reason"] == "tool_use" and r["content"][-1]["input"] == {"path": "README.md"}
    missing = httpx.post(f"{ollama.url}/v1/responses", json={"model": "qwen3-coder:30b", "input": "hi"})
    assert missing.status_code == 404


@pytest.mark.parametrize("agent", ["claude", "codex"])
def test_a_server_that_serves_the_agents_api_passes(agent):
    """vLLM serves /v1/messages and /v1/responses (its simulator too): the check passes, with the key."""
    from launcher.deployment import Deployment
    from launcher.pipeline import check_agent_api
    from launcher.sim import SimConfig, VllmSim

    s = VllmSim(SimConfig(api_key="k-agent-api-123", quiet=True)).start()
    try:
        d = Deployment(recipe="r", engine="vllm", base_url=s.base_url, model=s.listed_model, plan_hash="h")
        check_agent_api(d, agent, "k-agent-api-123")  # returns: the API is there
        from launcher.errors import ValidationFailed

        with pytest.raises(ValidationFailed, match="refuses the key"):
            check_agent_api(d, agent, "wrong-key")
    finally:
        s.stop()
