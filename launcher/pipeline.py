"""The whole flow behind `launch RECIPE`: up -> capacity -> validate -> agent.

Data flows one way; each stage takes the previous stage's output. Only the CLI maps errors to exit codes.
"""
from __future__ import annotations

from launcher import ui


def resolve_key(recipe_l, plan) -> str | None:
    """The key first: a broken key source stops the launch before anything starts."""
    from launcher import auth

    if plan.api_key is None:
        return None
    return auth.resolve(plan.api_key, where=recipe_l.where("api_key"))


def running_deployment(recipe_l, plan):
    """The recipe's server if launch started it and it runs this very plan: attached (never started)
    and measured, with limits derived. None otherwise."""
    from launcher import deploy

    if plan.attach_only:
        return None
    found = [f for f in deploy.find_deployments(plan.recipe) if f.running and plan.hash in f.plan_hashes]
    if not found:
        return None
    deployment = deploy.up(plan, recipe_l)
    derive_limits(recipe_l, deployment)
    return deployment


def derive_limits(recipe_l, deployment):
    """Measured capacity -> the agent's limit.context / limit.output (printed with its reasoning)."""
    from launcher.capacity import derive_limits as derive

    from launcher.agents.base import is_reasoning

    r = recipe_l.spec
    trained = r.shape.trained_context if r.shape else None
    limits = derive(deployment.capacity, sessions=r.agent.sessions, output_budget=r.agent.output,
                    reasoning=is_reasoning(r, deployment), trained_context=trained, requested=r.agent.context,
                    where=recipe_l.where("agent", "context"))
    deployment.limits = limits
    ui.info(f"limits: {limits.reasoning}")
    return limits


def context_check_for(plan, chosen: str | None) -> tuple[str, str | None]:
    """How the gate proves limit.context, and why when it is not the full-length prompt. On unified-memory
    hosts (DGX Spark / GB10) a very long prefill has hard-reset hosts (reference/vllm.md), so the gate
    asks only the server's length check there unless told otherwise."""
    from launcher.validate import check_context_form

    if chosen is not None:
        return check_context_form(chosen), None
    if getattr(plan, "engine", "vllm") != "vllm":
        # Ollama and llama-server do not refuse an over-long request up front (Ollama truncates the prompt):
        # only the full prompt shows whether the context holds
        return "full", None
    unified = [n for n, h in (getattr(plan, "hosts", None) or {}).items()
               if ((h or {}).get("gpus") or {}).get("unified_memory")]
    if unified:
        return "length", (f"unified-memory host {', '.join(unified)}: the context check asks the server's "
                          "length check only, without a full-length prefill (very long prefills have reset "
                          "GB10 hosts); `--context-check full` sends the whole prompt")
    return "full", None


def validate_gate(recipe_l, deployment, key: str | None, *, plan=None, context_check: str | None = None) -> None:
    """The gate before any agent config is written. The deployment's model is what clients must use
    (for Ollama a derived model with the context fixed, not the recipe's model name)."""
    from launcher.errors import ValidationFailed
    from launcher.validate import DEFAULT_MAX_TOKENS, render_report, validate_endpoint
    from launcher.validate_target import recipe_options

    opts = recipe_options(recipe_l.spec)
    if deployment.limits:
        # check with the budget the agent will have (reasoning models keep >= 4096 in derive_limits)
        opts["context_limit"] = deployment.limits.context
        opts["max_tokens"] = min(DEFAULT_MAX_TOKENS, deployment.limits.output)
        form, why = context_check_for(plan, context_check)
        opts["context_check"] = form
        if why:
            ui.info(why)
    report = validate_endpoint(deployment.base_url, deployment.model, api_key=key, **opts)
    render_report(report)
    if not report.ok:
        failed = [c.name for c in report.checks if not c.ok]
        raise ValidationFailed(f"the endpoint is not ready for an agent: {', '.join(failed)} failed",
                               where=deployment.base_url,
                               fix="see the diagnosis above; nothing was written for the agent "
                                   "(`--no-validate` skips this gate at your own risk)")


# the API each agent speaks besides what the gate checks (OpenAI chat completions)
AGENT_APIS = {"claude": ("/v1/messages", "Anthropic Messages"), "codex": ("/v1/responses", "OpenAI Responses")}
ENGINE_NAMES = {"ollama": "Ollama", "lmstudio": "LM Studio", "llamacpp": "llama-server", "vllm": "vLLM"}


def check_agent_api(deployment, agent: str, key: str | None, *, timeout: float = 120.0) -> None:
    """Claude Code speaks /v1/messages and Codex /v1/responses, not the chat completions the gate checked:
    one tiny request there. A server without that route (404/405/501) fails the launch (exit 3) before
    the agent starts; other answers are the agent's own business (the gate already judged the model)."""
    if agent not in AGENT_APIS:
        return
    import httpx

    from launcher import http
    from launcher.errors import ValidationFailed

    path, api = AGENT_APIS[agent]
    url = deployment.root_url + path
    prompt = "Reply with the single word OK."
    if agent == "claude":
        body = {"model": deployment.model, "max_tokens": 16, "messages": [{"role": "user", "content": prompt}]}
        headers = {"anthropic-version": "2023-06-01", **({"x-api-key": key} if key else {}), **http.bearer(key)}
    else:
        body = {"model": deployment.model, "input": prompt, "max_output_tokens": 16}
        headers = http.bearer(key)
    try:
        with http.client(retries=1, connect=10.0, read=timeout) as c:
            resp = c.post(url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise ValidationFailed(f"the {api} API did not answer ({type(exc).__name__})", where=url,
                               fix=f"{agent} needs {path}; use --agent opencode, or check the server") from None
    server = ENGINE_NAMES.get(deployment.engine, "this server")
    if resp.status_code in (404, 405, 501):
        answer = " ".join(resp.text.split())[:160]
        raise ValidationFailed(
            f"{server} at {deployment.root_url} does not serve the {api} API that {agent} speaks "
            f"(POST {path} answered HTTP {resp.status_code}: {answer or 'no body'})", where=url,
            fix=f"this server does not serve the {api} API; use --agent opencode (it speaks the chat "
                f"completions API the gate checked)")
    if resp.status_code in (401, 403):
        raise ValidationFailed(f"the {api} API refuses the key (HTTP {resp.status_code})", where=url,
                               fix="the key the agent sends must be the one the server was started with")
    if resp.status_code >= 400:
        ui.warn(f"{path} answered HTTP {resp.status_code} to a one-line request: {agent} may fail "
                f"({' '.join(resp.text.split())[:160]})")
        return
    ui.info(f"{agent}: {path} answers ({api} API)")


def server_problem(deployment) -> str | None:
    """For --watch: None while the server answers /health, else what is wrong."""
    import httpx

    from launcher import http

    url = deployment.root_url + "/health"
    try:
        with http.client(retries=1, connect=3, read=10) as c:
            r = c.get(url)
    except httpx.HTTPError as exc:
        return f"the model server stopped answering ({type(exc).__name__} on {url})"
    if r.status_code >= 500:
        return f"the model server is unhealthy (HTTP {r.status_code} on {url})"
    return None


def run_pipeline(recipe_l, plan, *, agent, agent_args, validate, replace, write, watch, timeout,
                 context_check: str | None = None):
    from launcher import deploy

    r = recipe_l.spec
    # vLLM's bring-up checks the key with its preflight (all problems in one list); others: key first
    key = resolve_key(recipe_l, plan) if plan.engine != "vllm" else None
    deployment = deploy.up(plan, r, replace=replace, timeout=timeout)
    if plan.engine == "vllm":
        key = resolve_key(recipe_l, plan)
    derive_limits(recipe_l, deployment)
    name = agent or r.agent.name
    if validate:
        validate_gate(recipe_l, deployment, key, plan=plan, context_check=context_check)
        check_agent_api(deployment, name, key)
    else:
        ui.warn("--no-validate: the endpoint was not checked; an agent on a broken endpoint loops or "
                "fails silently (tool calls in prose, reasoning inside arguments)")
    if name == "none":
        ui.out(f"ready: {deployment.model} at {deployment.base_url} "
               f"(context {deployment.limits.context:,}, output {deployment.limits.output:,})")
        return deployment
    return start_agent(name, recipe_l, plan, deployment, agent_args=agent_args, write=write, watch=watch)


def start_agent(name, recipe_l, plan, deployment, *, agent_args, write, watch):
    from pathlib import Path

    from launcher import agents

    r = recipe_l.spec
    impl = agents.get(name)
    result = impl.configure(deployment, recipe=r, key_source=plan.api_key, write=write, cwd=Path.cwd())
    ui.info(f"{name}: {result.summary()}")
    argv, env = impl.prepare(deployment, recipe=r, key_source=plan.api_key, args=agent_args, cwd=Path.cwd(),
                             config=result)
    if not watch:
        agents.exec_agent(argv, env)  # replaces this process
        return None

    return agents.run_supervised(argv, env, lambda: server_problem(deployment))
