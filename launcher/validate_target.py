"""What `launch validate RECIPE|BASE_URL` and the `launch RECIPE` gate validate: a recipe's endpoint
(its plan's base_url and served name, its key source, sampling and API style) or any URL."""
from __future__ import annotations

from launcher.errors import InputError
from launcher.validate import DEFAULT_MAX_TOKENS, Report, list_models, validate_endpoint


def is_url(target: str) -> bool:
    return target.startswith(("http://", "https://"))


def recipe_options(recipe) -> dict:
    """validate_endpoint keywords a recipe decides: sampling, API style, Azure path, context limit."""
    r = getattr(recipe, "spec", recipe)
    opts: dict = {"sampling": r.sampling.model_dump(exclude_none=True) if r.sampling else {}}
    if r.openai is not None:
        opts.update(api_style=r.openai.api_style, azure_deployment=r.openai.deployment,
                    azure_api_version=r.openai.api_version)
    if isinstance(r.agent.context, int):
        opts["context_limit"] = r.agent.context
    return opts


def measured_context(recipe_l, plan) -> int | None:
    """limit.context of a recipe with ``context: auto``, measured the way `launch RECIPE` does: the
    recipe's running deployment (attach only, nothing started) -> capacity -> derived limits. None
    when nothing of this recipe runs or the measurement fails (warned: the context check is skipped)."""
    from launcher import pipeline, ui
    from launcher.errors import LauncherError

    try:
        if plan.attach_only:
            from launcher import deploy

            dep = deploy.up(plan, recipe_l.spec)
            pipeline.derive_limits(recipe_l, dep)
        else:
            dep = pipeline.running_deployment(recipe_l, plan)
    except LauncherError as exc:
        where = f" at {exc.where}" if exc.where else ""
        ui.warn(f"context: auto was not measured ({exc.what}{where}); the context check is skipped")
        return None
    if dep is None or dep.limits is None:
        ui.warn(f"context: auto and no running deployment of {plan.recipe} to measure: the context check is "
                f"skipped (`launch up {plan.recipe}` first, or pass --context N)")
        return None
    return dep.limits.context


def validate_plan(plan, recipe, *, api_key: str | None, context_limit: int | None = None,
                  max_tokens: int = DEFAULT_MAX_TOKENS, timeout: float = 120,
                  context_check: str = "full") -> Report:
    """The gate inside `launch RECIPE`: the plan's endpoint with the recipe's sampling and style.
    context_limit (the derived limit.context, when measured) wins over the recipe's agent.context;
    context_check "length" avoids the full-length prefill (unified-memory hosts)."""
    opts = recipe_options(recipe)
    if context_limit:
        opts["context_limit"] = context_limit
    return validate_endpoint(plan.base_url, plan.served_name, api_key=api_key, max_tokens=max_tokens,
                             timeout=timeout, context_check=context_check, **opts)


def key_from_env(var: str) -> str:
    from launcher.auth import resolve
    from launcher.spec.keysource import KeySource

    return resolve(KeySource(env=var), where="--key-env")


def validate_target(target: str, *, model: str | None = None, key_env: str | None = None,
                    api_style: str | None = None, deployment: str | None = None, api_version: str | None = None,
                    context_limit: int | None = None, max_tokens: int = DEFAULT_MAX_TOKENS,
                    timeout: float = 120, check_auth: bool = True, context_check: str | None = None) -> Report:
    """Validate a recipe (by name or path) or a base URL. Bad input raises InputError/SecretError.
    context_check None: "full", except a vLLM recipe on unified-memory hosts ("length", as `launch RECIPE`)."""
    from launcher.validate import check_context_form

    if context_check is not None:
        check_context_form(context_check)
    kw = dict(max_tokens=max_tokens, timeout=timeout, check_auth=check_auth, context_check=context_check or "full")
    if is_url(target):
        base_url = target.rstrip("/")
        api_key = key_from_env(key_env) if key_env else None
        style = api_style or "openai"
        if not model:
            ids = list_models(base_url, api_key=api_key, api_style=style, azure_deployment=deployment,
                              azure_api_version=api_version)
            if len(ids) != 1:
                raise InputError(f"{base_url} serves {len(ids)} models; say which one to check",
                                 where="--model", fix="add --model ID, one of: " + (", ".join(ids) or "(none)"))
            model = ids[0]
        return validate_endpoint(base_url, model, api_key=api_key, api_style=style, context_limit=context_limit,
                                 azure_deployment=deployment, azure_api_version=api_version, **kw)
    from launcher.auth import resolve
    from launcher.plan import build_for

    recipe_l, plan = build_for(target)
    if context_check is None:
        from launcher import ui
        from launcher.pipeline import context_check_for

        kw["context_check"], why = context_check_for(plan, None)
        if why:
            ui.info(why)
    if key_env:
        api_key = key_from_env(key_env)
    elif plan.api_key:
        api_key = resolve(plan.api_key, where=plan.api_key_where or f"{plan.recipe_path}: api_key")
    else:
        api_key = None
    opts = recipe_options(recipe_l)
    if not context_limit and "context_limit" not in opts and kw["context_check"] != "off":
        measured = measured_context(recipe_l, plan)
        if measured:
            opts["context_limit"] = measured
    for name, value in (("api_style", api_style), ("azure_deployment", deployment),
                        ("azure_api_version", api_version), ("context_limit", context_limit)):
        if value:
            opts[name] = value
    return validate_endpoint(plan.base_url, model or plan.served_name, api_key=api_key, **opts, **kw)
