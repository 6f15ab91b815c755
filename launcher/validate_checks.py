"""The verdicts of `launch validate`: pure functions from normalised answers to named checks.

No I/O here (launcher/validate.py sends the requests), so every row of the symptom table is tested
against small stub answers.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from launcher.auth import redact
from launcher.diagnose import lookup
from launcher.validate_styles import RESULT_MARKERS, TOOL_NAME, Reply

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"
EVIDENCE_CHARS = 160

# What reasoning looks like when no reasoning parser took it out of the text.
THINK_MARKERS = ("<think>", "</think>", "<|channel|>analysis", "<reasoning>", "</reasoning>",
                 "<|begin_of_thought|>", "[THINK]", "◁think▷")
# 400 texts that mean the request arrived without its body (a proxy dropped it): FastAPI/pydantic's
# "Field required" at loc ('body',), JSON decode errors on an empty body, gateways' "missing body".
_BODY_DROPPED = re.compile(r"loc['\"]?:\s*[\[(]\s*['\"]body['\"]|json decode error|expecting value"
                           r"|empty (request )?body|missing (request )?body|body (is )?(required|missing|empty)"
                           r"|no body", re.I)
_AUTO_TOOL = re.compile(r"enable-auto-tool-choice|\"auto\" tool choice", re.I)
_CONTEXT = re.compile(r"context length|max_model_len|maximum (context|model) length|too long|"
                      r"exceed|context window|n_ctx|max seq len", re.I)


@dataclass
class Check:
    name: str
    ok: bool
    status: str = PASS  # pass | fail | warn | skip (warn and skip keep ok True)
    diagnosis: str | None = None
    evidence: str = ""
    cause: str | None = None
    fix: str | None = None
    symptom: str | None = None  # the id in launcher.diagnose.TABLE

    @property
    def warn(self) -> bool:
        return self.status == WARN

    @property
    def skipped(self) -> bool:
        return self.status == SKIP

    def to_json(self) -> dict:
        return {"name": self.name, "ok": self.ok, "diagnosis": redact(self.diagnosis) if self.diagnosis else None,
                "evidence": redact(self.evidence)}


def trim(text: str | None, n: int = EVIDENCE_CHARS) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def passed(name: str, evidence: str) -> Check:
    return Check(name, True, PASS, None, redact(evidence))


def skipped(name: str, why: str, evidence: str = "", *, ok: bool = True) -> Check:
    return Check(name, ok, SKIP, why, redact(evidence))


def diagnosed(name: str, symptom: str, evidence: str, *, detail: str | None = None, warn: bool = False) -> Check:
    row = lookup(symptom)
    diag = f"{row.symptom}: {row.cause}"
    if detail:
        diag += f" ({detail})"
    diag += f". Fix: {row.fix}"
    return Check(name, warn, WARN if warn else FAIL, redact(diag), redact(evidence), row.cause, row.fix, symptom)


def evidence_of(r: Reply, *, text: bool = True) -> str:
    parts = []
    if r.status is not None:
        parts.append(f"HTTP {r.status}")
    if r.transport:
        parts.append(r.transport)
    if r.finish is not None or (r.status == 200 and r.shape_ok):
        parts.append(f"finish_reason={r.finish}")
    if r.error:
        parts.append(f"error={trim(r.error)!r}")
    if text and r.tool_calls:
        tc = r.tool_calls[0]
        parts.append(f"tool_call={tc.name}({trim(tc.arguments, 100)})")
    if text and r.content.strip():
        parts.append(f"content={trim(r.content)!r}")
    if text and r.reasoning.strip() and not r.content.strip():
        parts.append(f"reasoning={len(r.reasoning)} chars")
    if r.elapsed:
        parts.append(f"{r.elapsed:.2f}s")
    return ", ".join(parts)


def request_failure(name: str, r: Reply, *, model: str, key_given: bool) -> Check | None:
    """A check for any answer that is not a usable 200 (transport error, HTTP error, wrong shape)."""
    ev = evidence_of(r, text=False)
    if r.transport == "timeout":
        return diagnosed(name, "timeout", ev)
    if r.transport:
        return diagnosed(name, "unreachable", ev)
    msg = r.error or ""
    if r.status in (401, 403):
        return diagnosed(name, "unauthorized", ev, detail=None if key_given else "no key was given")
    if r.status == 404:
        if "model" in msg.lower() or "deployment" in msg.lower():
            return diagnosed(name, "model-not-found", ev, detail=f"asked for {model!r}")
        return diagnosed(name, "not-found", ev)
    if r.status == 400 and _AUTO_TOOL.search(msg):
        return diagnosed(name, "no-auto-tool-choice", ev)
    if r.status in (400, 411, 422) and _BODY_DROPPED.search(msg):
        return diagnosed(name, "proxy-drops", ev, detail="the POST arrived without its JSON body")
    if r.status != 200:
        return diagnosed(name, "http-error", ev)
    if not r.shape_ok:
        return diagnosed(name, "bad-response", ev + (f", body={trim(r.body)!r}" if r.body else ""))
    return None


def judge_models(status: int | None, data, *, transport: str | None, error: str | None, ids: list[str] | None,
                 model: str, key_given: bool, style: str, body: str = "") -> Check:
    name = "models"
    r = Reply(status=status, transport=transport, error=error, body=body)
    if status == 200 and ids is None and isinstance(data, dict) and "error" in data:
        # the seed's row: a {"error": …} body without data is a 401 whatever the status says
        return diagnosed(name, "unauthorized", f"HTTP 200, body={trim(body)!r}")
    if status == 200 and ids is None:
        r.shape_ok = False
    fail = request_failure(name, r, model=model, key_given=key_given)
    if fail:
        return fail
    if style == "azure":
        return passed(name, f"HTTP 200, {len(ids or [])} model(s) visible; the deployment is checked by the "
                            f"tool call")
    if model not in (ids or []):
        listed = ", ".join(ids[:12]) + (" …" if len(ids) > 12 else "") if ids else "none"
        return diagnosed(name, "model-not-found", f"HTTP 200, ids: {listed}",
                         detail=f"{model!r} is not in /v1/models; it lists {listed}")
    return passed(name, f"HTTP 200, {model!r} listed ({len(ids)} id(s))")


def has_think(text: str) -> bool:
    return any(m in (text or "") for m in THINK_MARKERS)


def judge_tool_call(r: Reply, *, model: str, key_given: bool, max_tokens: int) -> Check:
    name = "tool_call"
    fail = request_failure(name, r, model=model, key_given=key_given)
    if fail:
        return fail
    ev = evidence_of(r)
    if not r.tool_calls:
        if r.finish == "length":
            # the budget ran out before any call: a reasoning model still thinking. Without a reasoning
            # parser its thinking is plain content (no markers), so visible text does not mean prose.
            detail = f"max_tokens was {max_tokens}"
            if r.content.strip() and not r.reasoning.strip():
                detail += ("; if no reasoning parser is set, the reasoning shows up as content (set the "
                           "model's --reasoning-parser); if that text is prose, not reasoning, the tool parser is "
                           "not active either (--tool-call-parser)")
            return diagnosed(name, "length", ev, detail=detail)
        return diagnosed(name, "prose-tool-call", ev, detail="the model wrote text instead of a tool call")
    tc = r.tool_calls[0]
    if tc.name != TOOL_NAME:
        return diagnosed(name, "wrong-tool", ev, detail=f"called {trim(tc.name, 60)!r}, offered {TOOL_NAME!r}")
    if r.finish != "tool_calls":
        c = passed(name, ev)
        c.status = WARN
        c.diagnosis = (f"a tool call came back but finish_reason is {r.finish!r}, not 'tool_calls'; "
                       f"most agents cope, some stop the turn")
        return c
    return passed(name, ev)


def parse_arguments(raw: str):
    try:
        return json.loads(raw) if raw.strip() else {}
    except (TypeError, ValueError):
        return None


def judge_arguments(r: Reply) -> Check:
    name = "arguments"
    if not r.tool_calls:
        return skipped(name, "no tool call to check (see tool_call)", ok=False)
    raw = r.tool_calls[0].arguments or ""
    ev = f"arguments={trim(raw)!r}"
    obj = parse_arguments(raw)
    reasoning = r.reasoning.strip()
    leaked = has_think(raw) or (len(reasoning) >= 24 and reasoning[:24] in raw)
    if leaked:
        return diagnosed(name, "reasoning-in-args", ev)
    if obj is None:
        return diagnosed(name, "invalid-json-args", ev)
    if not isinstance(obj, dict):
        return diagnosed(name, "invalid-json-args", ev, detail=f"a JSON {type(obj).__name__}, not an object")
    if any(isinstance(v, str) and has_think(v) for v in obj.values()):
        return diagnosed(name, "reasoning-in-args", ev)
    if not isinstance(obj.get("city"), str) or not obj["city"].strip():
        return diagnosed(name, "invalid-json-args", ev, detail="the required `city` is missing")
    return passed(name, ev)


def judge_reasoning(r: Reply, final: Reply | None) -> Check:
    """Reasoning stays in reasoning/reasoning_content: not in content (either turn), not in arguments."""
    name = "reasoning"
    if r.status != 200 or not r.shape_ok:
        return skipped(name, "no answer to check (see tool_call)", ok=False)
    for label, rep in (("tool-call turn", r), ("answer turn", final)):
        if rep is not None and has_think(rep.content):
            return diagnosed(name, "reasoning-in-content", f"{label}: content={trim(rep.content)!r}")
    if r.tool_calls and has_think(r.tool_calls[0].arguments):
        return diagnosed(name, "reasoning-in-args", f"arguments={trim(r.tool_calls[0].arguments)!r}")
    where = "reasoning field" if r.reasoning.strip() else "no reasoning text returned"
    return passed(name, f"content free of reasoning markers ({where})")


def judge_round_trip(r: Reply | None, *, call_id: str | None, model: str, key_given: bool, max_tokens: int) -> Check:
    name = "round_trip"
    if r is None:
        return skipped(name, "needs a tool call to answer (see tool_call)", ok=False)
    fail = request_failure(name, r, model=model, key_given=key_given)
    if fail:
        return fail
    ev = f"tool_call_id={call_id}, " + evidence_of(r)
    if r.tool_calls:
        return diagnosed(name, "tool-loop", ev)
    if r.finish == "length":
        return diagnosed(name, "length", ev, detail=f"max_tokens was {max_tokens}")
    text = r.content
    if r.finish != "stop":
        return diagnosed(name, "http-error", ev, detail=f"finish_reason {r.finish!r}, expected 'stop'")
    if not any(m in text.lower() for m in RESULT_MARKERS):
        return diagnosed(name, "ignored-result", ev, detail="the answer mentions neither 17 °C nor the rain")
    return passed(name, ev)


def _same_call(a, b) -> tuple[bool, str]:
    if a.name != b.name:
        return False, f"name {b.name!r} ≠ {a.name!r}"
    oa, ob = parse_arguments(a.arguments), parse_arguments(b.arguments)
    if not isinstance(oa, dict) and a.arguments.strip() == b.arguments.strip():
        return True, ""  # the same (bad) arguments both ways: `arguments` reports them
    if not isinstance(ob, dict):
        return False, f"streamed arguments do not parse: {trim(b.arguments, 100)!r}"
    if isinstance(oa, dict) and set(oa) != set(ob):
        return False, f"argument keys {sorted(ob)} ≠ {sorted(oa)}"
    return True, ""


def judge_stream(s: Reply, r: Reply, *, model: str, key_given: bool) -> Check:
    """The streamed twin of the tool-call request: well-formed SSE that assembles into the same call."""
    name = "streaming"
    fail = request_failure(name, s, model=model, key_given=key_given)
    if fail:
        return fail
    ev = f"{s.events} event(s), " + evidence_of(s)
    if not s.shape_ok or s.events == 0 or not s.stream_done and s.finish is None:
        return diagnosed(name, "stream-malformed", ev)
    if s.error:
        return diagnosed(name, "http-error", ev, detail="an error event inside the stream")
    if r.tool_calls:
        if not s.tool_calls:
            return diagnosed(name, "stream-broken", ev, detail="the streamed answer has no tool call")
        same, why = _same_call(r.tool_calls[0], s.tool_calls[0])
        if not same:
            return diagnosed(name, "stream-broken", ev, detail=why)
        return passed(name, ev)
    if s.tool_calls and not isinstance(parse_arguments(s.tool_calls[0].arguments), dict):
        return diagnosed(name, "stream-broken", ev, detail="streamed arguments do not parse to an object")
    return passed(name, ev + " (well-formed; no non-streamed tool call to compare)")


def judge_auth(status: int | None, *, transport: str | None, key_given: bool, style: str) -> Check:
    name = "auth"
    ev = f"without a key: HTTP {status}" if status is not None else f"without a key: {transport}"
    if transport:
        return skipped(name, "could not probe without a key", ev)
    if status in (401, 403):
        return passed(name, ev + " (refused, as it should)")
    if status == 200:
        detail = None if key_given else "no key configured"
        return diagnosed(name, "auth-open", ev, detail=detail, warn=True)
    return skipped(name, "the probe without a key was answered neither 200 nor 401", ev)


def judge_context(r: Reply | None, *, limit: int | None, prompt_tokens: int, model: str, key_given: bool,
                  form: str = "full", max_tokens: int | None = None) -> Check:
    """The context probe. ``form`` "full": a prompt of ~prompt_tokens just under ``limit``; "length": a
    short prompt with max_tokens filling the window to ``limit`` (admitted = the first stream event)."""
    name = "context"
    if form == "off":
        return skipped(name, "context check off (--context-check off)")
    if not limit or r is None:
        return skipped(name, "no context limit known (pass --context N)")
    if form == "length":
        what = (f"length only: a ~{prompt_tokens}-token prompt with max_tokens {max_tokens} (together just "
                f"under limit.context {limit}; no long prefill)")
    else:
        what = f"full prefill: ~{prompt_tokens} prompt tokens (limit.context {limit})"
    if r.status == 400 and _CONTEXT.search(r.error or ""):
        return diagnosed(name, "context-rejected", f"{what}; " + evidence_of(r, text=False),
                         detail=f"{what} was refused")
    fail = request_failure(name, r, model=model, key_given=key_given)
    if fail:
        fail.evidence = redact(f"{what}; {fail.evidence}")
        return fail
    return passed(name, f"{what} accepted, " + evidence_of(r, text=False))
