"""What the simulated model answers, as a correctly configured vLLM parser would deliver it.

Token counting is deterministic and public so other tests can build prompts of an exact size:

    count_tokens(messages, tools=None) =
        3                                              # the assistant-turn primer
      + Σ over messages (4 + text_tokens(message))     # 4 = fixed per-message overhead
      + (ceil(len(json.dumps(tools, sort_keys=True, separators=(",", ":"))) / 4) if tools else 0)

    text_tokens(message) = ceil(len(text) / 4), where text is the content (a string, or the "text"
    of each content part joined with "") followed by, for each tool call, its name + arguments.

So one user message whose content is 4·k ASCII characters counts k + 7 tokens; `messages_of_size(n)`
builds such a conversation for any n ≥ 8. Output tokens are ceil(chars / 4) of each generated piece.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from launcher.sim.common import new_id

PRIMER_TOKENS = 3
PER_MESSAGE_TOKENS = 4


def text_tokens(text: str | None) -> int:
    return math.ceil(len(text) / 4) if text else 0


def content_text(content: Any) -> str:
    """The text of an OpenAI message content: a string or a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, dict):
                parts.append(str(p.get("text") or p.get("content") or ""))
        return "".join(parts)
    return str(content)


def message_text(message: dict) -> str:
    text = content_text(message.get("content"))
    for call in message.get("tool_calls") or []:
        fn = (call or {}).get("function") or {}
        text += str(fn.get("name") or "") + str(fn.get("arguments") or "")
    return text


def count_tokens(messages: list[dict], tools: list[dict] | None = None) -> int:
    """Prompt tokens of a chat request, by the formula in this module's docstring."""
    total = PRIMER_TOKENS
    for m in messages or []:
        total += PER_MESSAGE_TOKENS + text_tokens(message_text(m if isinstance(m, dict) else {}))
    if tools:
        total += text_tokens(json.dumps(tools, sort_keys=True, separators=(",", ":")))
    return total


def messages_of_size(n: int, role: str = "user") -> list[dict]:
    """One message whose count_tokens() is exactly n (n ≥ 8)."""
    if n < PRIMER_TOKENS + PER_MESSAGE_TOKENS + 1:
        raise ValueError(f"the smallest prompt with text is {PRIMER_TOKENS + PER_MESSAGE_TOKENS + 1} tokens")
    body = n - PRIMER_TOKENS - PER_MESSAGE_TOKENS
    unit = "word "
    text = (unit * (body * 4 // len(unit) + 1))[: body * 4]
    return [{"role": role, "content": text}]


# -- tool arguments from a JSON schema ---------------------------------------------------------

_STRING_HINTS = (
    (("location", "city", "place", "town", "country", "region"), "Zurich"),
    (("path", "file", "filename", "dir", "directory"), "README.md"),
    (("command", "cmd", "shell"), "ls"),
    (("url", "uri", "link"), "https://example.com"),
    (("query", "pattern", "search", "regex", "q"), "TODO"),
    (("unit", "units"), "celsius"),
    (("title", "name"), "example"),
    (("description", "prompt", "text", "content", "message"), "hello"),
)


def _string_for(name: str) -> str:
    low = name.lower()
    for keys, value in _STRING_HINTS:
        if any(k == low or k in low for k in keys if len(k) > 1) or low in keys:
            return value
    return "example"


def value_for(name: str, schema: dict) -> Any:
    if not isinstance(schema, dict):
        return "example"
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind is None:
        for alt in ("anyOf", "oneOf"):
            alts = [a for a in schema.get(alt) or [] if isinstance(a, dict)]
            if alts:  # a real value, not the null of a nullable union (zod's optional/nullable)
                return value_for(name, next((a for a in alts if a.get("type") != "null"), alts[0]))
        kind = "object" if "properties" in schema else "string"
    if kind == "null":
        return None
    if kind == "integer" or kind == "number":
        return 1
    if kind == "boolean":
        return True
    if kind == "array":
        return [value_for(name, schema.get("items") or {"type": "string"})]
    if kind == "object":
        return arguments_for(schema)
    return _string_for(name)


def arguments_for(schema: dict | None) -> dict:
    """An object satisfying the schema's required properties (the first property if none required)."""
    schema = schema or {}
    props = schema.get("properties") or {}
    names = [n for n in (schema.get("required") or []) if isinstance(n, str)]
    if not names and props:
        names = [next(iter(props))]
    return {n: value_for(n, props.get(n, {})) for n in names}


def tool_name(tool: dict) -> str:
    return str(((tool or {}).get("function") or tool or {}).get("name") or "tool")


def tool_schema(tool: dict) -> dict:
    fn = (tool or {}).get("function") or tool or {}
    return fn.get("parameters") or fn.get("input_schema") or {}


# -- the turn ----------------------------------------------------------------------------------

@dataclass
class ToolCall:
    name: str
    arguments: str
    id: str = field(default_factory=lambda: new_id("chatcmpl-tool-"))


@dataclass
class Turn:
    """One generation: what a correctly configured parser hands back (or a faulty one, per faults)."""

    reasoning: str | None = None
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish: str = "stop"
    completion_tokens: int = 0
    stream_broken: bool = False


class ChatRequestError(Exception):
    """A request vLLM refuses: status and message for the error object."""

    def __init__(self, status: int, message: str, err_type: str = "BadRequestError", param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.err_type, self.param = status, message, err_type, param


def _last_user_text(messages: list[dict]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return content_text(m.get("content")).strip()
    return ""


def _snippet(text: str, limit: int) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _called_ids(messages: list[dict]) -> dict[str, str]:
    ids: dict[str, str] = {}
    for m in messages:
        if m.get("role") == "assistant":
            for c in m.get("tool_calls") or []:
                if isinstance(c, dict) and c.get("id"):
                    ids[str(c["id"])] = str(((c.get("function") or {}).get("name")) or "")
    return ids


def _pick_tool(tools: list[dict], tool_choice: Any, prefer: str | None = None) -> dict:
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        for t in tools:
            if tool_name(t) == wanted:
                return t
    if prefer:
        for t in tools:
            if tool_name(t) == prefer:
                return t
    return tools[0]


def _named_tool(tools: list[dict], text: str) -> str | None:
    """The tool the user's message names ("use the Read tool"), as a model would follow it; agents
    send dozens of tools and the first is rarely the one asked for (Claude Code's first is Agent)."""
    names = sorted((tool_name(t) for t in tools), key=len, reverse=True)
    for name in names:
        if name and re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text):
            return name
    return None


def plan_turn(messages: list[dict], tools: list[dict] | None, tool_choice: Any, budget: int, cfg,
              thinking: bool = True) -> Turn:
    """Decide the answer for a chat request. budget = max_tokens (already defaulted); thinking=False
    stands for chat_template_kwargs.enable_thinking=false (no reasoning is generated)."""
    faults = cfg.faults
    reasoning_on = bool(cfg.reasoning_parser) and thinking
    tools = [t for t in (tools or []) if isinstance(t, dict)]
    last = messages[-1] if messages else {}
    role = last.get("role")
    call_tool: dict | None = None
    answer = ""
    thought = ""

    if tools and tool_choice != "none":
        if role == "tool":
            ids = _called_ids(messages)
            consumed = str(last.get("tool_call_id") or "") in ids
            if "tool-loop" in faults or not consumed:
                call_tool = _pick_tool(tools, tool_choice, ids.get(str(last.get("tool_call_id") or "")))
                thought = f"The tool result did not settle it; I will call {tool_name(call_tool)} again."
        else:
            call_tool = _pick_tool(tools, tool_choice, _named_tool(tools, _last_user_text(messages)))
            args = arguments_for(tool_schema(call_tool))
            thought = (f"The user asks: {_snippet(_last_user_text(messages), 60)!r}. "
                       f"I should call {tool_name(call_tool)} with {json.dumps(args)}.")
    if call_tool is None:
        if role == "tool":
            result = _snippet(content_text(last.get("content")), 200)
            answer = f"According to the tool result: {result}"
            thought = "The tool returned a result; I will report it to the user."
        else:
            asked = _snippet(_last_user_text(messages), 80) or "hello"
            answer = f"Simulated vLLM answer to: {asked}"
            thought = "The user wrote a message; I will answer it briefly."

    turn = Turn()
    if "length" in faults:
        # Reasoning eats the whole output budget: no content, no tool call.
        unit = "Let me think about this carefully and consider every option once more. "
        text = (unit * (budget * 4 // len(unit) + 1))[: budget * 4]
        turn.reasoning = text if reasoning_on else None
        turn.content = None if reasoning_on else text
        turn.finish, turn.completion_tokens = "length", budget
        return turn

    if call_tool is not None:
        args_obj = arguments_for(tool_schema(call_tool))
        arguments = json.dumps(args_obj)
        name = tool_name(call_tool)
        if "invalid-json-args" in faults:
            arguments = repr(args_obj) if args_obj else "{'"
        if "reasoning-in-args" in faults:
            key = next(iter(args_obj), "input")
            val = args_obj.get(key, "")
            args_obj = dict(args_obj)
            args_obj[key] = f"<think>{thought}</think>{val}"
            arguments = json.dumps(args_obj)
        if "prose-tool-call" in faults:
            turn.content = (f"I will use the {name} tool.\n<tool_call>\n"
                            f'{{"name": "{name}", "arguments": {arguments}}}\n</tool_call>')
            turn.finish = "stop"
        else:
            turn.tool_calls = [ToolCall(name, arguments)]
            turn.finish = "tool_calls"
    else:
        turn.content = answer

    if reasoning_on and "reasoning-in-args" not in faults:
        if "reasoning-in-content" in faults:
            turn.content = f"<think>\n{thought}\n</think>\n\n" + (turn.content or "")
        else:
            turn.reasoning = thought
    turn.stream_broken = "stream-broken" in faults
    _apply_budget(turn, budget)
    return turn


def _apply_budget(turn: Turn, budget: int) -> None:
    """Truncate to max_tokens: reasoning first, then content; a tool call that does not fit is lost."""
    used = 0
    if turn.reasoning:
        r = text_tokens(turn.reasoning)
        if r >= budget:
            turn.reasoning = turn.reasoning[: budget * 4]
            turn.content, turn.tool_calls, turn.finish, turn.completion_tokens = None, [], "length", budget
            return
        used = r
    if turn.content:
        c = text_tokens(turn.content)
        if used + c > budget:
            turn.content = turn.content[: (budget - used) * 4]
            turn.tool_calls, turn.finish, turn.completion_tokens = [], "length", budget
            return
        used += c
    for call in turn.tool_calls:
        used += text_tokens(call.name + call.arguments) + 2
    if used > budget:
        turn.tool_calls, turn.finish, turn.completion_tokens = [], "length", budget
        if turn.content is None:
            turn.content = ""
        return
    turn.completion_tokens = max(used, 1)


def pieces(text: str, size: int = 12, max_pieces: int = 256) -> list[str]:
    """Split text into stream deltas of about `size` characters (at most max_pieces of them)."""
    size = max(size, -(-len(text) // max_pieces))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]
