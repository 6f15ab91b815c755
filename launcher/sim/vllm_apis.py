"""Anthropic Messages (/v1/messages, /v1/messages/count_tokens) and OpenAI Responses (/v1/responses)
on the simulated vLLM: enough for one agent turn (text, tool use, tool result), stream and not.

Both translate to the chat form, plan the same Turn as /v1/chat/completions (so faults apply alike)
and render it in their own wire format, as vLLM's own adapters do.
"""
from __future__ import annotations

import json
import time
from typing import Any

from launcher.sim.common import new_id
from launcher.sim.vllm_chat import ChatRequestError, Turn, content_text, count_tokens, pieces

STOP_REASON = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}


# -- Anthropic Messages ------------------------------------------------------------------------

def anthropic_to_chat(body: dict) -> tuple[list[dict], list[dict] | None, Any]:
    msgs: list[dict] = []
    system = body.get("system")
    if system:
        msgs.append({"role": "system", "content": content_text(system)})
    for m in body.get("messages") or []:
        role, content = m.get("role"), m.get("content")
        if isinstance(content, str):
            msgs.append({"role": role, "content": content})
            continue
        text, calls, results = [], [], []
        for block in content or []:
            kind = block.get("type")
            if kind == "text":
                text.append(block.get("text") or "")
            elif kind == "tool_use":
                calls.append({"id": block.get("id"), "type": "function",
                              "function": {"name": block.get("name"),
                                           "arguments": json.dumps(block.get("input") or {})}})
            elif kind == "tool_result":
                results.append({"role": "tool", "tool_call_id": block.get("tool_use_id"),
                                "content": content_text(block.get("content"))})
        msgs.extend(results)
        if text or calls:
            msg: dict = {"role": role, "content": "".join(text) or None}
            if calls:
                msg["tool_calls"] = calls
            msgs.append(msg)
    tools = None
    if body.get("tools"):
        tools = [{"type": "function", "function": {"name": t.get("name"), "description": t.get("description", ""),
                                                   "parameters": t.get("input_schema") or {}}}
                 for t in body["tools"] if isinstance(t, dict)]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        choice = {"auto": "auto", "any": "required", "none": "none"}.get(kind) or \
            {"type": "function", "function": {"name": choice.get("name")}}
    return msgs, tools, choice


def _anthropic_error(handler, exc: ChatRequestError) -> None:
    kind = {401: "authentication_error", 404: "not_found_error"}.get(exc.status, "invalid_request_error")
    handler.send_json(exc.status, {"type": "error", "error": {"type": kind, "message": exc.message}})


def _anthropic_blocks(turn: Turn) -> list[dict]:
    blocks: list[dict] = []
    if turn.reasoning:
        blocks.append({"type": "thinking", "thinking": turn.reasoning, "signature": ""})
    if turn.content:
        blocks.append({"type": "text", "text": turn.content})
    for c in turn.tool_calls:
        try:
            args = json.loads(c.arguments)
        except ValueError:
            args = {}
        blocks.append({"type": "tool_use", "id": c.id, "name": c.name, "input": args, "_raw": c.arguments})
    return blocks


def messages(handler, body: dict) -> None:
    try:
        handler.check_model(body)
        if body.get("max_tokens") is None:
            raise ChatRequestError(400, "max_tokens: Field required")
        msgs, tools, choice = anthropic_to_chat(body)
        turn, prompt = handler.generate(msgs, tools, choice, body.get("max_tokens"))
    except ChatRequestError as exc:
        return _anthropic_error(handler, exc)
    model = body.get("model") or handler.sim.listed_model
    mid = new_id("msg_")
    blocks = _anthropic_blocks(turn)
    stop = STOP_REASON.get(turn.finish, "end_turn")
    usage = {"input_tokens": prompt, "output_tokens": turn.completion_tokens}
    if not body.get("stream"):
        done = False
        for _ in handler.run_engine(prompt, turn, steps=1):
            done = True
        if done:
            for b in blocks:
                b.pop("_raw", None)
            handler.send_json(200, {"id": mid, "type": "message", "role": "assistant", "model": model,
                                    "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": usage})
        return
    events: list[tuple[str, dict]] = []
    for i, b in enumerate(blocks):
        if b["type"] == "thinking":
            events.append(("content_block_start", {"index": i, "content_block": {"type": "thinking", "thinking": ""}}))
            events += [("content_block_delta", {"index": i, "delta": {"type": "thinking_delta", "thinking": p}})
                       for p in pieces(b["thinking"], 24)]
        elif b["type"] == "text":
            events.append(("content_block_start", {"index": i, "content_block": {"type": "text", "text": ""}}))
            events += [("content_block_delta", {"index": i, "delta": {"type": "text_delta", "text": p}})
                       for p in pieces(b["text"], 16)]
        else:
            events.append(("content_block_start", {"index": i, "content_block": {
                "type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}}))
            parts = pieces(b["_raw"], 8)
            if turn.stream_broken and len(parts) > 2:
                parts = parts[:1] + parts[2:]
            events += [("content_block_delta", {"index": i, "delta": {"type": "input_json_delta", "partial_json": p}})
                       for p in parts]
        events.append(("content_block_stop", {"index": i}))
    handler.start_sse()
    handler.sse({"type": "message_start", "message": {
        "id": mid, "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": None,
        "stop_sequence": None, "usage": {"input_tokens": prompt, "output_tokens": 0}}}, "message_start")
    steps = max(1, len(events))
    sent = 0
    for _ in handler.run_engine(prompt, turn, steps=steps):
        if sent < len(events):
            name, data = events[sent]
            handler.sse({"type": name, **data}, name)
        sent += 1
    if sent < steps:
        return
    handler.sse({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                 "usage": {"output_tokens": turn.completion_tokens}}, "message_delta")
    handler.sse({"type": "message_stop"}, "message_stop")


def count_tokens_endpoint(handler, body: dict) -> None:
    try:
        handler.check_model(body)
        msgs, tools, _ = anthropic_to_chat(body)
    except ChatRequestError as exc:
        return _anthropic_error(handler, exc)
    handler.send_json(200, {"input_tokens": count_tokens(msgs, tools)})


# -- OpenAI Responses --------------------------------------------------------------------------

def responses_to_chat(body: dict) -> tuple[list[dict], list[dict] | None, Any]:
    msgs: list[dict] = []
    if body.get("instructions"):
        msgs.append({"role": "system", "content": str(body["instructions"])})
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for it in items or []:
        if not isinstance(it, dict):
            continue
        kind = it.get("type") or "message"
        if kind == "message":
            role = it.get("role") or "user"
            msgs.append({"role": "system" if role == "developer" else role, "content": content_text(it.get("content"))})
        elif kind == "function_call":
            call = {"id": it.get("call_id"), "type": "function",
                    "function": {"name": it.get("name"), "arguments": it.get("arguments") or "{}"}}
            if msgs and msgs[-1].get("role") == "assistant" and msgs[-1].get("tool_calls") is not None:
                msgs[-1]["tool_calls"].append(call)
            else:
                msgs.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            out = it.get("output")
            msgs.append({"role": "tool", "tool_call_id": it.get("call_id"),
                         "content": out if isinstance(out, str) else content_text(out)})
    tools = None
    if body.get("tools"):
        tools = [{"type": "function", "function": {"name": t.get("name"), "description": t.get("description", ""),
                                                   "parameters": t.get("parameters") or {}}}
                 for t in body["tools"] if isinstance(t, dict) and t.get("type", "function") == "function"]
        tools = tools or None
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("name"):
        choice = {"type": "function", "function": {"name": choice["name"]}}
    return msgs, tools, choice


def _response_items(turn: Turn) -> list[dict]:
    items: list[dict] = []
    if turn.reasoning:
        items.append({"type": "reasoning", "id": new_id("rs_"), "summary": [],
                      "content": [{"type": "reasoning_text", "text": turn.reasoning}], "status": None})
    if turn.content:
        items.append({"type": "message", "id": new_id("msg_"), "role": "assistant", "status": "completed",
                      "content": [{"type": "output_text", "text": turn.content, "annotations": [], "logprobs": None}]})
    for c in turn.tool_calls:
        items.append({"type": "function_call", "id": new_id("fc_"), "call_id": c.id, "name": c.name,
                      "arguments": c.arguments, "status": "completed"})
    return items


def responses(handler, body: dict) -> None:
    handler.check_model(body)
    msgs, tools, choice = responses_to_chat(body)
    turn, prompt = handler.generate(msgs, tools, choice, body.get("max_output_tokens"))
    model = body.get("model") or handler.sim.listed_model
    items = _response_items(turn)
    reasoning_tokens = -(-len(turn.reasoning or "") // 4)
    resp = {"id": new_id("resp_"), "object": "response", "created_at": int(time.time()), "model": model,
            "status": "incomplete" if turn.finish == "length" else "completed",
            "incomplete_details": {"reason": "max_output_tokens"} if turn.finish == "length" else None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "output": items, "parallel_tool_calls": True, "tool_choice": choice or "auto",
            "tools": body.get("tools") or [], "temperature": body.get("temperature"), "top_p": body.get("top_p"),
            "usage": {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": turn.completion_tokens,
                      "output_tokens_details": {"reasoning_tokens": min(reasoning_tokens, turn.completion_tokens)},
                      "total_tokens": prompt + turn.completion_tokens}}
    if not body.get("stream"):
        done = False
        for _ in handler.run_engine(prompt, turn, steps=1):
            done = True
        if done:
            handler.send_json(200, resp)
        return
    events = _response_events(items, turn.stream_broken)
    seq = [0]

    def emit(name: str, data: dict) -> None:
        handler.sse({"type": name, "sequence_number": seq[0], **data}, name)
        seq[0] += 1

    handler.start_sse()
    emit("response.created", {"response": {**resp, "status": "in_progress", "output": [], "usage": None}})
    emit("response.in_progress", {"response": {**resp, "status": "in_progress", "output": [], "usage": None}})
    steps = max(1, len(events))
    sent = 0
    for _ in handler.run_engine(prompt, turn, steps=steps):
        if sent < len(events):
            emit(*events[sent])
        sent += 1
    if sent < steps:
        return
    emit("response.incomplete" if turn.finish == "length" else "response.completed", {"response": resp})


def _response_events(items: list[dict], broken: bool) -> list[tuple[str, dict]]:
    ev: list[tuple[str, dict]] = []
    for idx, it in enumerate(items):
        if it["type"] == "reasoning":
            ev.append(("response.output_item.added", {"output_index": idx, "item": {**it, "content": []}}))
            text = it["content"][0]["text"]
            ev += [("response.reasoning_text.delta", {"item_id": it["id"], "output_index": idx, "content_index": 0,
                                                      "delta": p}) for p in pieces(text, 24)]
            ev.append(("response.reasoning_text.done", {"item_id": it["id"], "output_index": idx,
                                                        "content_index": 0, "text": text}))
        elif it["type"] == "message":
            text = it["content"][0]["text"]
            ev.append(("response.output_item.added", {"output_index": idx, "item": {
                **it, "status": "in_progress", "content": []}}))
            ev.append(("response.content_part.added", {"item_id": it["id"], "output_index": idx, "content_index": 0,
                                                       "part": {"type": "output_text", "text": "", "annotations": []}}))
            ev += [("response.output_text.delta", {"item_id": it["id"], "output_index": idx, "content_index": 0,
                                                   "delta": p, "logprobs": []}) for p in pieces(text, 16)]
            ev.append(("response.output_text.done", {"item_id": it["id"], "output_index": idx, "content_index": 0,
                                                     "text": text, "logprobs": []}))
            ev.append(("response.content_part.done", {"item_id": it["id"], "output_index": idx, "content_index": 0,
                                                      "part": it["content"][0]}))
        else:
            ev.append(("response.output_item.added", {"output_index": idx, "item": {
                **it, "arguments": "", "status": "in_progress"}}))
            parts = pieces(it["arguments"], 8)
            if broken and len(parts) > 2:
                parts = parts[:1] + parts[2:]
            ev += [("response.function_call_arguments.delta", {"item_id": it["id"], "output_index": idx,
                                                               "delta": p}) for p in parts]
            ev.append(("response.function_call_arguments.done", {"item_id": it["id"], "output_index": idx,
                                                                 "arguments": "".join(parts)}))
        ev.append(("response.output_item.done", {"output_index": idx, "item": it}))
    return ev
