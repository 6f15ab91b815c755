"""Prove an endpoint before an agent trusts it: the seed's checks, run concurrently.

`validate_endpoint()` sends the checks (models list, one tool call and its streamed twin, the
multi-turn round trip, a request without the key, a prompt just under the context limit) and returns
a `Report`; a failed check is data, never an exception. Verdicts live in validate_checks.py, wire
formats in validate_styles.py, the symptom table in diagnose.py.

Concurrency: models, auth, tool call, streamed tool call and context all start at once; only the
round trip waits (for the tool call's id), so the gate costs about two model round trips.

The context check has two forms (``context_check``): "full" sends a prompt just under limit.context
(a real prefill of that length; its timeout grows with the prompt), "length" sends a short prompt
whose max_tokens brings prompt + max_tokens just under limit.context (the same slack): vLLM rejects a request longer than its
max_model_len with a 400 before any prefill, so this proves the window is admitted without the long
prefill that has hard-reset unified-memory hosts (vllm.md, DGX Spark). It is streamed and closed at
the first chunk, so nothing long is generated. "off" skips it.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from launcher.validate_checks import (FAIL, PASS, SKIP, WARN, Check, judge_arguments, judge_auth, judge_context,
                                      judge_models, judge_reasoning, judge_round_trip, judge_stream,
                                      judge_tool_call)
from launcher.validate_styles import Reply, make_style

__all__ = ["Check", "Report", "validate_endpoint", "validate_endpoint_async", "render_report", "list_models",
           "DEFAULT_MAX_TOKENS", "CHECK_NAMES", "CONTEXT_CHECKS"]

DEFAULT_MAX_TOKENS = 4096  # large enough for a reasoning model to think and still call the tool
CONTEXT_MAX_TOKENS = 8  # the context probe only needs the prompt accepted
FILLER_WORD = " the"  # one token in BPE and SentencePiece vocabularies alike
CHECK_NAMES = ("models", "tool_call", "arguments", "reasoning", "round_trip", "streaming", "auth", "context")
CONTEXT_CHECKS = ("full", "length", "off")
LENGTH_PROBE_PROMPT = "Reply with the single word OK."
PREFILL_TOKENS_PER_S = 1000  # the full context check's timeout: timeout + prompt tokens / this


def context_timeout(timeout: float, prompt_tokens: int) -> float:
    """Seconds to wait for the full-length context probe: a slow but healthy prefill is not a timeout."""
    return timeout + prompt_tokens / PREFILL_TOKENS_PER_S


def check_context_form(form: str) -> str:
    from launcher.errors import InputError

    if form not in CONTEXT_CHECKS:
        raise InputError(f"unknown context check {form!r}", where="--context-check",
                         fix="use one of: " + ", ".join(CONTEXT_CHECKS))
    return form


@dataclass
class Report:
    checks: list[Check]
    base_url: str = ""
    model: str = ""
    api_style: str = "openai"
    elapsed: float = 0.0
    extra: dict = field(default_factory=dict)
    context_check: str = "full"  # the form the context check took: full | length | off

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == WARN]

    def to_json(self) -> dict:
        # the shape DESIGN.md fixes; the context check's form is in its evidence ("full prefill: …",
        # "length only: …") or its diagnosis ("context check off")
        return {"ok": self.ok, "checks": [c.to_json() for c in self.checks]}

    def summary(self) -> str:
        if self.ok:
            w = f", {len(self.warnings)} warning(s)" if self.warnings else ""
            return f"endpoint OK: {len(self.checks)} checks passed{w} in {self.elapsed:.2f} s"
        failed = [c.name for c in self.checks if c.status == FAIL]
        not_run = [c.name for c in self.failures if c.status != FAIL]
        text = f"endpoint failed {len(failed)} of {len(self.checks)} checks ({', '.join(failed)})"
        if not_run:
            text += f"; not run for want of a tool call: {', '.join(not_run)}"
        return text


def _transport(exc: Exception) -> tuple[str, str]:
    import httpx

    kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "unreachable"
    return kind, f"{type(exc).__name__}: {exc}"[:300]


def _json_or_none(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return None


async def _get(client, url: str, headers: dict) -> tuple[int | None, object, str, str | None, str | None]:
    """(status, parsed JSON or None, body text, transport kind, error)."""
    import httpx

    try:
        resp = await client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        kind, err = _transport(exc)
        return None, None, "", kind, err
    data = _json_or_none(resp.text)
    from launcher.validate_styles import error_message

    return resp.status_code, data, resp.text, None, error_message(data) or (None if data is not None else resp.text[:300])


async def _post(client, style, body: dict, *, stream: bool = False, timeout=None,
                first_chunk_only: bool = False) -> Reply:
    """One chat request. ``timeout`` (httpx.Timeout) overrides the client's for this request;
    ``first_chunk_only`` closes a stream after its first event (the request was admitted)."""
    import httpx

    t0 = time.monotonic()
    kw = {"timeout": timeout} if timeout is not None else {}
    try:
        if not stream:
            resp = await client.post(style.chat_url(), json=body, headers=style.headers(), **kw)
            data = _json_or_none(resp.text)
            r = style.parse(resp.status_code, data)
            r.body = resp.text[:2000]
            if data is None and resp.status_code == 200:
                r.shape_ok = False
            if r.error is None and resp.status_code != 200:
                r.error = resp.text[:300]
        else:
            async with client.stream("POST", style.chat_url(), json=body, headers=style.headers(), **kw) as resp:
                if resp.status_code != 200:
                    text = (await resp.aread()).decode("utf-8", "replace")
                    r = style.parse(resp.status_code, _json_or_none(text))
                    r.body = text[:2000]
                    r.error = r.error or text[:300]
                elif "json" in resp.headers.get("content-type", ""):
                    text = (await resp.aread()).decode("utf-8", "replace")
                    r = Reply(status=200, shape_ok=False, body=text[:2000],
                              error="answered with one JSON body, not a text/event-stream")
                elif first_chunk_only:
                    lines = []
                    async for line in resp.aiter_lines():
                        lines.append(line)
                        if line.startswith("data:") or line.startswith("event:"):
                            break  # admitted and generating: close the stream, generate nothing long
                    r = Reply(status=200, finish="admitted" if lines else None, body="\n".join(lines)[:2000],
                              shape_ok=bool(lines))
                    if not lines:
                        r.error = "the stream closed before its first event"
                else:
                    lines = [line async for line in resp.aiter_lines()]
                    r = style.parse_stream(lines)
                    r.body = "\n".join(lines)[:2000]
    except httpx.HTTPError as exc:
        kind, err = _transport(exc)
        r = Reply(transport=kind, error=err)
    r.elapsed = time.monotonic() - t0
    return r


def _probe_margin(limit: int) -> int:
    """Tokens the context probe stays under the limit by (the filler's and template's token estimate)."""
    return min(512, max(48, limit // 50))


def _filler_prompt(limit: int) -> tuple[str, int]:
    """A prompt of about (limit - output - margin) tokens: just under the context limit."""
    margin = _probe_margin(limit)
    n = max(1, limit - CONTEXT_MAX_TOKENS - margin)
    head = "Reply with the single word OK. Ignore the filler that follows."
    return head + FILLER_WORD * n, n + 16


async def validate_endpoint_async(base_url: str, model: str, *, api_key: str | None, api_style: str = "openai",
                                  sampling: dict | None = None, context_limit: int | None = None,
                                  max_tokens: int = DEFAULT_MAX_TOKENS, azure_deployment: str | None = None,
                                  azure_api_version: str | None = None, timeout: float = 120,
                                  check_auth: bool = True, context_check: str = "full") -> Report:
    from launcher.http import async_client

    check_context_form(context_check)

    style = make_style(api_style, base_url, model, api_key, azure_deployment=azure_deployment,
                       azure_api_version=azure_api_version)
    sampling = {k: v for k, v in dict(sampling or {}).items() if v is not None}
    key_given = bool(api_key)
    t0 = time.monotonic()
    limits = dict(max_connections=16, max_keepalive_connections=8)
    import httpx

    # Plain-http endpoints never use TLS: skip loading the CA bundle (~0.1 s, on the critical path).
    tls = {} if base_url.lower().startswith("https://") else {"verify": False}
    async with async_client(connect=min(10.0, timeout), read=timeout, limits=httpx.Limits(**limits),
                            **tls) as client:
        async def models_check() -> Check:
            status, data, text, kind, err = await _get(client, style.models_url(), style.headers())
            return judge_models(status, data, transport=kind, error=err, ids=style.model_ids(data), model=model,
                                key_given=key_given, style=style.name, body=text[:300])

        async def auth_check() -> Check:
            status, _data, _text, kind, _err = await _get(client, style.models_url(), style.headers(with_key=False))
            return judge_auth(status, transport=kind, key_given=key_given, style=style.name)

        async def context_request() -> tuple[Reply, int, int]:
            if context_check == "length":
                # a short prompt asking for the rest of the window: admitted or 400 before any prefill
                prompt = LENGTH_PROBE_PROMPT
                approx = len(prompt.split()) + 16  # + the chat template's tokens
                room = max(1, context_limit - approx - _probe_margin(context_limit))  # just under, like "full"
                body = style.body(style.filler(prompt), sampling=sampling, max_tokens=room, stream=True, tools=False)
                return await _post(client, style, body, stream=True, first_chunk_only=True), approx, room
            text, approx = _filler_prompt(context_limit)
            body = style.body(style.filler(text), sampling=sampling, max_tokens=CONTEXT_MAX_TOKENS, tools=False)
            slow = httpx.Timeout(context_timeout(timeout, approx), connect=min(10.0, timeout))
            return await _post(client, style, body, timeout=slow), approx, CONTEXT_MAX_TOKENS

        ask = style.ask()
        t_models = asyncio.create_task(models_check())
        t_auth = asyncio.create_task(auth_check()) if check_auth else None
        t_tool = asyncio.create_task(_post(client, style, style.body(ask, sampling=sampling, max_tokens=max_tokens)))
        t_stream = asyncio.create_task(_post(client, style, style.body(ask, sampling=sampling, max_tokens=max_tokens,
                                                                       stream=True), stream=True))
        t_ctx = asyncio.create_task(context_request()) if context_limit and context_check != "off" else None

        r = await t_tool
        final = None
        call_id = None
        if r.tool_calls:
            call = r.tool_calls[0]
            call_id = call.id
            final = await _post(client, style, style.body(style.round_trip(call), sampling=sampling,
                                                          max_tokens=max_tokens))
        s = await t_stream
        models = await t_models
        auth = await t_auth if t_auth else Check("auth", True, SKIP, "not checked (check_auth off)")
        ctx_reply, approx, ctx_out = (await t_ctx) if t_ctx else (None, 0, 0)

    common = dict(model=model, key_given=key_given)
    checks = [
        models,
        judge_tool_call(r, max_tokens=max_tokens, **common),
        judge_arguments(r),
        judge_reasoning(r, final),
        judge_round_trip(final, call_id=call_id, max_tokens=max_tokens, **common),
        judge_stream(s, r, **common),
        auth,
        judge_context(ctx_reply, limit=context_limit, prompt_tokens=approx, form=context_check, max_tokens=ctx_out,
                      **common),
    ]
    return Report(checks=checks, base_url=base_url, model=model, api_style=style.name,
                  elapsed=time.monotonic() - t0, context_check=context_check)


def validate_endpoint(base_url: str, model: str, *, api_key: str | None, api_style: str = "openai",
                      sampling: dict | None = None, context_limit: int | None = None,
                      max_tokens: int = DEFAULT_MAX_TOKENS, azure_deployment: str | None = None,
                      azure_api_version: str | None = None, timeout: float = 120,
                      check_auth: bool = True, context_check: str = "full") -> Report:
    """Run every check against one endpoint; returns the Report (raises only for bad arguments).
    ``context_check``: "full" (a prompt just under context_limit), "length" (a short prompt with
    prompt + max_tokens = context_limit; no long prefill, for unified-memory hosts) or "off"."""
    check_context_form(context_check)
    kw = dict(api_key=api_key, api_style=api_style, sampling=sampling, context_limit=context_limit,
              max_tokens=max_tokens, azure_deployment=azure_deployment, azure_api_version=azure_api_version,
              timeout=timeout, check_auth=check_auth, context_check=context_check)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(validate_endpoint_async(base_url, model, **kw))
    # called from inside an event loop: run on a worker thread with its own loop
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(validate_endpoint_async(base_url, model, **kw))).result()


def list_models(base_url: str, *, api_key: str | None, api_style: str = "openai", timeout: float = 15,
                azure_deployment: str | None = None, azure_api_version: str | None = None) -> list[str]:
    """The ids an endpoint's models list returns. Raises RuntimeFailure naming the URL when it cannot."""
    import httpx

    from launcher.errors import RuntimeFailure
    from launcher.http import client

    style = make_style(api_style, base_url, "", api_key, azure_deployment=azure_deployment,
                       azure_api_version=azure_api_version)
    url = style.models_url()
    try:
        with client(connect=min(5.0, timeout), read=timeout, retries=1) as c:
            resp = c.get(url, headers=style.headers())
    except httpx.HTTPError as exc:
        raise RuntimeFailure(f"cannot reach the endpoint: {type(exc).__name__}", where=url,
                             fix="check base_url (it ends at /v1) and that the server runs") from None
    ids = style.model_ids(_json_or_none(resp.text))
    if resp.status_code in (401, 403) or (ids is None and "error" in resp.text):
        raise RuntimeFailure(f"the models list was refused (HTTP {resp.status_code})", where=url,
                             fix="give the key: --key-env VAR (the variable holding it)")
    if ids is None:
        raise RuntimeFailure(f"the models list is not an OpenAI models body (HTTP {resp.status_code})", where=url,
                             fix="check base_url: it ends at /v1")
    return ids


_MARK = {PASS: ("✓", "green"), FAIL: ("✗", "red"), WARN: ("!", "yellow"), SKIP: ("–", "dim")}


def render_report(report: Report, console=None) -> None:
    """Print the readable checklist (rich): one line per check, cause, fix and evidence under failures."""
    from rich.table import Table
    from rich.text import Text

    from launcher.auth import redact
    from launcher.ui import console as default_console

    con = console or default_console()
    con.print(Text(redact(f"validate {report.base_url}  model {report.model}  ({report.api_style})"), style="bold"))
    t = Table(show_header=False, box=None, pad_edge=False, padding=(0, 1))
    t.add_column(width=1)
    t.add_column(no_wrap=True)
    t.add_column(overflow="fold")
    for c in report.checks:
        mark, colour = _MARK.get(c.status, ("?", ""))
        if c.status == PASS:
            body = Text(redact(c.evidence), style="dim")
        else:
            lines: list[tuple[str, str]] = []
            if c.cause and c.fix:
                lines.append(((c.diagnosis or "").split(". Fix: ")[0], ""))
                lines.append(("fix: " + c.fix, "bold"))
            else:
                lines.append((c.diagnosis or "", ""))
            if c.evidence:
                lines.append(("evidence: " + c.evidence, "dim"))
            body = Text()
            for i, (line, style) in enumerate(lines):
                body.append(("\n" if i else "") + redact(line), style=style or None)
        t.add_row(Text(mark, style=colour), Text(c.name, style=colour), body)
    con.print(t)
    con.print(Text(report.summary(), style="green" if report.ok else "red bold"))
