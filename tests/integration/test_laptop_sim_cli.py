"""`launch sim ollama` / `launch sim lmstudio` as real processes: the documented wire formats
(Ollama's NDJSON pull stream, OpenAI SSE chat with tool calls, LM Studio REST v1 load + read-back)."""
from __future__ import annotations

import json
import os
import signal
import subprocess

import httpx
import pytest

from conftest import LAUNCH, free_port


@pytest.fixture
def serve(isolated):
    procs = []

    def _start(*args):
        port = free_port()
        p = subprocess.Popen([*LAUNCH, "sim", *args, "--port", str(port)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
        procs.append(p)
        line = p.stdout.readline()  # "… simulator listening on URL" once it serves
        assert f"127.0.0.1:{port}" in line, line
        return f"http://127.0.0.1:{port}"

    yield _start
    for p in procs:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def test_sim_ollama_pull_stream_and_chat(serve):
    url = serve("ollama", "--max-context", "8192")
    assert httpx.get(url + "/api/version").json()["version"]
    with httpx.stream("POST", url + "/api/pull", json={"model": "qwen3:0.6b"}) as r:
        assert r.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(x) for x in r.iter_lines() if x]
    assert lines[0] == {"status": "pulling manifest"} and lines[-1] == {"status": "success"}
    layer = [x for x in lines if x.get("digest")]
    assert "completed" not in layer[0] and layer[-1]["completed"] == layer[-1]["total"]
    with httpx.stream("POST", url + "/api/pull", json={"model": "nosuch:1b"}) as r:
        bad = [json.loads(x) for x in r.iter_lines() if x]
    assert bad[-1] == {"error": "pull model manifest: file does not exist"}
    tools = [{"type": "function", "function": {"name": "read", "parameters": {
        "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}]
    with httpx.stream("POST", url + "/v1/chat/completions", json={
            "model": "qwen3:0.6b", "stream": True, "tools": tools,
            "messages": [{"role": "user", "content": "read it"}]}) as r:
        events = [x[len("data: "):] for x in r.iter_lines() if x.startswith("data: ")]
    assert events[-1] == "[DONE]"
    calls = [c for e in events[:-1] for c in json.loads(e)["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["function"]["name"] == "read" and json.loads(calls[0]["function"]["arguments"]) == {"path": "README.md"}
    # the load steps the context down to what "memory" allows
    httpx.post(url + "/api/create", json={"model": "q:64k", "from": "qwen3:0.6b", "parameters": {"num_ctx": 32768}})
    httpx.post(url + "/api/generate", json={"model": "q:64k", "stream": False})
    ps = httpx.get(url + "/api/ps").json()["models"]
    assert [m["context_length"] for m in ps if m["name"] == "q:64k"] == [8192]


def test_sim_lmstudio_silent_reduction(serve):
    url = serve("lmstudio", "--max-context", "16384", "--report-requested")
    r = httpx.post(url + "/api/v1/models/load", json={"model": "qwen/qwen3-coder-30b", "context_length": 65536},
                   timeout=10).json()
    assert r["status"] == "loaded" and r["load_config"]["context_length"] == 65536  # what it claims
    models = httpx.get(url + "/api/v1/models").json()["models"]
    inst = [i for m in models for i in m["loaded_instances"]]
    assert inst[0]["config"]["context_length"] == 16384  # what it did
    v0 = httpx.get(url + "/api/v0/models").json()["data"]
    assert [m["loaded_context_length"] for m in v0 if m["state"] == "loaded"] == [16384]


def test_launch_up_json_against_the_ollama_sim(serve, tmp_path):
    """`launch up RECIPE --json` end to end: the CLI hands its loaded recipe to the Ollama bring-up."""
    from conftest import run_launch

    url = serve("ollama", "--local", "qwen3:0.6b")
    port = url.rsplit(":", 1)[1]
    recipe = tmp_path / "lap.yaml"
    recipe.write_text(f"name: lap\nengine: ollama\nmodel: qwen3:0.6b\nport: {port}\nollama:\n  context: 32768\n")
    cp = run_launch("up", str(recipe), "--json", env={"LAUNCHER_FREE_MEMORY": "64G"})
    assert cp.returncode == 0, cp.stderr
    d = json.loads(cp.stdout)
    assert d["model"] == "qwen3:0.6b-32k" and d["attached"] is True and d["base_url"] == url + "/v1"
    assert d["capacity"]["max_model_len"] == 32768
    assert "below 65536" in cp.stderr  # the low-context warning reaches the user
