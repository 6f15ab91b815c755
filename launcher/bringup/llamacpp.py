"""Bring up llama.cpp's llama-server: attach to this recipe's running server (same plan hash) or to a
llama-server already serving the recipe's GGUF (probing 8080 and 9931 when the recipe names no port),
else start it with the local runtime — the API key in LLAMA_API_KEY, never in argv — and wait on
/health (503 "Loading model" -> 200). Capacity comes from /props and /slots, the served id from
/v1/models.

`up(plan, recipe, *, replace=False, timeout=None, progress=None, clock=None) -> Deployment`.
"""
from __future__ import annotations

import os
import shutil

from launcher.bringup.laptop_common import (Clock, bring_up, Reporter, get_json, local_runtime, port_is_explicit,
                                            wait_until)
from launcher.deployment import Deployment
from launcher.engines import llamacpp as eng
from launcher.engines.ollama import low_context_warning
from launcher.errors import InputError, RuntimeFailure, ServerFailed

INSTALL = ("install llama.cpp (`brew install llama.cpp`, or build llama-server from "
           "https://github.com/ggml-org/llama.cpp) and put llama-server on PATH")


def _probe(url: str, headers: dict) -> tuple[str, str, dict | None]:
    """(health state, message, /props or None) of a URL; ("down", …) when nothing answers."""
    from launcher import http

    with http.client(base_url=url, retries=0, connect=1.0, read=5.0, headers=headers) as c:
        status, body = get_json(c, "/health")
        if status == 0:
            return "down", "connection refused", None
        state, msg = eng.health_state(status, body)
        props = None
        if state == "ready":
            st, pb = get_json(c, "/props")
            props = pb if st == 200 and isinstance(pb, dict) else None
        return state, msg, props


def _measure(url: str, headers: dict, plan, *, ours: bool = True):
    """ours: launch started this server from the plan, so its argv's -c is the whole KV pool; a
    server someone else started is read from /props and /slots alone."""
    from launcher import http
    from launcher.capacity_read import capacity_from_llama, llama_ctx_total

    with http.client(base_url=url, retries=1, connect=2.0, read=10.0, headers=headers) as c:
        _, props = get_json(c, "/props")
        st, slots = get_json(c, "/slots")  # 501 when started with --no-slots
        _, models = get_json(c, "/v1/models")
    props = props if isinstance(props, dict) else {}
    head = plan.head() if ours else None
    cap = capacity_from_llama(props, slots if st == 200 and isinstance(slots, list) else None,
                              ctx_total=llama_ctx_total(head.argv if head else None))
    rows = (models or {}).get("data") or [] if isinstance(models, dict) else []
    model = rows[0].get("id") if rows and isinstance(rows[0], dict) else plan.served_name
    return cap, model or plan.served_name, props


def _candidates(plan, recipe) -> list[str]:
    urls = [plan.endpoint]
    if not port_is_explicit(plan, recipe, eng.DEFAULT_PORT):
        host = plan.endpoint.rsplit(":", 1)[0]
        urls += [f"{host}:{p}" for p in eng.ATTACH_PORTS if f"{host}:{p}" != plan.endpoint]
    return urls


def _wait_ready(url: str, headers: dict, timeout: float, clock: Clock, rep: Reporter, *, died=None, tail=None):
    last = {"msg": ""}

    def ready():
        state, msg, _props = _probe(url, headers)
        if msg != last["msg"] and state != "down":
            rep.step("load", msg)
            last["msg"] = msg
        return state == "ready"

    wait_until(ready, timeout=timeout, clock=clock, what="llama-server", where=f"{url}/health",
               fix="read the log lines above (a model llama.cpp cannot load, too little memory for -c, a "
                   "busy port); lower llamacpp.ctx or fix llamacpp.gguf", died=died, log_tail=tail,
               on_wait=lambda s: rep.step("wait", f"waiting for /health ({s:.0f} s)"))


def _deployment(plan, url: str, headers: dict, attached: bool, rep: Reporter, *, ours: bool = True) -> Deployment:
    cap, model, props = _measure(url, headers, plan, ours=ours)
    if eng.supports_tool_calls(props) is False:
        rep.warn("this model's chat template does not support tool calls (/props chat_template_caps): "
                 "coding agents need them; use a GGUF with a tool-capable template or --chat-template-file")
    if cap.max_model_len:
        low = low_context_warning(cap.max_model_len, "llama-server", "raise llamacpp.ctx (memory permitting) "
                                  "or use cache_type_k/v: q8_0")
        if low:
            rep.warn(low)
    rep.step("ready", f"{model}: n_ctx {cap.max_model_len}, {cap.slots} slot(s)")
    return Deployment(recipe=plan.recipe, engine="llamacpp", base_url=url + "/v1", model=model,
                      plan_hash=plan.hash, attached=attached, capacity=cap,
                      version=(props.get("build_info") or None), api_key_env=plan.api_key_env)


def up(plan, recipe, *, replace: bool = False, timeout: float | None = None, progress=None,
       clock: Clock | None = None) -> Deployment:
    return bring_up(_up, plan, recipe, replace=replace, timeout=timeout, progress=progress, clock=clock)


def _up(plan, recipe, *, replace: bool, timeout: float | None, rep: Reporter, clock: Clock) -> Deployment:
    from launcher import auth, http, state

    timeout = float(timeout or plan.startup_timeout)
    key = auth.resolve(plan.api_key, where=plan.api_key_where or f"{plan.recipe_path}: api_key") if plan.api_key else None
    headers = http.bearer(key)
    rt = local_runtime()
    gguf = os.path.expanduser(recipe.llamacpp.gguf)

    # 1. what launcher itself started for this recipe
    mine = [h for h in rt.find(plan.recipe) if h.role == "server"]
    for h in [h for h in mine if not rt.alive(h)]:
        state.forget(h)
    mine = [h for h in mine if rt.alive(h)]
    if mine and all(h.plan_hash == plan.hash for h in mine) and not replace:
        rep.note(f"attaching to the running {plan.recipe} (plan {plan.hash})")
        h = mine[0]
        _wait_ready(plan.endpoint, headers, timeout, clock, rep, died=lambda: _died(rt, h))
        return _deployment(plan, plan.endpoint, headers, True, rep)
    if mine:
        if not replace:
            raise RuntimeFailure(f"recipe {plan.recipe} is already running with a different plan "
                                 f"({', '.join(sorted({h.plan_hash for h in mine}))}, now {plan.hash})",
                                 where=plan.endpoint, fix=f"add --replace, or `launch down {plan.recipe}` first")
        for h in mine:
            rt.stop(h)
            state.forget(h)

    # 2. a llama-server someone else started, serving this GGUF
    for url in _candidates(plan, recipe):
        st, msg, props = _probe(url, headers)
        if st == "down":
            continue
        if st == "loading":  # a llama-server still loading its model: see what it serves once ready
            rep.note(f"a llama-server at {url} is loading a model; waiting to see which")
            _wait_ready(url, headers, timeout, clock, rep)
            st, msg, props = _probe(url, headers)
        if props is not None and eng.same_file(eng.props_model_path(props), gguf):
            rep.note(f"attaching to the llama-server at {url} (serves {gguf})")
            return _deployment(plan, url, headers, True, rep, ours=False)
        if url == plan.endpoint:
            what = (f"a llama-server serving {eng.props_model_path(props)}" if props
                    else f"a server that is not this recipe's ({st}: {msg})")
            raise RuntimeFailure(f"port {url.rsplit(':', 1)[1]} is taken by {what}", where=url,
                                 fix="stop that server, or set `port:` in the recipe to a free one")

    # 3. start it
    proc = plan.head()
    if not os.path.isfile(gguf):
        raise InputError(f"the GGUF file {gguf} does not exist", where=f"{plan.recipe_path}: llamacpp.gguf",
                         fix="download the model (e.g. `huggingface-cli download ORG/REPO FILE.gguf`) or fix the path")
    if shutil.which(proc.argv[0], path=os.environ.get("PATH")) is None:
        raise ServerFailed(f"{proc.argv[0]} is not on PATH", where=plan.recipe, fix=INSTALL)
    secrets = auth.secrets_for(proc, auth.plan_secrets(plan, key))
    rep.step("start", f"starting llama-server on {plan.endpoint}")
    handle = rt.start(proc, plan, secrets)
    try:
        _wait_ready(plan.endpoint, headers, timeout, clock, rep, died=lambda: _died(rt, handle),
                    tail=lambda: [auth.redact(x) for x in rt.logs(handle, tail=30)])
        return _deployment(plan, plan.endpoint, headers, False, rep)
    except BaseException:
        rt.stop(handle)
        state.forget(handle)
        raise


def _died(rt, handle) -> str | None:
    info = rt.exit_info(handle)
    return info.reason if info else None
