"""The shipped laptop recipes end to end through the real CLI against the simulators (started here,
in-process, on random ports): `launch up RECIPE --json` prints the deployment in DESIGN.md's shape
(capacity and limits), and `launch RECIPE --agent none` runs up -> limits -> validation gate and passes.
The simulators stand for a well-behaved tool-capable model behind Ollama's / LM Studio's documented
OpenAI-compatible API (tool calls with JSON-string arguments, SSE streams, the tool-result turn)."""
from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import run_launch
from launcher.sim.lmstudio import LmStudioSim
from launcher.sim.ollama import OllamaSim

RECIPES = __import__("pathlib").Path(__file__).resolve().parents[2] / "recipes"


def _chat_requests(sim) -> list[dict]:
    return [b for m, p, b in sim.requests if p == "/v1/chat/completions"]


def _check_round_trip(chats: list[dict], id_pattern: str) -> None:
    """The gate sent back the assistant's tool call and a tool result naming the id the server made."""
    trips = [b for b in chats if any(m.get("role") == "tool" for m in b["messages"])]
    assert trips, "no multi-turn round trip reached the server"
    msgs = trips[0]["messages"]
    call = next(m for m in msgs if m.get("role") == "assistant" and m.get("tool_calls"))["tool_calls"][0]
    result = next(m for m in msgs if m.get("role") == "tool")
    assert re.fullmatch(id_pattern, call["id"]) and result["tool_call_id"] == call["id"]
    assert json.loads(call["function"]["arguments"])  # a JSON string, as the server sent it
    assert any(b.get("stream") and b.get("tools") for b in chats)  # the streamed tool call was checked


@pytest.fixture
def ollama(isolated):
    s = OllamaSim().start()  # nothing pulled yet: launch pulls qwen3-coder:30b
    yield s
    s.stop()


def _ollama_env(sim) -> dict:
    # the shipped recipe has no port: OLLAMA_HOST moves it, as it moves Ollama itself
    return {"OLLAMA_HOST": f"127.0.0.1:{sim.port}", "LAUNCHER_FREE_MEMORY": "64G"}


def test_launch_up_json_qwen3_coder_on_ollama(ollama):
    cp = run_launch("up", "qwen3-coder", "--json", env=_ollama_env(ollama))
    assert cp.returncode == 0, cp.stderr
    d = json.loads(cp.stdout)
    assert d["recipe"] == "qwen3-coder" and d["engine"] == "ollama" and d["attached"] is True
    assert d["base_url"] == f"{ollama.url}/v1"
    # 64 GiB free holds the trained 262,144 tokens (96 KiB/token = 24 GiB of KV + 17.3 GiB of weights)
    assert d["model"] == "qwen3-coder:30b-256k" and re.fullmatch(r"[0-9a-f]{16}", d["plan_hash"])
    assert {k: d["capacity"][k] for k in ("kv_tokens", "max_concurrency", "max_model_len")} == {
        "kv_tokens": 262144, "max_concurrency": 1.0, "max_model_len": 262144}
    # margin max(2 % of 262,144 = 5,243 -> 5,376 in 256 steps, 1,536); output = the recipe's 8,192
    assert d["limits"]["context"] == 262144 - 5376 and d["limits"]["output"] == 8192
    assert "qwen3-coder:30b-256k" in ollama.loaded and "/api/pull" in [p for _, p, _ in ollama.requests]


def test_launch_qwen3_coder_agent_none_passes_the_gate_on_ollama(ollama):
    cp = run_launch("qwen3-coder", "--agent", "none", env=_ollama_env(ollama))
    assert cp.returncode == 0, cp.stdout + cp.stderr
    out = cp.stdout + cp.stderr
    assert "endpoint OK" in out
    assert f"ready: qwen3-coder:30b-256k at {ollama.url}/v1 (context 256,768, output 8,192)" in out
    chats = _chat_requests(ollama)
    assert chats and all(b["model"] == "qwen3-coder:30b-256k" for b in chats)  # the derived model
    _check_round_trip(chats, r"call_[a-z0-9]{8}")


@pytest.fixture
def lmstudio_recipe(isolated):
    s = LmStudioSim().start()
    body = yaml.safe_load((RECIPES / "lmstudio-qwen3-coder.yaml").read_text())
    body["port"] = s.port  # the shipped recipe, pointed at the simulator
    path = isolated / "lmstudio-qwen3-coder.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    yield s, str(path)
    s.stop()


def test_launch_up_json_on_lmstudio(lmstudio_recipe):
    sim, recipe = lmstudio_recipe
    cp = run_launch("up", recipe, "--json")
    assert cp.returncode == 0, cp.stderr
    d = json.loads(cp.stdout)
    assert d["engine"] == "lmstudio" and d["model"] == "qwen/qwen3-coder-30b" and d["base_url"] == f"{sim.url}/v1"
    assert {k: d["capacity"][k] for k in ("kv_tokens", "max_concurrency", "max_model_len")} == {
        "kv_tokens": 65536, "max_concurrency": 1.0, "max_model_len": 65536}
    # margin max(2 % of 65,536 = 1,311, 1,536) = 1,536
    assert d["limits"]["context"] == 65536 - 1536 and d["limits"]["output"] == 8192
    assert sim.loaded == {"qwen/qwen3-coder-30b": {"key": "qwen/qwen3-coder-30b", "context_length": 65536}}


def test_launch_agent_none_passes_the_gate_on_lmstudio(lmstudio_recipe):
    sim, recipe = lmstudio_recipe
    cp = run_launch(recipe, "--agent", "none")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    out = cp.stdout + cp.stderr
    assert "endpoint OK" in out
    assert f"ready: qwen/qwen3-coder-30b at {sim.url}/v1 (context 64,000, output 8,192)" in out
    _check_round_trip(_chat_requests(sim), r"[0-9]{9}")
