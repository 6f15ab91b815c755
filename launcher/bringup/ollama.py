"""Bring up Ollama: attach (OLLAMA_HOST or the recipe's port) or start `ollama serve`; pull the model
with progress; check it can call tools; fix a context through a derived model (/api/create
parameters.num_ctx); load it and read the real context back from /api/ps.

`up(plan, recipe, *, replace=False, timeout=None, progress=None, clock=None) -> Deployment`; its
`model` is the derived model's name and `capacity` the /api/ps reading.
"""
from __future__ import annotations

import os
import shutil

from launcher.bringup import ollama_context
from launcher.bringup.laptop_common import (Clock, bring_up, RateMeter, Reporter, get_json, local_runtime, ndjson,
                                            port_is_explicit, server_handles, wait_until)
from launcher.deployment import Capacity, Deployment
from launcher.engines import ollama as eng
from launcher.errors import InputError, RuntimeFailure, ServerFailed


def server_url(plan, recipe, environ=None) -> str:
    """The recipe's explicit port wins; else OLLAMA_HOST; else the plan's endpoint (127.0.0.1:11434)."""
    return _server_url(plan, recipe, environ)[0]


def _server_url(plan, recipe, environ=None) -> tuple[str, str]:
    """(url, where it came from, for messages)."""
    environ = os.environ if environ is None else environ
    if port_is_explicit(plan, recipe, eng.DEFAULT_PORT):
        return plan.endpoint, "from the recipe's port or --port"
    value = environ.get("OLLAMA_HOST")
    from_env = eng.url_from_ollama_host(value)
    if from_env:
        return from_env, f"from OLLAMA_HOST={value}"
    return plan.endpoint, "the default: OLLAMA_HOST is unset"


def _version(url: str) -> str | None:
    from launcher import http

    with http.client(base_url=url, retries=0, connect=2.0, read=5.0) as c:
        status, body = get_json(c, "/api/version")
    return body.get("version") if status == 200 and isinstance(body, dict) else None


def _start(plan, url: str, origin: str, timeout: float, clock: Clock, rep: Reporter,
           environ=None) -> tuple[str, str]:
    """Start `ollama serve` where the server was looked for: the recipe's port, else OLLAMA_HOST, else
    the default. Returns (version, url)."""
    proc = plan.head()
    if proc is None or shutil.which(proc.argv[0]) is None:
        raise ServerFailed(f"no Ollama server answers at {url} ({origin}) and `ollama` is not on PATH, "
                           f"so launch cannot start one", where=url, fix=eng.not_running_fix(url, origin))
    environ = os.environ if environ is None else environ
    if url != plan.endpoint and origin.startswith("from OLLAMA_HOST"):
        # the user's OLLAMA_HOST (their bind address, kept as given) instead of the plan's default
        proc = proc.model_copy(update={"env": {**proc.env, "OLLAMA_HOST": environ["OLLAMA_HOST"].strip()},
                                       "port": int(url.rsplit(":", 1)[1])})
    rt = local_runtime()
    rep.step("start", f"starting {proc.command} (OLLAMA_HOST={proc.env.get('OLLAMA_HOST')})")
    from launcher.auth import plan_secrets, secrets_for

    handle = rt.start(proc, plan, secrets_for(proc, plan_secrets(plan, None)))

    def died():
        info = rt.exit_info(handle)
        return info.reason if info else None

    version = wait_until(lambda: _version(url), timeout=timeout, clock=clock,
                         what="ollama serve", where=f"{url}/api/version",
                         fix="see the log above (`ollama serve` by hand shows the same); if another "
                             "program holds the port, free it or set the recipe's port / OLLAMA_HOST to "
                             "a free address", died=died,
                         log_tail=lambda: list(rt.logs(handle, tail=20)),
                         on_wait=lambda s: rep.step("wait", f"waiting for ollama serve ({s:.0f} s)"))
    return str(version), url


def _pull(c, model: str, rep: Reporter, clock: Clock, url: str, where: str) -> None:
    state = eng.PullState()
    meter = RateMeter(clock)
    for obj in ndjson(c, "POST", "/api/pull", {"model": model}):
        state.feed(obj)
        if state.error:
            if eng.missing_model_error(state.error):
                raise InputError(f"Ollama cannot pull '{model}': {state.error}", where=f"{url}/api/pull",
                                 fix=f"check the name at https://ollama.com/library (e.g. qwen3-coder:30b) "
                                     f"and fix `model:` in {where}")
            raise RuntimeFailure(f"pulling '{model}' failed: {state.error}", where=f"{url}/api/pull",
                                 fix="check the network and disk space, then retry")
        total = state.total
        rep.step("pull", state.status, completed=state.completed if total else None, total=total,
             rate=meter.update(state.completed) if total else None)
    if not state.success:
        raise RuntimeFailure(f"pulling '{model}' ended without success (last status: {state.status!r})",
                             where=f"{url}/api/pull", fix="retry; `ollama pull` by hand shows more")


def _show(c, model: str, url: str) -> dict:
    # verbose: without it Ollama replaces every array longer than 5 (per-layer head_count_kv) with []
    resp = c.post("/api/show", json={"model": model, "verbose": True})
    if resp.status_code != 200:
        raise RuntimeFailure(f"/api/show for '{model}' answered HTTP {resp.status_code}: {resp.text[:200]}",
                             where=f"{url}/api/show", fix=f"`ollama show {model}` by hand shows why")
    return resp.json()


def _create(c, name: str, base: str, num_ctx: int, url: str) -> None:
    last = ""
    for obj in ndjson(c, "POST", "/api/create", {"model": name, "from": base, "parameters": {"num_ctx": num_ctx}}):
        err = eng.stream_error(obj)
        if err:
            raise RuntimeFailure(f"creating '{name}' from '{base}' failed: {err}", where=f"{url}/api/create",
                                 fix="check the Ollama version (0.5.5+ takes from/parameters) and its log")
        last = obj.get("status") or last
    if last != "success":
        raise RuntimeFailure(f"creating '{name}' ended without success (last status: {last!r})",
                             where=f"{url}/api/create", fix="retry; the Ollama server log shows why")


def _load(c, name: str, keep_alive: str | None, url: str, timeout: float) -> None:
    import httpx

    body = {"model": name, "stream": False, "keep_alive": keep_alive or "30m"}
    try:
        resp = c.post("/api/generate", json=body, timeout=httpx.Timeout(timeout, connect=5.0))
    except httpx.TimeoutException:
        raise ServerFailed(f"loading '{name}' took longer than {timeout:g} s", where=f"{url}/api/generate",
                           fix="raise startup_timeout in the recipe, or use a smaller context") from None
    if resp.status_code != 200:
        try:
            msg = resp.json().get("error") or resp.text
        except ValueError:
            msg = resp.text
        raise ServerFailed(f"Ollama could not load '{name}': {msg}", where=f"{url}/api/generate",
                           fix="lower ollama.context (or use auto), free memory, or use a smaller model")


ATTACHED_PARALLEL = 1  # Ollama's default OLLAMA_NUM_PARALLEL
ATTACHED_KV = "f16"  # Ollama's default OLLAMA_KV_CACHE_TYPE


def _server_settings(o, attached: bool, plan, rep: Reporter, url: str) -> tuple[int, str | None]:
    """(parallel, KV cache type) the server really runs with. A server launch starts gets the recipe's
    (through its environment); an attached one was started by someone else with settings launch cannot
    read, so the sizing assumes Ollama's defaults and says when the recipe asked for others."""
    if not attached:
        env = plan.head().env if plan.head() else {}
        return int(env.get("OLLAMA_NUM_PARALLEL") or o.num_parallel), env.get("OLLAMA_KV_CACHE_TYPE") or o.kv_cache_type
    ignored = []
    if o.kv_cache_type and o.kv_cache_type != ATTACHED_KV:
        ignored.append(f"ollama.kv_cache_type: {o.kv_cache_type}")
    if o.num_parallel != ATTACHED_PARALLEL:
        ignored.append(f"ollama.num_parallel: {o.num_parallel}")
    if ignored:
        rep.warn(f"{' and '.join(ignored)} only apply to an Ollama server launch starts; the one at {url} "
                 f"was already running with its own settings (OLLAMA_KV_CACHE_TYPE, OLLAMA_NUM_PARALLEL in "
                 f"its environment), so the context is sized for Ollama's defaults ({ATTACHED_KV} KV, "
                 f"{ATTACHED_PARALLEL} parallel) and the loaded context is read back from /api/ps; to use "
                 f"the recipe's settings, stop that server and let `launch up` start one")
    return ATTACHED_PARALLEL, None


def up(plan, recipe, *, replace: bool = False, timeout: float | None = None, progress=None,
       clock: Clock | None = None) -> Deployment:
    return bring_up(_up, plan, recipe, replace=replace, timeout=timeout, progress=progress, clock=clock)


def _up(plan, recipe, *, replace: bool, timeout: float | None, rep: Reporter, clock: Clock) -> Deployment:
    from launcher import http
    from launcher.capacity_read import capacity_from_ollama_ps
    from launcher.laptop_mem import free_bytes

    timeout = float(timeout or plan.startup_timeout)
    o = recipe.ollama
    url, origin = _server_url(plan, recipe)
    where = plan.recipe_path
    if replace:
        for h in server_handles(plan):  # only what launcher started; an outside server is left alone
            local_runtime().stop(h)
    version = _version(url)
    attached = version is not None
    if not attached:
        version, url = _start(plan, url, origin, timeout, clock, rep)
    rep.step("start", f"Ollama {version} at {url}")
    parallel, kv_type = _server_settings(o, attached, plan, rep, url)

    with http.client(base_url=url, retries=2, read=max(60.0, timeout)) as c:
        base = recipe.model
        _, tags = get_json(c, "/api/tags")
        if eng.tags_entry(tags or {}, base) is None:
            rep.step("pull", f"pulling {base}")
            _pull(c, base, rep, clock, url, where)
            _, tags = get_json(c, "/api/tags")
        show = _show(c, base, url)
        caps = eng.capabilities(show)
        if caps is None:
            rep.warn(f"Ollama {version} does not report model capabilities: cannot check that {base} calls tools")
        elif "tools" not in caps:
            raise InputError(f"model '{base}' cannot call tools (Ollama lists its capabilities as "
                             f"{', '.join(caps) or 'none'}); coding agents need tool calls",
                             where=f"{where}: model", fix="pick a model whose `ollama show` lists "
                             "'tools', e.g. qwen3-coder:30b, qwen3:8b, gpt-oss:20b, devstral")
        row = eng.tags_entry(tags or {}, base) or {}
        weights = float(row.get("size") or 0)
        free, free_how = free_bytes()
        if free_how != "LAUNCHER_FREE_MEMORY":  # a measured reading: models Ollama holds now are evictable
            _, ps = get_json(c, "/api/ps")
            held = sum(float(m.get("size") or 0) for m in (ps or {}).get("models") or [])
            if held:
                free += held
                free_how += f" + {held / 1024 ** 3:.1f} GiB of models Ollama can unload"
        choice = ollama_context.choose(o.context, show=show, weights=weights,
                                       free=free, free_how=free_how, parallel=parallel, kv_type=kv_type,
                                       where=f"{where}: ollama.context")
        for w in choice.warnings or []:
            rep.warn(w)
        name = (recipe.served_name if recipe.served_name and recipe.served_name != base
                else eng.derived_name(base, choice.num_ctx))
        rep.step("create", f"creating {name} (num_ctx {choice.num_ctx}: {choice.reason})")
        _create(c, name, base, choice.num_ctx, url)
        rep.step("load", f"loading {name}")
        _load(c, name, o.keep_alive, url, timeout)
        rep.step("measure", "reading /api/ps")
        _, ps = get_json(c, "/api/ps")
    cap = capacity_from_ollama_ps(ps, name, parallel=parallel)
    if cap.max_model_len is None:
        rep.warn(f"Ollama {version} does not report the loaded context (/api/ps context_length needs "
                f"0.9.7+): assuming the requested {choice.num_ctx}")
        cap = Capacity(kv_tokens=choice.num_ctx * parallel, max_concurrency=float(parallel),
                       max_model_len=choice.num_ctx, slots=parallel,
                       source=f"requested num_ctx (Ollama {version} reports no context_length)")
    elif cap.max_model_len < choice.num_ctx:
        rep.warn(f"Ollama loaded {name} with a {cap.max_model_len}-token context, not the {choice.num_ctx} "
                f"asked for (it steps down when memory is short); using {cap.max_model_len}")
    low = eng.low_context_warning(cap.max_model_len)
    if low:
        rep.warn(low)
    rep.step("ready", f"{name}: context {cap.max_model_len}")
    return Deployment(recipe=plan.recipe, engine="ollama", base_url=url + "/v1", model=name,
                      plan_hash=plan.hash, attached=attached, capacity=cap, version=version,
                      reasoning=None if caps is None else "thinking" in caps)


# ---------------------------------------------------------------- read-only: what already runs

def _is_derived(name: str, base: str) -> bool:
    """A name derived_name() makes from base: qwen3-coder:30b-64k, llama3:32k, …-ctx50000."""
    import re

    last = base.rsplit("/", 1)[-1]
    full = base if ":" in last else base + ":"
    sep = "-" if ":" in last else ""
    prefix = full + sep if sep else full
    return name.startswith(prefix) and re.fullmatch(r"[0-9]+k|ctx[0-9]+", name[len(prefix):]) is not None


def planned_model(recipe) -> str:
    """The model name `launch up` will serve: served_name, else the derived model for a numeric context,
    else (auto: the context depends on free memory then) the base model."""
    o = recipe.ollama
    if recipe.served_name and recipe.served_name != recipe.model:
        return recipe.served_name
    if o is not None and isinstance(o.context, int):
        return eng.derived_name(recipe.model, int(o.context))
    return recipe.model


def read_running(plan, recipe, environ=None) -> tuple[Deployment | None, str, str]:
    """Read only (nothing pulled, created, loaded or started): the model an Ollama already serves for
    this recipe — the derived model loaded now (/api/ps context_length), else one created before (its
    num_ctx parameter). Returns (deployment or None, what was found or why not, the server URL)."""
    from launcher import http
    from launcher.bringup.laptop_common import recipe_spec
    from launcher.capacity_read import capacity_from_ollama_ps

    recipe = recipe_spec(plan, recipe)
    url, origin = _server_url(plan, recipe, environ)
    version = _version(url)
    if version is None:
        return None, f"no Ollama server answers at {url} ({origin})", url
    base = recipe.model
    wanted = planned_model(recipe)
    started = bool(server_handles(plan))
    parallel = int(plan.head().env.get("OLLAMA_NUM_PARALLEL") or 1) if started and plan.head() else ATTACHED_PARALLEL

    def ours(n: str) -> bool:
        if wanted != base:  # a name fixed in advance (served_name or a numeric context)
            return eng.same_model(n, wanted)
        return _is_derived(n, base)

    with http.client(base_url=url, retries=0, connect=2.0, read=15.0) as c:
        _, ps = get_json(c, "/api/ps")
        loaded = [r.get("name") or r.get("model") or "" for r in (ps or {}).get("models") or []]
        names = [n for n in loaded if ours(n)]
        cap = capacity_from_ollama_ps(ps, names[0], parallel=parallel) if names else Capacity()
        if not names:
            _, tags = get_json(c, "/api/tags")
            rows = sorted(((r.get("modified_at") or "", r.get("name") or "") for r in (tags or {}).get("models") or []
                           if ours(r.get("name") or "")), reverse=True)
            names = [n for _, n in rows]
        if not names:
            how = (f"'{wanted}'" if wanted != base
                   else f"model derived from '{base}' (e.g. {eng.derived_name(base, 65536)})")
            return None, f"the Ollama {version} at {url} has no {how} loaded or created", url
        name = names[0]
        resp = c.post("/api/show", json={"model": name})
        show = resp.json() if resp.status_code == 200 else {}
    caps = eng.capabilities(show)
    if cap.max_model_len is None:
        num_ctx = eng.parse_parameters(show.get("parameters")).get("num_ctx")
        if not num_ctx:
            return None, f"the Ollama at {url} has '{name}' but it fixes no num_ctx", url
        ctx = int(num_ctx[0])
        cap = Capacity(kv_tokens=ctx * parallel, max_concurrency=float(parallel), max_model_len=ctx, slots=parallel,
                       source="num_ctx of the derived model (not loaded now: Ollama may step it down on load)")
        found = f"'{name}' (created, not loaded: num_ctx {ctx})"
    else:
        found = f"'{name}' loaded with context {cap.max_model_len} (/api/ps)"
    dep = Deployment(recipe=plan.recipe, engine="ollama", base_url=url + "/v1", model=name, plan_hash=plan.hash,
                     attached=not started, capacity=cap, version=version,
                     reasoning=None if caps is None else "thinking" in caps)
    return dep, f"the Ollama {version} at {url} serves {found}", url
