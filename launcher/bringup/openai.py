"""Attach-only bring-up (engine: openai): launcher starts nothing; it probes the endpoint once and
returns the Deployment the later stages consume (validation, agent config).

The probe is the models list with the key, in the recipe's API style (OpenAI, Anthropic, Azure):
unreachable → ServerFailed (exit 4), refused → SecretError (exit 2), served id missing → InputError
listing the ids the endpoint serves. An OpenAI-style endpoint that serves vLLM's /metrics also gives
its KV pool (``vllm:cache_config_info``), so sessions sharing it divide the pool; without it only the
per-request length is known, and a recipe with several sessions is warned.
"""
from __future__ import annotations

from launcher.deployment import Capacity, Deployment
from launcher.errors import InputError, SecretError, ServerFailed

PROBE_TIMEOUT = 15.0


def _say(progress, text: str) -> None:
    if progress is None:
        return
    for attr in ("stage", "update", "info"):
        fn = getattr(progress, attr, None)
        if callable(fn):
            fn(text)
            return
    if callable(progress):
        progress(text)


def _warn(progress, text: str) -> None:
    fn = getattr(progress, "warn", None)
    if callable(fn):
        fn(text)
        return
    from launcher import ui

    ui.warn(text)


def _vllm_metrics(base_url: str, headers: dict, read: float) -> str | None:
    """The endpoint's vLLM /metrics text (sent with the key: a gateway may guard it), or None when the
    endpoint has none (not vLLM, a gateway that does not pass it on, a refusal)."""
    import httpx

    from launcher.http import client

    url = base_url.rstrip("/").removesuffix("/v1") + "/metrics"
    try:
        with client(connect=min(5.0, read), read=read, retries=0) as c:
            resp = c.get(url, headers=headers)
    except httpx.HTTPError:
        return None
    if resp.status_code != 200 or "vllm:" not in resp.text:
        return None
    return resp.text


def _api_key(plan) -> str | None:
    if not plan.api_key:
        return None
    from launcher.auth import resolve

    return resolve(plan.api_key, where=plan.api_key_where or f"{plan.recipe_path}: api_key")


def up(plan, recipe, *, replace: bool = False, timeout: float | None = None, progress=None) -> Deployment:
    """Probe the endpoint the plan names; `replace` is meaningless here (nothing is started)."""
    import httpx

    from launcher.http import client
    from launcher.validate_styles import make_style

    r = getattr(recipe, "spec", recipe)
    attach = getattr(r, "openai", None)
    style_name = attach.api_style if attach else "openai"
    key = _api_key(plan)
    style = make_style(style_name, plan.base_url, plan.served_name, key,
                       azure_deployment=getattr(attach, "deployment", None),
                       azure_api_version=getattr(attach, "api_version", None))
    url = style.models_url()
    _say(progress, f"attaching to {plan.base_url} ({style_name})")
    read = min(float(timeout), PROBE_TIMEOUT) if timeout else PROBE_TIMEOUT
    try:
        with client(connect=min(5.0, read), read=read, retries=2) as c:
            resp = c.get(url, headers=style.headers())
    except httpx.HTTPError as exc:
        raise ServerFailed(f"the endpoint does not answer ({type(exc).__name__})", where=url,
                           fix="launch only attaches to engine: openai endpoints: start the server, or fix "
                               "openai.base_url (it ends at /v1)") from None
    try:
        data = resp.json()
    except ValueError:
        data = None
    ids = style.model_ids(data)
    if resp.status_code in (401, 403) or (ids is None and isinstance(data, dict) and "error" in data):
        raise SecretError(f"the endpoint refused the key (HTTP {resp.status_code})", where=url,
                          fix=("check the recipe's api_key source holds this endpoint's key" if key else
                               "the endpoint wants a key: add api_key (env:/file:/command:) to the recipe"))
    if ids is None:
        raise ServerFailed(f"the models list is not this API's shape (HTTP {resp.status_code})", where=url,
                           fix="check openai.base_url and openai.api_style")
    entry = None
    if style_name != "azure":
        if plan.served_name not in ids:
            raise InputError(f"the endpoint does not serve {plan.served_name!r}", where=url,
                             fix="set served_name to one of: " + (", ".join(ids[:20]) or "(none listed)"))
        entry = next((m for m in data["data"] if isinstance(m, dict) and m.get("id") == plan.served_name), None)
    cap = Capacity(source="/v1/models")
    if entry and isinstance(entry.get("max_model_len"), int):
        cap.max_model_len = entry["max_model_len"]
    if style_name == "openai":
        metrics = _vllm_metrics(plan.base_url, style.headers(), read)
        if metrics:
            from launcher.capacity_read import capacity_from_vllm

            measured = capacity_from_vllm(None, metrics, data, model=plan.served_name)
            if measured.kv_tokens is not None:
                cap = measured
    sessions = getattr(getattr(r, "agent", None), "sessions", 1) or 1
    if cap.kv_tokens is None and sessions > 1:
        _warn(progress, f"{plan.base_url} does not say how many KV tokens it holds (no vLLM /metrics): the "
                        f"{sessions} sessions are each promised the per-request length"
                        + (f" {cap.max_model_len:,}" if cap.max_model_len else "")
                        + ", not a share of the server's KV pool; if they run at once the server may "
                          "preempt or reject. Set agent.context to what one session may use")
    _say(progress, f"attached: {plan.served_name} at {plan.base_url}")
    return Deployment(recipe=plan.recipe, engine=plan.engine, base_url=plan.base_url, model=plan.served_name,
                      plan_hash=plan.hash, attached=True, capacity=cap, api_key_env=plan.api_key_env)
