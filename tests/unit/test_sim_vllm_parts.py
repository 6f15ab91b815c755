"""Pure parts of the vLLM simulator: token counting, tool arguments, turn planning, log lines."""
from __future__ import annotations

import json
import re

import pytest

from launcher.sim import SimConfig, count_tokens, messages_of_size
from launcher.sim.vllm_chat import arguments_for, plan_turn
from launcher.sim.vllm_cli import config_from_argv, parse_len
from launcher.sim.vllm_logs import LISTEN, Prefix, boot_script, kv_capacity_lines

TOOLS = [{"type": "function", "function": {"name": "read", "parameters": {
    "type": "object", "properties": {"filePath": {"type": "string"}, "limit": {"type": "number"}},
    "required": ["filePath"]}}}]


def test_count_tokens_formula():
    # 3 primer + (4 + ceil(len/4)) per message; tools: ceil(len(compact sorted json)/4)
    assert count_tokens([]) == 3
    assert count_tokens([{"role": "user", "content": "abcd"}]) == 3 + 4 + 1
    assert count_tokens([{"role": "user", "content": "abcde"}]) == 3 + 4 + 2
    parts = [{"role": "user", "content": [{"type": "text", "text": "ab"}, {"type": "text", "text": "cd"}]}]
    assert count_tokens(parts) == 8
    call = {"role": "assistant", "content": None,
            "tool_calls": [{"id": "x", "function": {"name": "read", "arguments": "{}"}}]}
    assert count_tokens([call]) == 3 + 4 + 2  # "read{}" is 6 chars
    tools_len = len(json.dumps(TOOLS, sort_keys=True, separators=(",", ":")))
    assert count_tokens([], TOOLS) == 3 + -(-tools_len // 4)


@pytest.mark.parametrize("n", [8, 9, 100, 1001, 40960])
def test_messages_of_size_is_exact(n):
    assert count_tokens(messages_of_size(n)) == n


def _valid(value, schema) -> bool:
    """A small JSON-schema check (type, enum, const, anyOf/oneOf, required, properties, items)."""
    if not isinstance(schema, dict):
        return True
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "const" in schema and value != schema["const"]:
        return False
    for alt in ("anyOf", "oneOf"):
        if schema.get(alt) and not any(_valid(value, s) for s in schema[alt]):
            return False
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if kinds:
        py = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list,
              "object": dict, "null": type(None)}
        if not any(isinstance(value, py[k]) and not (k in ("integer", "number") and isinstance(value, bool))
                   for k in kinds):
            return False
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        if any(r not in value for r in schema.get("required") or []):
            return False
        return all(_valid(v, props.get(k, {})) for k, v in value.items())
    if isinstance(value, list):
        return all(_valid(v, schema.get("items") or {}) for v in value)
    return True


SCHEMAS = [
    TOOLS[0]["function"]["parameters"],
    {"type": "object", "required": ["city", "n", "flag", "tags", "mode", "opt"],
     "properties": {"city": {"type": "string"}, "n": {"type": "integer"}, "flag": {"type": "boolean"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "mode": {"type": "string", "enum": ["fast", "slow"]},
                    "opt": {"type": ["null", "number"]}}},
    # what zod-generated tool schemas (OpenCode's) look like: nullable unions, nesting, consts
    {"type": "object", "required": ["limit", "edit", "kind"],
     "properties": {"limit": {"anyOf": [{"type": "null"}, {"type": "integer"}]},
                    "edit": {"type": "object", "required": ["oldString", "lines"],
                             "properties": {"oldString": {"type": "string"},
                                            "lines": {"type": "array", "items": {"type": "integer"}}}},
                    "kind": {"const": "replace"}}},
    {"type": "object", "properties": {"pattern": {"type": "string"}, "path": {"type": "string"}}},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_arguments_satisfy_the_schema(schema):
    """A correctly configured tool parser hands back arguments the tool's schema accepts."""
    args = arguments_for(schema)
    assert isinstance(args, dict) and _valid(args, schema), args
    assert set(schema.get("required") or []) <= set(args)
    if not schema.get("required"):
        assert len(args) == 1  # simulator choice: the first property when none is required


def _user(text="hi"):
    return [{"role": "user", "content": text}]


def test_plan_turn_tool_call_and_choice_none():
    cfg = SimConfig()
    t = plan_turn(_user(), TOOLS, "auto", 4096, cfg)
    assert t.finish == "tool_calls" and t.content is None and t.tool_calls[0].name == "read"
    assert t.reasoning and "read" not in t.tool_calls[0].arguments.replace("README", "")
    assert plan_turn(_user(), TOOLS, "none", 4096, cfg).tool_calls == []


def test_plan_turn_without_reasoning_parser_has_no_reasoning():
    t = plan_turn(_user("hello there"), None, None, 4096, SimConfig(reasoning_parser=None))
    assert t.reasoning is None and "hello there" in t.content and t.finish == "stop"


def test_budget_too_small_for_tool_call():
    t = plan_turn(_user(), TOOLS, "auto", 5, SimConfig())
    assert t.finish == "length" and t.tool_calls == [] and t.completion_tokens == 5


def test_unmatched_tool_call_id_is_not_consumed():
    """Simulator choice: a tool result whose id matches no earlier call is not consumed (call again)."""
    msgs = _user() + [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "read", "arguments": "{}"}}]},
                      {"role": "tool", "tool_call_id": "b", "content": "x"}]
    assert plan_turn(msgs, TOOLS, "auto", 4096, SimConfig()).finish == "tool_calls"
    msgs[-1]["tool_call_id"] = "a"
    assert plan_turn(msgs, TOOLS, "auto", 4096, SimConfig()).finish == "stop"


def test_kv_capacity_line_formats():
    p = Prefix(1, 2)
    new = kv_capacity_lines(p, 643232, 40960, "new")
    assert len(new) == 1 and re.search(
        r"\(EngineCore_DP0 pid=2\) INFO \d\d-\d\d \d\d:\d\d:\d\d \[kv_cache_utils\.py:\d+\] GPU KV cache size: "
        r"643,232 tokens, Maximum concurrency for 40,960 tokens per request: 15\.70x$", new[0])
    split = kv_capacity_lines(p, 643232, 40960, "split")
    assert split[0].endswith("GPU KV cache size: 643,232 tokens")
    assert split[1].endswith("Maximum concurrency for 40,960 tokens per request: 15.70x")
    v0 = kv_capacity_lines(p, 643232, 40960, "v0")
    assert v0[0].endswith("# GPU blocks: 40202, # CPU blocks: 2048")


def test_boot_script_paces_over_load_seconds():
    steps = list(boot_script(SimConfig(load_seconds=10.0, quiet=True), 8000, api_pid=7))
    assert abs(sum(d for d, _ in steps) - 10.0) < 1e-6
    lines = [i for _, i in steps if isinstance(i, str) and i != LISTEN]
    assert lines[0].startswith("(APIServer pid=7) INFO ") and "vLLM API server version" in lines[0]
    order = ["Starting to load model", "Loading safetensors checkpoint shards: 100% Completed | 8/8",
             "Loading weights took", "Model loading took", "Available KV cache memory:", "GPU KV cache size:",
             "Capturing CUDA graphs", "Graph capturing finished in", "init engine (profile, create kv cache, warmup model) took",
             "Starting vLLM API server 0 on http://127.0.0.1:8000", "Available routes are:",
             "Application startup complete."]
    pos = [next(i for i, line in enumerate(lines) if key in line) for key in order]
    assert pos == sorted(pos)
    items = [i for _, i in steps]
    assert items.index(LISTEN) == len(items) - 2  # listens right before "Application startup complete."


def test_forced_kv_too_small_is_self_consistent():
    steps = [i for _, i in boot_script(SimConfig(fail="kv-too-small", max_model_len=262144, quiet=True), 1)]
    text = "\n".join(i for i in steps if isinstance(i, str))
    m = re.search(r"the estimated maximum model length is (\d+)\.", text)
    assert m and int(m.group(1)) < 262144 and steps[-1] == ("EXIT", 1)
    need, avail = map(float, re.search(r"\(([\d.]+) GiB KV cache is needed.*memory \(([\d.]+) GiB\)", text).groups())
    assert need > avail


def test_parse_len_and_argv():
    assert parse_len("32768") == 32768 and parse_len("32k") == 32000 and parse_len("32K") == 32768
    assert parse_len("auto") is None and parse_len("-1") is None
    cfg, args = config_from_argv(["org/m", "--port", "9", "--served-model-name", "a", "b", "--enable-auto-tool-choice",
                                  "--tool-call-parser", "hermes", "-tp", "2", "--whatever", "x"],
                                 {"VLLM_API_KEY": "k", "LAUNCHER_SIM_FAULTS": "length", "LAUNCHER_SIM_KV_TOKENS": "1,000"})
    assert (cfg.model, cfg.served_model_name, cfg.port, cfg.api_key) == ("org/m", "a", 9, "k")
    assert cfg.enable_auto_tool_choice and cfg.tool_call_parser == "hermes" and cfg.reasoning_parser is None
    assert cfg.tensor_parallel_size == 2 and cfg.faults == {"length"} and cfg.kv_tokens == 1000


def test_context_error_wordings():
    from launcher.sim.vllm_http import context_error
    cfg = SimConfig(max_model_len=4096, kv_tokens=10000, context_error_format="new")
    assert context_error(cfg, 2104, 1992) is None
    assert context_error(cfg, 2104, 2000) == (
        "'max_tokens' or 'max_completion_tokens' is too large: 2000. This model's maximum context length is 4096 "
        "tokens and your request has 2104 input tokens (2000 > 4096 - 2104).")
    assert "However, you requested 4104 tokens (2104 in the messages, 2000 in the completion)" in \
        context_error(SimConfig(max_model_len=4096, kv_tokens=10000), 2104, 2000)


def test_a_parser_plugin_file_makes_its_parser_name_known(tmp_path):
    """Real vLLM imports --tool-parser-plugin before it checks --tool-call-parser; an unknown name without
    the plugin stops the start with exit 1."""
    from launcher.sim.vllm_cli import config_from_argv
    from launcher.sim.vllm_logs import boot_script

    def exit_code(argv):
        cfg, _ = config_from_argv(argv, environ={})
        for _, item in boot_script(cfg, 8000):
            if isinstance(item, tuple) and item and item[0] == "EXIT":
                return item[1]
        return None

    plugin = tmp_path / "my_parser.py"
    plugin.write_text("# registers my_parser\n")
    base = ["m", "--enable-auto-tool-choice", "--tool-call-parser", "my_parser"]
    assert exit_code(base) == 1
    assert exit_code([*base, "--tool-parser-plugin", str(tmp_path / "missing.py")]) == 1
    assert exit_code([*base, "--tool-parser-plugin", str(plugin)]) is None
