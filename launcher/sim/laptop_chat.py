"""The chat part the Ollama and LM Studio simulators share: a deterministic "model" that calls the
first offered tool when the last message is the user's, and answers in text after a tool result.

Wire formats follow the documented OpenAI-compatible API both servers expose: a chat.completion
object, or SSE `data: {chat.completion.chunk}` lines ending with `data: [DONE]`; tool-call arguments
are a JSON string. (Stands for: a tool-capable model behaving well; not a model's real output.)
"""
from __future__ import annotations

import json
import secrets
import string
import time

from launcher.sim.common import new_id


def call_id(fingerprint: str = "") -> str:
    """A tool-call id as each server makes them: Ollama "call_" + 8 lowercase letters/digits
    (openai.go toolCallId), LM Studio a string of digits."""
    if fingerprint == "lmstudio":
        return str(100000000 + secrets.randbelow(900000000))
    alphabet = string.ascii_lowercase + string.digits
    return "call_" + "".join(secrets.choice(alphabet) for _ in range(8))


def _sample(schema: dict, name: str = ""):
    t = (schema or {}).get("type")
    if "enum" in (schema or {}):
        return schema["enum"][0]
    if t == "integer":
        return 1
    if t == "number":
        return 1.5
    if t == "boolean":
        return True
    if t == "array":
        return [_sample(schema.get("items") or {"type": "string"})]
    if t == "object":
        return arguments_for(schema)
    return "README.md" if ("path" in name.lower() or "file" in name.lower()) else "hello"


def arguments_for(params: dict) -> dict:
    """Arguments that satisfy a tool's JSON schema (required properties, by type)."""
    props = (params or {}).get("properties") or {}
    required = (params or {}).get("required") or list(props)
    return {name: _sample(props.get(name) or {}, name) for name in required}


def reply(messages: list, tools: list | None, fingerprint: str = "") -> dict:
    """{"content": str, "tool_calls": [ {id, type, function:{name, arguments(str)}} ]}."""
    last = messages[-1] if messages else {}
    if tools and last.get("role") == "user":
        fn = (tools[0] or {}).get("function") or {}
        args = arguments_for(fn.get("parameters") or {})
        return {"content": "", "tool_calls": [{
            "id": call_id(fingerprint), "type": "function",
            "function": {"name": fn.get("name", "tool"), "arguments": json.dumps(args)}}]}
    if last.get("role") == "tool":
        return {"content": f"The tool returned: {str(last.get('content'))[:200]}", "tool_calls": []}
    return {"content": "Hello! I am a simulated model.", "tool_calls": []}


def completion(model: str, messages: list, tools: list | None, fingerprint: str) -> dict:
    r = reply(messages, tools, fingerprint)
    msg = {"role": "assistant", "content": r["content"]}
    if r["tool_calls"]:  # Ollama's ToolCall carries its index in whole answers too
        msg["tool_calls"] = [{"index": i, **tc} if fingerprint != "lmstudio" else tc
                             for i, tc in enumerate(r["tool_calls"])]
    prompt_tokens = sum(len(str(m.get("content") or "").split()) + 4 for m in messages)
    out_tokens = max(1, len(r["content"].split()) + 8 * len(r["tool_calls"]))
    return {"id": new_id("chatcmpl-", 8), "object": "chat.completion", "created": int(time.time()),
            "model": model, "system_fingerprint": fingerprint,
            "choices": [{"index": 0, "message": msg,
                         "finish_reason": "tool_calls" if r["tool_calls"] else "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": out_tokens,
                      "total_tokens": prompt_tokens + out_tokens}}


def chunks(model: str, messages: list, tools: list | None, fingerprint: str):
    """chat.completion.chunk objects, then the literal "[DONE]"."""
    r = reply(messages, tools, fingerprint)
    cid, created = new_id("chatcmpl-", 8), int(time.time())

    def chunk(delta: dict, finish=None) -> dict:
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": fingerprint,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    for word in r["content"].split(" ") if r["content"] else []:
        yield chunk({"content": word + " "})
    if r["tool_calls"]:
        yield chunk({"tool_calls": [{"index": i, **tc} for i, tc in enumerate(r["tool_calls"])]})
    yield chunk({}, "tool_calls" if r["tool_calls"] else "stop")
    yield "[DONE]"


def openai_error(message: str, kind: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}
