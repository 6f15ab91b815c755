"""The vLLM simulator over real HTTP on 127.0.0.1. Each assertion stands for a real vLLM behaviour
(../shared/reference/vllm.md and agents.md) unless it says it checks a simulator knob."""
from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from launcher.sim import FAULTS, SimConfig, SimExited, VllmSim, count_tokens, messages_of_size

KEY = "sim-secret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MODEL = "nvidia/nemotron-3-super"
WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a place",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}, "days": {"type": "integer"},
                                                    "metric": {"type": "boolean"}},
                   "required": ["location", "days", "metric"]}}}]
ASK = [{"role": "user", "content": "What is the weather in Zurich?"}]


def make(**kw) -> VllmSim:
    kw.setdefault("quiet", True)
    return VllmSim(SimConfig(**kw)).start()


@pytest.fixture(scope="module")
def sim():
    s = make(api_key=KEY)
    yield s
    s.stop()


@pytest.fixture
def client():
    with httpx.Client(timeout=10) as c:
        yield c


def chat(client, sim, body, headers=AUTH):
    return client.post(sim.url + "/v1/chat/completions", json=body, headers=headers)


def sse_data(resp) -> list:
    out = []
    for line in resp.iter_lines():
        if line.startswith("data: "):
            payload = line[6:]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def assemble(chunks) -> tuple[dict, str | None, dict | None]:
    """Assemble streamed chat deltas the way an OpenAI client does."""
    calls: dict[int, dict] = {}
    finish, usage, content, reasoning = None, None, "", ""
    for ch in chunks:
        if ch == "[DONE]":
            continue
        if ch.get("usage"):
            usage = ch["usage"]
        for choice in ch["choices"]:
            d = choice["delta"]
            content += d.get("content") or ""
            reasoning += d.get("reasoning") or ""
            for tc in d.get("tool_calls") or []:
                c = calls.setdefault(tc["index"], {"id": None, "name": "", "arguments": ""})
                c["id"] = tc.get("id") or c["id"]
                fn = tc.get("function") or {}
                c["name"] += fn.get("name") or ""
                c["arguments"] += fn.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    return {"calls": calls, "content": content, "reasoning": reasoning}, finish, usage


# -- basics ------------------------------------------------------------------------------------

def test_open_paths_and_models(sim, client):
    h = client.get(sim.url + "/health")
    assert h.status_code == 200 and h.content == b""
    assert client.get(sim.url + "/version").json() == {"version": sim.config.version}
    models = client.get(sim.url + "/v1/models", headers=AUTH).json()
    m = models["data"][0]
    assert models["object"] == "list"
    assert (m["id"], m["object"], m["owned_by"], m["max_model_len"]) == (MODEL, "model", "vllm", 262144)
    assert m["root"] == sim.config.model and "parent" in m and m["permission"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}])
def test_v1_needs_the_key(sim, client, headers):
    r = client.get(sim.url + "/v1/models", headers=headers)
    assert r.status_code == 401 and r.json() == {"error": "Unauthorized"}
    r = chat(client, sim, {"model": MODEL, "messages": ASK}, headers=headers)
    assert r.status_code == 401
    assert client.get(sim.url + "/metrics").status_code == 200  # only /v1 is protected


def test_recorded_requests_never_keep_the_key(tmp_path, client):
    rec = tmp_path / "rec.jsonl"
    s = make(api_key=KEY, record=str(rec))
    try:
        chat(client, s, {"model": MODEL, "messages": ASK})
        client.get(s.url + "/v1/models", headers={"Authorization": "Bearer nope"})
    finally:
        s.stop()
    ok, bad = s.requests
    assert ok["auth_ok"] is True and bad["auth_ok"] is False and ok["json"]["messages"] == ASK
    assert ok["path"] == "/v1/chat/completions" and ok["method"] == "POST"
    assert "authorization" not in ok["headers"] and len(ok["auth_sha256"]) == 64
    text = rec.read_text()
    assert KEY not in text and len(text.splitlines()) == 2


def test_connection_refused_while_booting():
    s = VllmSim(SimConfig(quiet=True, load_seconds=5)).start(wait=False)  # the first GET lands while booting
    try:
        with pytest.raises(httpx.ConnectError):
            httpx.get(s.url + "/health", timeout=2)
        assert s.wait_ready(10) is True
        assert httpx.get(s.url + "/health", timeout=2).status_code == 200
        assert any("Application startup complete." in line for line in s.log_lines)
    finally:
        s.stop()


def test_unknown_model_is_404(sim, client):
    r = chat(client, sim, {"model": "gpt-4", "messages": ASK})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "The model `gpt-4` does not exist."


# -- chat ----------------------------------------------------------------------------------------

def test_tool_call_as_a_configured_parser_gives_it(sim, client):
    r = chat(client, sim, {"model": MODEL, "messages": ASK, "tools": WEATHER, "tool_choice": "auto",
                           "max_tokens": 2048})
    ch = r.json()["choices"][0]
    msg = ch["message"]
    assert ch["finish_reason"] == "tool_calls" and msg["content"] is None
    call = msg["tool_calls"][0]
    assert call["id"].startswith("chatcmpl-tool-") and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"location": "Zurich", "days": 1, "metric": True}
    assert msg["reasoning"] and msg["reasoning"] == msg["reasoning_content"]
    assert "think" not in call["function"]["arguments"]
    usage = r.json()["usage"]
    assert usage["prompt_tokens"] == count_tokens(ASK, WEATHER)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > usage["prompt_tokens"]


def test_stream_assembles_to_the_same_call(sim, client):
    body = {"model": MODEL, "messages": ASK, "tools": WEATHER, "max_tokens": 2048}
    plain = chat(client, sim, body).json()["choices"][0]["message"]["tool_calls"][0]["function"]
    with client.stream("POST", sim.url + "/v1/chat/completions", headers=AUTH,
                       json={**body, "stream": True, "stream_options": {"include_usage": True}}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        chunks = sse_data(r)
    assert chunks[-1] == "[DONE]"
    got, finish, usage = assemble(chunks)
    assert finish == "tool_calls" and usage and usage["completion_tokens"] > 0
    call = got["calls"][0]
    assert (call["name"], json.loads(call["arguments"])) == (plain["name"], json.loads(plain["arguments"]))
    assert call["id"].startswith("chatcmpl-tool-") and got["content"] == "" and got["reasoning"]


def test_tool_result_round_trip(sim, client):
    first = chat(client, sim, {"model": MODEL, "messages": ASK, "tools": WEATHER}).json()
    call = first["choices"][0]["message"]["tool_calls"][0]
    msgs = ASK + [{"role": "assistant", "content": None, "tool_calls": [call]},
                  {"role": "tool", "tool_call_id": call["id"], "content": "Sunny, 21 degrees"}]
    r = chat(client, sim, {"model": MODEL, "messages": msgs, "tools": WEATHER}).json()["choices"][0]
    assert r["finish_reason"] == "stop" and "Sunny, 21 degrees" in r["message"]["content"]
    assert r["message"]["tool_calls"] == []


def test_plain_answer_echoes_and_max_tokens(sim, client):
    msgs = [{"role": "system", "content": "Generate a title for this conversation."},
            {"role": "user", "content": "Refactor the parser module"}]
    r = chat(client, sim, {"model": MODEL, "messages": msgs}).json()["choices"][0]
    assert r["finish_reason"] == "stop" and "Refactor the parser module" in r["message"]["content"]
    short = chat(client, sim, {"model": MODEL, "messages": msgs, "max_tokens": 3}).json()
    assert short["choices"][0]["finish_reason"] == "length" and short["usage"]["completion_tokens"] == 3


def test_auto_tool_choice_needs_the_flags(client):
    s = make(enable_auto_tool_choice=False)
    try:
        r = chat(client, s, {"model": MODEL, "messages": ASK, "tools": WEATHER, "tool_choice": "auto"}, {})
        assert r.status_code == 400
        assert r.json()["error"]["message"] == ('"auto" tool choice requires --enable-auto-tool-choice and '
                                                "--tool-call-parser to be set")
        assert chat(client, s, {"model": MODEL, "messages": ASK}, {}).status_code == 200
    finally:
        s.stop()


def test_context_limit_is_enforced(client):
    s = make(max_model_len=1000, kv_tokens=5000)
    try:
        msgs = messages_of_size(900)
        assert count_tokens(msgs) == 900
        ok = chat(client, s, {"model": MODEL, "messages": msgs, "max_tokens": 100}, {})
        assert ok.status_code == 200 and ok.json()["usage"]["prompt_tokens"] == 900
        bad = chat(client, s, {"model": MODEL, "messages": msgs, "max_tokens": 101}, {})
        assert bad.status_code == 400
        assert bad.json()["error"]["message"] == (
            "This model's maximum context length is 1000 tokens. However, you requested 1001 tokens "
            "(900 in the messages, 101 in the completion). Please reduce the length of the messages or completion.")
        too_long = chat(client, s, {"model": MODEL, "messages": messages_of_size(1050)}, {})
        assert too_long.status_code == 400 and "1050 input tokens" in too_long.json()["error"]["message"]
        # without max_tokens the completion gets what is left: a prompt filling the window leaves
        # nothing to generate and is refused; one token short, it gets exactly that one token
        full = chat(client, s, {"model": MODEL, "messages": messages_of_size(1000)}, {})
        assert full.status_code == 400 and "1000 input tokens" in full.json()["error"]["message"]
        room = chat(client, s, {"model": MODEL, "messages": messages_of_size(999)}, {})
        assert room.status_code == 200 and room.json()["usage"]["completion_tokens"] == 1
    finally:
        s.stop()


# -- faults (agents.md validation table) ---------------------------------------------------------

def _tool_turn(client, s, headers=None, **extra):
    return chat(client, s, {"model": MODEL, "messages": ASK, "tools": WEATHER, "tool_choice": "auto",
                            "max_tokens": 2048, **extra}, headers or {})


def test_fault_names_are_the_contract():
    assert FAULTS == {"auth-open", "wrong-model", "prose-tool-call", "reasoning-in-args", "reasoning-in-content",
                      "invalid-json-args", "tool-loop", "length", "drop-body", "no-auto-tool-choice",
                      "stream-broken"}
    with pytest.raises(ValueError):
        SimConfig(faults={"nope"})


@pytest.fixture
def faulty(request):
    s = make(faults={request.param}, api_key=KEY)
    yield s
    s.stop()


@pytest.mark.parametrize("faulty", ["auth-open"], indirect=True)
def test_fault_auth_open(faulty, client):
    assert client.get(faulty.url + "/v1/models").status_code == 200
    assert _tool_turn(client, faulty, {"Authorization": "Bearer whatever"}).status_code == 200


@pytest.mark.parametrize("faulty", ["wrong-model"], indirect=True)
def test_fault_wrong_model(faulty, client):
    ids = [m["id"] for m in client.get(faulty.url + "/v1/models", headers=AUTH).json()["data"]]
    assert MODEL not in ids
    assert _tool_turn(client, faulty, AUTH).status_code == 404
    assert _tool_turn(client, faulty, AUTH, model=ids[0]).status_code == 200


@pytest.mark.parametrize("faulty", ["prose-tool-call"], indirect=True)
def test_fault_prose_tool_call(faulty, client):
    ch = _tool_turn(client, faulty, AUTH).json()["choices"][0]
    assert ch["finish_reason"] == "stop" and not ch["message"]["tool_calls"]
    assert "get_weather" in ch["message"]["content"]


@pytest.mark.parametrize("faulty", ["reasoning-in-args"], indirect=True)
def test_fault_reasoning_in_args(faulty, client):
    msg = _tool_turn(client, faulty, AUTH).json()["choices"][0]["message"]
    args = msg["tool_calls"][0]["function"]["arguments"]
    assert "<think>" in args and "I should call get_weather" in args and not msg["reasoning"]


@pytest.mark.parametrize("faulty", ["reasoning-in-content"], indirect=True)
def test_fault_reasoning_in_content(faulty, client):
    msg = _tool_turn(client, faulty, AUTH).json()["choices"][0]["message"]
    assert "<think>" in msg["content"] and not msg["reasoning"]


@pytest.mark.parametrize("faulty", ["invalid-json-args"], indirect=True)
def test_fault_invalid_json_args(faulty, client):
    args = _tool_turn(client, faulty, AUTH).json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    with pytest.raises(ValueError):
        json.loads(args)


@pytest.mark.parametrize("faulty", ["tool-loop"], indirect=True)
def test_fault_tool_loop(faulty, client):
    call = _tool_turn(client, faulty, AUTH).json()["choices"][0]["message"]["tool_calls"][0]
    msgs = ASK + [{"role": "assistant", "content": None, "tool_calls": [call]},
                  {"role": "tool", "tool_call_id": call["id"], "content": "Sunny"}]
    ch = chat(client, faulty, {"model": MODEL, "messages": msgs, "tools": WEATHER}).json()["choices"][0]
    assert ch["finish_reason"] == "tool_calls" and ch["message"]["tool_calls"]


@pytest.mark.parametrize("faulty", ["length"], indirect=True)
@pytest.mark.parametrize("max_tokens", [64, 4096])
def test_fault_length(faulty, client, max_tokens):
    r = _tool_turn(client, faulty, AUTH, max_tokens=max_tokens).json()
    ch = r["choices"][0]
    assert ch["finish_reason"] == "length" and not ch["message"]["tool_calls"]
    assert r["usage"]["completion_tokens"] == max_tokens


@pytest.mark.parametrize("faulty", ["drop-body"], indirect=True)
def test_fault_drop_body(faulty, client):
    r = _tool_turn(client, faulty, AUTH)
    assert r.status_code == 400 and "Field required" in r.json()["error"]["message"]
    assert client.get(faulty.url + "/v1/models", headers=AUTH).status_code == 200


@pytest.mark.parametrize("faulty", ["no-auto-tool-choice"], indirect=True)
def test_fault_no_auto_tool_choice(faulty, client):
    r = _tool_turn(client, faulty, AUTH)
    assert r.status_code == 400 and "--enable-auto-tool-choice" in r.json()["error"]["message"]


@pytest.mark.parametrize("faulty", ["stream-broken"], indirect=True)
def test_fault_stream_broken(faulty, client):
    plain = _tool_turn(client, faulty, AUTH).json()["choices"][0]["message"]["tool_calls"][0]["function"]
    with client.stream("POST", faulty.url + "/v1/chat/completions", headers=AUTH,
                       json={"model": MODEL, "messages": ASK, "tools": WEATHER, "stream": True}) as r:
        got, _, _ = assemble(sse_data(r))
    assert got["calls"][0]["arguments"] != plain["arguments"]


def test_faults_from_env(monkeypatch):
    from launcher.sim.vllm_config import env_overrides
    assert env_overrides({"LAUNCHER_SIM_FAULTS": "length, tool-loop"})["faults"] == {"length", "tool-loop"}


# -- other APIs --------------------------------------------------------------------------------

def test_anthropic_messages(sim, client):
    tools = [{"name": "get_weather", "input_schema": WEATHER[0]["function"]["parameters"]}]
    body = {"model": MODEL, "max_tokens": 1024, "messages": ASK, "tools": tools}
    r = client.post(sim.url + "/v1/messages", json=body, headers=AUTH).json()
    assert r["type"] == "message" and r["stop_reason"] == "tool_use"
    use = [b for b in r["content"] if b["type"] == "tool_use"][0]
    assert use["input"]["location"] == "Zurich"
    follow = {**body, "messages": ASK + [
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": "Rainy"}]}]}
    r2 = client.post(sim.url + "/v1/messages", json=follow, headers=AUTH).json()
    assert r2["stop_reason"] == "end_turn" and "Rainy" in [b for b in r2["content"] if b["type"] == "text"][0]["text"]
    with client.stream("POST", sim.url + "/v1/messages", json={**body, "stream": True}, headers=AUTH) as s:
        events = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: ")]
    types = [e["type"] for e in events]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    partial = "".join(e["delta"].get("partial_json", "") for e in events if e["type"] == "content_block_delta")
    assert json.loads(partial) == use["input"]
    n = client.post(sim.url + "/v1/messages/count_tokens", json=body, headers=AUTH).json()
    assert n == {"input_tokens": r["usage"]["input_tokens"]}


def test_responses_api(sim, client):
    tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER[0]["function"]["parameters"]}]
    body = {"model": MODEL, "input": "What is the weather in Zurich?", "tools": tools, "instructions": "Be brief."}
    r = client.post(sim.url + "/v1/responses", json=body, headers=AUTH).json()
    assert r["object"] == "response" and r["status"] == "completed"
    fc = [o for o in r["output"] if o["type"] == "function_call"][0]
    assert json.loads(fc["arguments"])["location"] == "Zurich"
    follow = {**body, "input": [{"role": "user", "content": "weather?"},
                                {"type": "function_call", "call_id": fc["call_id"], "name": fc["name"],
                                 "arguments": fc["arguments"]},
                                {"type": "function_call_output", "call_id": fc["call_id"], "output": "Foggy"}]}
    r2 = client.post(sim.url + "/v1/responses", json=follow, headers=AUTH).json()
    msg = [o for o in r2["output"] if o["type"] == "message"][0]
    assert "Foggy" in msg["content"][0]["text"]
    with client.stream("POST", sim.url + "/v1/responses", json={**body, "stream": True}, headers=AUTH) as s:
        events = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: ")]
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    args = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    assert json.loads(args) == json.loads(fc["arguments"])


# -- metrics and lifetime failures -------------------------------------------------------------

def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} missing")


def test_metrics_move_while_generating(client):
    s = make(latency_s=5, kv_tokens=100000, max_model_len=50000)  # a /metrics poll lands while it runs
    try:
        before = client.get(s.url + "/metrics").text
        assert 'num_gpu_blocks="6250"' in before and 'kv_cache_size_tokens="100000"' in before
        assert 'model_name="nvidia/nemotron-3-super"' in before
        t = threading.Thread(target=lambda: chat(client, s, {"messages": ASK}, {}))
        t.start()
        # polled, not slept: the request is running for latency_s once it arrives, however late
        deadline = time.monotonic() + 10
        while True:
            during = client.get(s.url + "/metrics").text
            if _metric(during, "vllm:num_requests_running") == 1.0 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert _metric(during, "vllm:num_requests_running") == 1.0
        assert _metric(during, "vllm:kv_cache_usage_perc") > 0
        t.join(10)
        assert not t.is_alive()
        after = client.get(s.url + "/metrics").text
        assert _metric(after, "vllm:generation_tokens_total") > _metric(before, "vllm:generation_tokens_total")
        assert _metric(after, "vllm:prompt_tokens_total") == count_tokens(ASK)
        assert _metric(after, "vllm:num_requests_running") == 0.0
    finally:
        s.stop()


def test_wedge_health_ok_but_no_progress(client):
    s = make(fail="wedge")
    try:
        assert client.get(s.url + "/health").status_code == 200
        assert client.get(s.url + "/v1/models").status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            client.post(s.url + "/v1/chat/completions", json={"messages": ASK}, timeout=0.5)
        m1 = client.get(s.url + "/metrics").text
        time.sleep(0.3)
        m2 = client.get(s.url + "/metrics").text
        assert _metric(m2, "vllm:num_requests_running") >= 1
        assert _metric(m1, "vllm:generation_tokens_total") == _metric(m2, "vllm:generation_tokens_total") == 0
    finally:
        s.stop()


def test_hang_accepts_tcp_never_answers():
    s = make(fail="hang")
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=2):
            pass
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(s.url + "/health", timeout=httpx.Timeout(0.4, connect=2))
    finally:
        s.stop()


def test_crash_after_ready():
    # ready for 5 s: room for the first /health on a loaded machine (1.5 s was not, once in CI), then the
    # engine dies
    s = make(fail="crash-after-ready", crash_after_s=5.0)
    try:
        assert httpx.get(s.url + "/health", timeout=2).status_code == 200
        assert s.wait_exit(20) == 1
        assert any("EngineDeadError" in line for line in s.log_lines)
        with pytest.raises(httpx.ConnectError):
            httpx.get(s.url + "/health", timeout=1)
    finally:
        s.stop()


def test_startup_failure_in_process():
    s = make(fail="kv-too-small", max_model_len=300000, kv_tokens=160000)
    assert s.exit_code == 1
    with pytest.raises(SimExited):
        s.wait_ready(1)
    assert any("estimated maximum model length is 160000" in line for line in s.log_lines)


def test_64_instances_in_one_process():
    before = threading.active_count()
    sims = [make() for _ in range(64)]
    try:
        with httpx.Client(timeout=5) as c:
            assert all(c.get(s.url + "/health").status_code == 200 for s in sims)
            assert c.post(sims[-1].url + "/v1/chat/completions", json={"messages": ASK}).status_code == 200
    finally:
        t0 = time.monotonic()
        for s in sims:
            s.stop()
        assert time.monotonic() - t0 < 20  # a serial poll-interval wait per server would take 32 s
    time.sleep(0.1)
    assert threading.active_count() <= before + 70  # only lingering keep-alive handler threads


def test_tool_choice_needs_tools_and_thinking_switch(sim, client):
    r = chat(client, sim, {"model": MODEL, "messages": ASK, "tool_choice": "auto"})
    assert r.status_code == 400 and "`tools` must be set" in r.json()["error"]["message"]
    msg = chat(client, sim, {"model": MODEL, "messages": ASK,
                             "chat_template_kwargs": {"enable_thinking": False}}).json()["choices"][0]["message"]
    assert msg["reasoning"] is None and msg["content"]


def test_length_fault_stream_stays_small(client):
    s = make(faults={"length"})
    try:
        with client.stream("POST", s.url + "/v1/chat/completions",
                           json={"messages": ASK, "tools": WEATHER, "stream": True, "max_tokens": 30000}) as r:
            chunks = sse_data(r)
        got, finish, _ = assemble(chunks)
        assert finish == "length" and not got["calls"] and len(got["reasoning"]) == 120000
        assert len(chunks) < 300
    finally:
        s.stop()


def test_booting_and_idle_cost_no_cpu():
    """A simulated 3 s start-up sleeps; it does not spin (the start-up watch bench measures launch, not us)."""
    c0 = time.process_time()
    s = VllmSim(SimConfig(quiet=True, load_seconds=3.0)).start(wait=False)
    try:
        assert s.wait_ready(15)
        time.sleep(0.3)
        # spinning through 3.3 s would cost about 3.3 s of CPU; the bound leaves room for the whole test
        # process's other threads and a slow machine
        assert time.process_time() - c0 < 1.5
        assert s.ready_at is not None and s.ready_at <= time.time()
    finally:
        s.stop()
