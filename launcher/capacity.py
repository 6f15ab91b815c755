"""Pure math: from what the server measured to the agent's safe ``limit.context`` / ``limit.output``.

Rules (../shared/reference/kv-capacity.md, agents.md):
- the server rejects a request when prompt + max_tokens > L (max model length) and thrashes
  (preempts) when the running requests together need more than K (KV tokens); S sessions share K;
- safe context = min(L, floor(K / S)) - margin (chat template + tool schemas: a few percent, at
  least ~1.5k tokens), never above the model's trained length;
- OpenCode compacts at ``limit.context - min(limit.output, 32000)``: a huge output budget shrinks
  the conversation, so output is capped at a quarter of the context; reasoning models get >= 4096.
"""
from __future__ import annotations

import math

from launcher.deployment import Capacity, Limits
from launcher.errors import InputError, RuntimeFailure

MARGIN_FRACTION = 0.02  # of what the server holds per session
MARGIN_MIN = 1536  # tokens: chat template + ~10 tool schemas
MARGIN_ROUND = 256
REASONING_MIN_OUTPUT = 4096  # a one-argument tool call took ~160 tokens of thinking; long ones far more
OUTPUT_SHARE = 4  # output <= context / 4: leave most of the context to the conversation
OPENCODE_OUTPUT_CAP = 32000


def default_margin(holds: int) -> int:
    """Tokens kept back from what the server holds: max(2 %, 1,536), rounded up to 256, at most a quarter."""
    m = max(MARGIN_MIN, math.ceil(holds * MARGIN_FRACTION))
    m = math.ceil(m / MARGIN_ROUND) * MARGIN_ROUND
    return min(m, holds // 4)


def server_holds(capacity: Capacity, sessions: int = 1) -> tuple[int | None, str]:
    """The longest request each of ``sessions`` concurrent sessions can have without exceeding L or
    its share of K, and the expression that gives it (e.g. ``min(max-model-len 262,144, KV 643,232 / 1
    session)``). (None, "") when the server measured nothing."""
    L, K = capacity.max_model_len, capacity.kv_tokens
    s_word = "session" if sessions == 1 else "sessions"
    if L and K:
        return min(L, K // sessions), f"min(max-model-len {L:,}, KV {K:,} / {sessions} {s_word})"
    if L:
        return L, f"max-model-len {L:,}"
    if K:
        return K // sessions, f"KV {K:,} / {sessions} {s_word}"
    return None, ""


def derive_output(context: int, output_budget: int, reasoning: bool) -> tuple[int, str]:
    """limit.output: the budget, at most context/4; >= 4096 for reasoning models (but at most half)."""
    share = context // OUTPUT_SHARE
    out = min(output_budget, share)
    why = f"output {out:,} = min(budget {output_budget:,}, context/{OUTPUT_SHARE} {share:,})"
    if reasoning and out < REASONING_MIN_OUTPUT:
        out = min(REASONING_MIN_OUTPUT, context // 2)
        why = (f"output {out:,} = min({REASONING_MIN_OUTPUT:,}, context/2) (reasoning model: budget "
               f"{output_budget:,} and context/{OUTPUT_SHARE} {share:,} leave too little room to think)")
    return max(out, 1), why


def derive_limits(capacity: Capacity, *, sessions: int = 1, output_budget: int = 32000,
                  reasoning: bool = False, trained_context: int | None = None,
                  requested: int | str = "auto", margin: int | None = None,
                  where: str | None = None) -> Limits:
    """The agent's limits from the measured capacity.

    ``requested`` is the recipe's ``agent.context``: "auto" uses the measurement; a number is
    checked against it (InputError, with ``where`` as its location, when it exceeds what the
    server holds). ``margin`` overrides :func:`default_margin`.
    """
    if sessions < 1:
        raise InputError(f"sessions must be at least 1, not {sessions}", where=where,
                         fix="set agent.sessions to the number of agents sharing the server")
    holds, expr = server_holds(capacity, sessions)
    if holds is not None and trained_context and trained_context < holds:
        expr = f"min({expr}, trained {trained_context:,})"
        holds = trained_context
    auto = isinstance(requested, str)
    if auto and str(requested) != "auto":
        raise InputError(f"context must be `auto` or a number of tokens, not {requested!r}", where=where,
                         fix="write `context: auto` or e.g. `context: 131072`")

    if holds is None:
        if auto:
            raise RuntimeFailure(
                "the server reported no capacity (no max model length, no KV size): cannot size the "
                "agent's context", where=capacity.source or where,
                fix="set agent.context to a number the server accepts, or check the server's logs/API")
        ctx = int(requested)
        out, out_why = derive_output(ctx, output_budget, reasoning)
        return Limits(context=ctx, output=out,
                      reasoning=f"context {ctx:,} as requested (the server reported no capacity to check "
                                f"it against); {out_why}")

    if holds < 1:
        raise RuntimeFailure(f"the server holds no tokens per session ({expr} = {holds})",
                             where=capacity.source or where,
                             fix="serve fewer sessions, or give the KV cache more memory")

    if auto:
        m = default_margin(holds) if margin is None else max(0, margin)
        ctx = holds - m
        if ctx < 1:
            raise RuntimeFailure(f"nothing left for the conversation: {expr} = {holds:,} minus margin {m:,}",
                                 where=capacity.source or where,
                                 fix="lower the margin, serve fewer sessions or give the KV cache more memory")
        why = f"context {ctx:,} = {expr} − margin {m:,}"
    else:
        ctx = int(requested)
        if ctx < 1:
            raise InputError(f"context must be positive, not {ctx}", where=where,
                             fix="write `context: auto` or a positive number of tokens")
        if ctx > holds:
            s = "s" if sessions != 1 else ""
            raise InputError(
                f"agent.context {ctx:,} is more than the server holds: {expr} = {holds:,} tokens per "
                f"session; the agent would send requests the server rejects or thrashes on",
                where=where,
                fix=f"set agent.context to at most {holds - default_margin(holds):,} (or `auto`), or give "
                    f"the server more: a larger max_model_len, kv_cache_dtype fp8, more tensor parallelism, "
                    f"or fewer than {sessions} session{s}",
                details=[f"measured by {capacity.source}"] if capacity.source else None)
        m = holds - ctx
        why = f"context {ctx:,} as requested (server holds {expr} = {holds:,}"
        if margin is None and m < default_margin(holds):
            why += f"; only {m:,} tokens spare for template and tool schemas"
        why += ")"
    out, out_why = derive_output(ctx, output_budget, reasoning)
    return Limits(context=ctx, output=out, reasoning=f"{why}; {out_why}")


def opencode_compacts_at(limits: Limits) -> int:
    """Where OpenCode starts compacting with these limits (agents.md)."""
    return limits.context - min(limits.output, OPENCODE_OUTPUT_CAP)
