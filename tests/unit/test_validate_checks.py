"""Verdicts of `launch validate` against small stub answers: each row of the symptom table."""
from __future__ import annotations

import json

import pytest

from launcher.diagnose import TABLE, lookup, seed_rows
from launcher.validate_checks import (FAIL, PASS, SKIP, WARN, judge_arguments, judge_auth, judge_context,
                                      judge_models, judge_reasoning, judge_round_trip, judge_stream,
                                      judge_tool_call, request_failure)
from launcher.validate_styles import AnthropicStyle, AzureStyle, OpenAIStyle, Reply, ToolCall, make_style

M = "nvidia/nemotron-3-super"
KW = dict(model=M, key_given=True)


def call(args='{"city": "Zurich"}', name="get_weather", id="call_1"):
    return ToolCall(id=id, name=name, arguments=args)


def tool_reply(**kw):
    base = dict(status=200, finish="tool_calls", content="", reasoning="thinking…", tool_calls=[call()])
    base.update(kw)
    return Reply(**base)


def test_table_has_the_seed_rows_with_cause_and_fix():
    assert [r.id for r in seed_rows()] == ["unauthorized", "model-not-found", "length", "prose-tool-call",
                                            "reasoning-in-args", "invalid-json-args", "tool-loop",
                                            "forced-quantization", "proxy-drops"]
    for row in TABLE.values():
        assert row.cause and row.fix and row.symptom
    assert "Bearer" in lookup("unauthorized").fix
    assert "--served-model-name" in lookup("model-not-found").cause
    with pytest.raises(KeyError, match="known:"):
        lookup("nope")


def test_models_pass_and_missing_id_lists_the_ids():
    ok = judge_models(200, {"data": [{"id": M}]}, transport=None, error=None, ids=[M], style="openai", **KW)
    assert ok.ok and ok.status == PASS and M in ok.evidence
    bad = judge_models(200, {"data": [{"id": "a"}, {"id": "b"}]}, transport=None, error=None, ids=["a", "b"],
                       style="openai", **KW)
    assert not bad.ok and bad.symptom == "model-not-found"
    assert "a, b" in bad.diagnosis and "/v1/models" in bad.diagnosis


def test_models_error_body_without_data_is_401_even_with_status_200():
    c = judge_models(200, {"error": "Unauthorized"}, transport=None, error="Unauthorized", ids=None,
                     style="openai", body='{"error": "Unauthorized"}', **KW)
    assert c.symptom == "unauthorized" and "Bearer" in c.fix
    c = judge_models(401, {"error": "Unauthorized"}, transport=None, error="Unauthorized", ids=None,
                     style="openai", model=M, key_given=False)
    assert c.symptom == "unauthorized" and "no key was given" in c.diagnosis


def test_unreachable_and_timeout():
    c = judge_models(None, None, transport="unreachable", error="ConnectError: refused", ids=None,
                     style="openai", **KW)
    assert c.symptom == "unreachable" and not c.ok
    r = Reply(transport="timeout", error="ReadTimeout")
    assert judge_tool_call(r, max_tokens=4096, **KW).symptom == "timeout"


@pytest.mark.parametrize("status,msg,symptom", [
    (404, "The model `x` does not exist.", "model-not-found"),
    (404, "Not Found", "not-found"),
    (400, '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set',
     "no-auto-tool-choice"),
    (400, "[{'type': 'missing', 'loc': ('body',), 'msg': 'Field required', 'input': None}]", "proxy-drops"),
    (400, "JSON decode error", "proxy-drops"),
    (500, "boom", "http-error"),
    (403, "Forbidden", "unauthorized"),
])
def test_http_errors_map_to_rows(status, msg, symptom):
    c = request_failure("tool_call", Reply(status=status, error=msg), **KW)
    assert c is not None and c.symptom == symptom and f"HTTP {status}" in c.evidence


def test_tool_call_pass_and_prose():
    assert judge_tool_call(tool_reply(), max_tokens=4096, **KW).status == PASS
    prose = Reply(status=200, finish="stop", content='<tool_call>{"name": "get_weather"}</tool_call>')
    c = judge_tool_call(prose, max_tokens=4096, **KW)
    assert c.symptom == "prose-tool-call" and "--tool-call-parser" in c.fix
    assert "finish_reason=stop" in c.evidence and "<tool_call>" in c.evidence


def test_length_is_the_reasoning_budget_not_a_parser_failure():
    c = judge_tool_call(Reply(status=200, finish="length", reasoning="x" * 9000), max_tokens=4096, **KW)
    assert c.symptom == "length" and "4096" in c.diagnosis and "max_tokens" in c.fix
    # a reasoning model served without a reasoning parser: unmarked thinking in content, cut by the
    # budget. Still the budget, not a tool-parser failure; the detail says where the reasoning went.
    thinking = "Okay, the user wants the weather in Paris. I should call get_weather with city Paris. " * 40
    c = judge_tool_call(Reply(status=200, finish="length", content=thinking), max_tokens=64, **KW)
    assert c.symptom == "length" and "reasoning used the output budget" in c.diagnosis
    assert "max_tokens was 64" in c.diagnosis
    assert "if no reasoning parser is set, the reasoning shows up as content" in c.diagnosis
    # the same text with finish stop is a tool call written as prose
    c = judge_tool_call(Reply(status=200, finish="stop", content=thinking), max_tokens=64, **KW)
    assert c.symptom == "prose-tool-call"


def test_tool_call_with_stop_finish_warns_and_wrong_tool_fails():
    c = judge_tool_call(tool_reply(finish="stop"), max_tokens=4096, **KW)
    assert c.ok and c.status == WARN
    c = judge_tool_call(tool_reply(tool_calls=[call(name="search")]), max_tokens=4096, **KW)
    assert c.symptom == "wrong-tool"


@pytest.mark.parametrize("args,symptom", [
    ('{"city": "Zurich"}', None),
    ("{'city': 'Zurich'}", "invalid-json-args"),
    ('["Zurich"]', "invalid-json-args"),
    ("{}", "invalid-json-args"),
    ('{"city": "<think>I should call it</think>Zurich"}', "reasoning-in-args"),
    ('<think>hmm</think>{"city": "Zurich"}', "reasoning-in-args"),
])
def test_arguments(args, symptom):
    c = judge_arguments(tool_reply(tool_calls=[call(args)]))
    assert c.symptom == symptom and c.ok == (symptom is None)


def test_arguments_skip_without_a_call():
    c = judge_arguments(Reply(status=200, finish="stop", content="hi"))
    assert c.status == SKIP and not c.ok


def test_reasoning_in_content_either_turn():
    assert judge_reasoning(tool_reply(), Reply(status=200, finish="stop", content="17 °C")).ok
    c = judge_reasoning(tool_reply(content="<think>let me see</think>"), None)
    assert c.symptom == "reasoning-in-content"
    c = judge_reasoning(tool_reply(), Reply(status=200, finish="stop", content="thought</think> it is 17"))
    assert c.symptom == "reasoning-in-content" and "answer turn" in c.evidence


def test_round_trip():
    good = Reply(status=200, finish="stop", content="It is 17 °C with light rain in Zurich.")
    assert judge_round_trip(good, call_id="c1", max_tokens=4096, **KW).ok
    loop = tool_reply()
    c = judge_round_trip(loop, call_id="c1", max_tokens=4096, **KW)
    assert c.symptom == "tool-loop" and "tool_call_id" in c.fix and "c1" in c.evidence
    # a server that ends the turn with "stop" but still calls the tool again is looping all the same
    c = judge_round_trip(tool_reply(finish="stop"), call_id="c1", max_tokens=4096, **KW)
    assert c.symptom == "tool-loop"
    c = judge_round_trip(Reply(status=200, finish="stop", content="I don't know."), call_id="c1",
                         max_tokens=4096, **KW)
    assert c.symptom == "ignored-result"
    assert judge_round_trip(Reply(status=200, finish="length"), call_id="c1", max_tokens=4096, **KW).symptom == "length"
    assert judge_round_trip(None, call_id=None, max_tokens=4096, **KW).status == SKIP


def test_stream_compares_with_the_non_streamed_call():
    s = tool_reply(stream_done=True, events=9)
    assert judge_stream(s, tool_reply(), **KW).ok
    broken = tool_reply(stream_done=True, events=9, tool_calls=[call('{"city":"')])
    c = judge_stream(broken, tool_reply(), **KW)
    assert c.symptom == "stream-broken"
    c = judge_stream(tool_reply(stream_done=True, events=3, tool_calls=[]), tool_reply(), **KW)
    assert c.symptom == "stream-broken"
    # the same bad arguments both ways are the arguments check's business, not streaming's
    same_bad = "{'city': 'Zurich'}"
    assert judge_stream(tool_reply(stream_done=True, events=9, tool_calls=[call(same_bad)]),
                        tool_reply(tool_calls=[call(same_bad)]), **KW).ok
    # no events / no terminator: malformed
    c = judge_stream(Reply(status=200, stream_done=False, events=0), tool_reply(), **KW)
    assert c.symptom == "stream-malformed"
    # a text-only model: well-formed stream passes on its own
    text = Reply(status=200, finish="stop", content="noise", stream_done=True, events=4)
    assert judge_stream(text, Reply(status=200, finish="stop", content="noise"), **KW).ok


def test_auth():
    assert judge_auth(401, transport=None, key_given=True, style="openai").status == PASS
    c = judge_auth(200, transport=None, key_given=True, style="openai")
    assert c.ok and c.status == WARN and c.symptom == "auth-open"
    assert judge_auth(None, transport="unreachable", key_given=True, style="openai").status == SKIP


def test_context():
    assert judge_context(None, limit=None, prompt_tokens=0, **KW).status == SKIP
    msg = "This model's maximum context length is 1000 tokens. However, your request has 1200 input tokens."
    c = judge_context(Reply(status=400, error=msg), limit=2000, prompt_tokens=1900, **KW)
    assert c.symptom == "context-rejected" and not c.ok
    assert judge_context(Reply(status=200, finish="stop", content="OK"), limit=2000, prompt_tokens=1900, **KW).ok


def test_secrets_are_redacted_in_evidence():
    from launcher.auth import register_secret

    register_secret("sk-very-secret-value-123")
    c = judge_tool_call(Reply(status=200, finish="stop", content="key sk-very-secret-value-123 leaked"),
                        max_tokens=4096, **KW)
    assert "sk-very-secret" not in json.dumps(c.to_json()) and "[set]" in c.evidence


# -- wire formats ---------------------------------------------------------------------------

def test_openai_parse_reads_reasoning_and_reasoning_content():
    st = OpenAIStyle("http://h/v1/", M, "k")
    r = st.parse(200, {"choices": [{"finish_reason": "tool_calls", "message": {
        "content": None, "reasoning_content": "old field",
        "tool_calls": [{"id": "x", "function": {"name": "get_weather", "arguments": '{"city":"Zurich"}'}}]}}]})
    assert r.reasoning == "old field" and r.tool_calls[0].id == "x" and r.content == ""
    assert st.chat_url() == "http://h/v1/chat/completions" and st.headers()["Authorization"] == "Bearer k"
    assert "Authorization" not in st.headers(with_key=False)
    assert st.parse(200, {"object": "list"}).shape_ok is False


def test_openai_stream_assembles_tool_call():
    chunks = [{"choices": [{"delta": {"reasoning": "hm"}}]},
              {"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c9", "function": {"name": "get_weather",
                                                                                          "arguments": ""}}]}}]},
              {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"city"'}}]}}]},
              {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ': "Zurich"}'}}]}}]},
              {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}]
    lines = []
    for c in chunks:
        lines += [f"data: {json.dumps(c)}", ""]
    lines += ["data: [DONE]", ""]
    r = OpenAIStyle("http://h/v1", M, None).parse_stream(lines)
    assert r.stream_done and r.finish == "tool_calls" and r.events == 5 and r.reasoning == "hm"
    assert r.tool_calls[0].id == "c9" and json.loads(r.tool_calls[0].arguments) == {"city": "Zurich"}


def test_anthropic_parse_and_stream():
    st = AnthropicStyle("http://h:8000/v1", M, "k")
    assert st.chat_url() == "http://h:8000/v1/messages"
    assert st.headers()["x-api-key"] == "k" and st.headers()["Authorization"] == "Bearer k"
    assert "Authorization" not in AnthropicStyle("https://api.anthropic.com", M, "k").headers()
    r = st.parse(200, {"content": [{"type": "thinking", "thinking": "t"},
                                   {"type": "tool_use", "id": "tu1", "name": "get_weather", "input": {"city": "Z"}}],
                       "stop_reason": "tool_use"})
    assert r.finish == "tool_calls" and r.reasoning == "t" and json.loads(r.tool_calls[0].arguments) == {"city": "Z"}
    events = [{"type": "message_start", "message": {}},
              {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "tu1",
                                                                            "name": "get_weather", "input": {}}},
              {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta",
                                                                    "partial_json": '{"city": '}},
              {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta",
                                                                    "partial_json": '"Zurich"}'}},
              {"type": "message_delta", "delta": {"stop_reason": "tool_use"}},
              {"type": "message_stop"}]
    lines = []
    for e in events:
        lines += [f"event: {e['type']}", f"data: {json.dumps(e)}", ""]
    s = st.parse_stream(lines)
    assert s.stream_done and s.finish == "tool_calls" and s.tool_calls[0].arguments == '{"city": "Zurich"}'
    rt = st.round_trip(r.tool_calls[0])
    assert rt[1]["content"][0]["type"] == "tool_use" and rt[2]["content"][0]["tool_use_id"] == "tu1"


def test_azure_paths_and_header():
    st = make_style("azure", "https://res.openai.azure.com/openai", M, "k", azure_deployment="gpt4o",
                    azure_api_version="2024-10-21")
    assert isinstance(st, AzureStyle)
    assert st.chat_url() == ("https://res.openai.azure.com/openai/deployments/gpt4o/chat/completions"
                             "?api-version=2024-10-21")
    assert st.headers() == {"Content-Type": "application/json", "api-key": "k"}
    assert "model" not in st.body(st.ask(), sampling={}, max_tokens=10)
    from launcher.errors import InputError

    with pytest.raises(InputError, match="deployment"):
        make_style("azure", "https://x", M, "k")


def test_sampling_goes_into_the_body():
    b = OpenAIStyle("http://h/v1", M, None).body([], sampling={"temperature": 1.0, "top_p": 0.95}, max_tokens=4096)
    assert b["temperature"] == 1.0 and b["top_p"] == 0.95 and b["tool_choice"] == "auto" and b["max_tokens"] == 4096
    a = AnthropicStyle("http://h", M, None).body([], sampling={"temperature": 1.0, "min_p": 0.1}, max_tokens=10)
    assert a["temperature"] == 1.0 and "min_p" not in a and a["tool_choice"] == {"type": "auto"}
