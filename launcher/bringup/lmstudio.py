"""Bring up LM Studio: the server at the plan's endpoint (127.0.0.1:1234) or `lms server start`; load
the model with the recipe's context (REST v1 load, or `lms load --context-length` on a v0-only
server); read back what was really loaded — LM Studio can silently reduce it — and use that.

`up(plan, recipe, *, replace=False, timeout=None, progress=None, clock=None) -> Deployment`; its
`model` is the loaded instance id (what /v1/chat/completions takes) and `capacity` the read-back.
"""
from __future__ import annotations

import shutil

from launcher.bringup.laptop_common import (Clock, bring_up, Reporter, get_json, local_host, local_runtime,
                                            wait_until)
from launcher.deployment import Capacity, Deployment
from launcher.engines import lmstudio as eng
from launcher.engines.ollama import low_context_warning
from launcher.errors import InputError, RuntimeFailure, ServerFailed


AUTO_FALLBACK = 32768  # `auto` without the model's shape: a context any machine running the model holds


def auto_context(shape, row: dict | None, trained: int | None, *, evictable: bool, where: str,
                 free: tuple[int, str] | None = None) -> tuple[int, str, list[str]]:
    """`lmstudio.context: auto`: the largest context whose KV cache (f16, llama.cpp's default in LM Studio)
    fits free memory after the weights, capped by the trained length, like Ollama's auto. The shape comes
    from the recipe's `shape:` block (LM Studio's models list has none); without it, AUTO_FALLBACK and a
    warning. Returns (context, how it was chosen, warnings)."""
    from launcher.bringup.ollama_context import overhead_bytes
    from launcher.fit import kv_figures
    from launcher.laptop_mem import GIB, free_bytes, gib

    weights = float((row or {}).get("size_bytes") or 0) or (
        float(shape.weights_gib) * GIB if shape is not None and shape.weights_gib else 0.0)
    if shape is None or not weights:
        ctx = min(trained or AUTO_FALLBACK, AUTO_FALLBACK)
        missing = "`shape:` block" if shape is None else "weights size (shape.weights_gib)"
        return ctx, "fallback (model shape unknown)", [
            f"the recipe has no {missing}: cannot size the context from free memory, asking LM Studio for "
            f"{ctx}; set lmstudio.context to a number, or add the model's shape to the recipe"]
    mem, how = free if free is not None else free_bytes()
    if evictable and how != "LAUNCHER_FREE_MEMORY":  # the loaded copy is unloaded before the new load
        mem += weights
        how += f" + {gib(weights)} of the loaded copy launch unloads first"
    over = overhead_bytes(weights)
    room = mem - weights - over
    figs = kv_figures(shape, None)
    ctx = figs.largest_context(room, 1, cap=trained, granularity=1024) if room > 0 else 0
    if ctx >= 16384 and ctx != trained:
        ctx -= ctx % 8192
    if ctx < 2048:
        raise InputError(f"the model needs {gib(weights + over)} for weights and buffers, leaving no room for a "
                         f"context in {gib(mem)} free memory ({how})", where=where,
                         fix="close other programs, pick a smaller model or quantization, or set "
                             "lmstudio.context to a small number")
    capped = trained is not None and ctx == trained
    return ctx, (f"auto: {'the trained length' if capped else 'the largest that fits'} ({gib(mem)} free, "
                 f"weights {gib(weights)}, {figs.full_bytes_per_token / 1024:.0f} KiB/token f16)"), []


def reports_reasoning(row: dict | None) -> bool | None:
    """Whether LM Studio's models row says the model reasons: v1 `capabilities.reasoning` (a flag or an
    object of reasoning options), v0 `capabilities` names ("reasoning"); None when it does not say."""
    caps = (row or {}).get("capabilities")
    if isinstance(caps, dict) and "reasoning" in caps:
        return bool(caps["reasoning"])
    if isinstance(caps, list):
        return "reasoning" in caps
    return None


def _api(c) -> tuple[str | None, dict | None]:
    """("v1" | "v0" | "openai" | None, models document) — which REST API answers."""
    for version, path in (("v1", "/api/v1/models"), ("v0", "/api/v0/models")):
        status, body = get_json(c, path)
        if status == 200 and isinstance(body, dict):
            return version, body
    status, body = get_json(c, "/v1/models")
    return ("openai", None) if status == 200 else (None, None)


def _models(c, api: str) -> dict:
    status, body = get_json(c, "/api/v1/models" if api == "v1" else "/api/v0/models")
    return body if status == 200 and isinstance(body, dict) else {}


def _start(plan, c, url: str, timeout: float, clock: Clock, rep: Reporter):
    if shutil.which("lms") is None:
        raise ServerFailed(f"no LM Studio server answers at {url} and `lms` is not on PATH", where=url,
                           fix=eng.install_hint())
    argv = eng.server_start_argv(int(url.rsplit(":", 1)[1]))
    rep.step("start", "starting " + " ".join(argv))
    res = local_runtime().run(local_host(plan), argv, timeout=min(timeout, 120.0))
    if res.code != 0:
        raise ServerFailed(f"`{' '.join(argv)}` failed (exit {res.code}): "
                           f"{(res.stderr or res.stdout).strip()[-300:]}", where=url,
                           fix="open the LM Studio app once (it sets up the daemon), then retry")
    return wait_until(lambda: _api(c)[0] and _api(c), timeout=timeout, clock=clock, what="lms server start",
                      where=f"{url}/api/v1/models", fix="check LM Studio's Developer tab / `lms server status`",
                      on_wait=lambda s: rep.step("wait", f"waiting for LM Studio ({s:.0f} s)"))


def _load(c, plan, api: str, key: str, ctx: int, gpu, url: str, timeout: float) -> str | None:
    """Load; returns the instance id the server named (None for the CLI path)."""
    import httpx

    if api == "v1":
        try:
            resp = c.post("/api/v1/models/load", json=eng.load_body(key, ctx),
                          timeout=httpx.Timeout(timeout, connect=5.0))
        except httpx.TimeoutException:
            raise ServerFailed(f"loading {key} took longer than {timeout:g} s", where=f"{url}/api/v1/models/load",
                               fix="raise startup_timeout or lower lmstudio.context") from None
        if resp.status_code != 200:
            raise ServerFailed(f"LM Studio could not load {key} with context {ctx}: {resp.text[:300]}",
                               where=f"{url}/api/v1/models/load",
                               fix="lower lmstudio.context, free memory, or load it in the app to see why")
        return resp.json().get("instance_id")
    if shutil.which("lms") is None:
        raise RuntimeFailure(f"this LM Studio ({api} API) cannot load models over REST and `lms` is not on PATH",
                             where=url, fix="update LM Studio to 0.4+, or " + eng.install_hint())
    argv = eng.load_argv(key, ctx, gpu=gpu)
    res = local_runtime().run(local_host(plan), argv, timeout=timeout)
    if res.code != 0:
        raise ServerFailed(f"`{' '.join(argv)}` failed (exit {res.code}): {(res.stderr or res.stdout).strip()[-300:]}",
                           where=url, fix="lower lmstudio.context or free memory")
    return None


def _unload(c, plan, api: str, key: str, doc: dict) -> None:
    if api != "v1":  # no REST unload before 0.4: the CLI does it (else `lms load` adds a second instance)
        if shutil.which("lms") is not None:
            local_runtime().run(local_host(plan), eng.unload_argv(key), timeout=60.0)
        return
    row = eng.find_model(doc, key) or {}
    for inst in row.get("loaded_instances") or []:
        if inst.get("id"):
            c.post("/api/v1/models/unload", json={"instance_id": inst["id"]})


def _ps(plan) -> list:
    """`lms ps --json`, or [] when lms is missing or says nothing usable."""
    import json

    if shutil.which("lms") is None:
        return []
    res = local_runtime().run(local_host(plan), eng.ps_argv(), timeout=30.0)
    try:
        items = json.loads(res.stdout) if res.code == 0 else []
    except ValueError:
        return []
    return items if isinstance(items, list) else []


def up(plan, recipe, *, replace: bool = False, timeout: float | None = None, progress=None,
       clock: Clock | None = None) -> Deployment:
    return bring_up(_up, plan, recipe, replace=replace, timeout=timeout, progress=progress, clock=clock)


def _up(plan, recipe, *, replace: bool, timeout: float | None, rep: Reporter, clock: Clock) -> Deployment:
    from launcher import auth, http

    timeout = float(timeout or plan.startup_timeout)
    o = recipe.lmstudio
    url = plan.endpoint
    headers = http.bearer(auth.resolve(recipe.api_key, where=plan.recipe_path)) if recipe.api_key else {}
    key = recipe.model
    with http.client(base_url=url, retries=0, read=60.0, headers=headers) as c:
        api, doc = _api(c)
        attached = api is not None
        if not attached:
            api, doc = _start(plan, c, url, timeout, clock, rep)
        if api == "openai":
            raise RuntimeFailure(f"the server at {url} answers /v1/models but not LM Studio's REST API "
                                 f"(/api/v1 or /api/v0)", where=url,
                                 fix="update LM Studio to 0.3.6+ (0.4+ for loading over REST), or use "
                                     "engine: openai to attach without managing the context")
        rep.step("start", f"LM Studio ({api} REST API) at {url}")
        row = eng.find_model(doc, key)
        if row is None:
            have = ", ".join(r.get("key") or r.get("id") or "?" for r in eng.rows(doc)
                             if r.get("type") in ("llm", "vlm", None)) or "none"
            raise InputError(f"LM Studio has no model '{key}' (downloaded: {have})", where=f"{plan.recipe_path}: model",
                             fix=f"download it with `lms get {key}` (or in the app), or fix `model:`")
        if eng.trained_for_tools(row) is False:
            rep.warn(f"LM Studio says {key} was not trained for tool use: tool calls may be unreliable")
        trained = eng.max_context(row)
        if o.context == "auto":
            loaded_now = eng.loaded(doc, key) is not None
            want, why, warnings = auto_context(recipe.shape, row, trained, evictable=loaded_now,
                                               where=f"{plan.recipe_path}: lmstudio.context")
            for w in warnings:
                rep.warn(w)
            rep.note(f"context {want}: {why}")
        else:
            want = int(o.context)
        if trained and want > trained:
            rep.warn(f"lmstudio.context {want} is above {key}'s trained length {trained}; asking for {trained}")
            want = trained
        now = eng.loaded(doc, key)
        if now and now[1] == want and not replace:
            instance = now[0]
            rep.step("load", f"{key} already loaded with context {want}")
        else:
            if now:
                _unload(c, plan, api, key, doc)
            rep.step("load", f"loading {key} with context {want}")
            instance = _load(c, plan, api, key, want, o.gpu, url, timeout)
        rep.step("measure", "reading back the loaded context")
        doc = _models(c, api)
    got = eng.loaded(doc, instance or key) or eng.loaded(doc, key)
    from_ps = None
    if got is None and api != "v1":  # a REST list without the loaded context: ask the CLI
        from_ps = got = eng.loaded_from_ps(_ps(plan), key)
    if got is None:
        raise ServerFailed(f"LM Studio reports {key} as not loaded after loading it", where=f"{url}/api/{api}/models",
                           fix="check LM Studio's log (Developer tab) for why it unloaded")
    instance, ctx = got
    cap = _loaded_capacity(doc, instance, key, ctx, bool(from_ps))
    if ctx < want:
        rep.warn(f"LM Studio loaded {key} with a {ctx}-token context, not the {want} asked for (it reduces the "
                f"context silently when memory is short); using {ctx}")
    low = low_context_warning(ctx, "LM Studio", "free memory, lower the GPU offload, or use a smaller quantization")
    if low:
        rep.warn(low)
    rep.step("ready", f"{instance}: context {ctx}")
    return Deployment(recipe=plan.recipe, engine="lmstudio", base_url=url + "/v1", model=instance,
                      plan_hash=plan.hash, attached=attached, capacity=cap, version=api,
                      reasoning=reports_reasoning(row))


def _loaded_capacity(doc, instance: str, key: str, ctx: int, from_ps: bool) -> Capacity:
    """What LM Studio loaded: from `lms ps --json` (one slot of ctx) or from its REST models list."""
    from launcher.capacity_read import capacity_from_lmstudio

    if from_ps:
        return Capacity(kv_tokens=ctx, max_concurrency=1.0, max_model_len=ctx, slots=1,
                        source="lmstudio `lms ps --json` contextLength")
    cap = capacity_from_lmstudio(doc, instance)
    return cap if cap.max_model_len is not None else capacity_from_lmstudio(doc, key)


def read_running(plan, recipe) -> tuple[Deployment | None, str, str]:
    """Read only (nothing started or loaded): the context LM Studio really loaded the recipe's model with.
    Returns (deployment or None, what was found or why not, the server URL)."""
    from launcher import auth, http
    from launcher.bringup.laptop_common import recipe_spec
    from launcher.errors import LauncherError

    recipe = recipe_spec(plan, recipe)
    url, key = plan.endpoint, recipe.model
    headers = {}
    if recipe.api_key:
        try:
            headers = http.bearer(auth.resolve(recipe.api_key, where=plan.recipe_path))
        except LauncherError as exc:  # the server would answer 401: say why instead of "no server"
            return None, f"the API key for LM Studio at {url} is not readable here ({exc.what})", url
    with http.client(base_url=url, retries=0, connect=2.0, read=15.0, headers=headers) as c:
        api, doc = _api(c)
    if api is None:
        return None, f"no LM Studio server answers at {url}", url
    if api == "openai":
        return None, f"the server at {url} does not answer LM Studio's REST API (/api/v1 or /api/v0)", url
    got = eng.loaded(doc, key)
    from_ps = False
    if got is None and api != "v1":
        got, from_ps = eng.loaded_from_ps(_ps(plan), key), True
    if got is None:
        return None, f"LM Studio at {url} has not loaded '{key}'", url
    instance, ctx = got
    cap = _loaded_capacity(doc, instance, key, ctx, from_ps)
    dep = Deployment(recipe=plan.recipe, engine="lmstudio", base_url=url + "/v1", model=instance,
                     plan_hash=plan.hash, attached=True, capacity=cap, version=api,
                     reasoning=reports_reasoning(eng.find_model(doc, key)))
    return dep, f"LM Studio at {url} serves '{instance}' loaded with context {ctx}", url
