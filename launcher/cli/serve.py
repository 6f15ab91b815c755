"""launch up | status | logs | down | demo (thin: parse, call, render)."""
from __future__ import annotations

from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("up", help="Start RECIPE's server (or attach to it), wait until ready, measure it. No agent.")(up)
    app.command("status", help="Probe every deployment launch started (and INVENTORY's hosts).")(status)
    app.command("logs", help="Print a deployment's server log (-f follows it).")(logs)
    app.command("down", help="Stop what launch started for RECIPE (never an attached server).")(down)
    app.command("demo", help="The whole nemotron flow against simulated hosts on 127.0.0.1 (no GPU needed).")(demo)


def up(recipe: str = typer.Argument(..., help="Recipe name or path."),
       as_json: bool = typer.Option(False, "--json", help="Print the deployment as JSON."),
       replace: bool = typer.Option(False, "--replace", help="Stop a different deployment of this recipe first."),
       timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds to wait (default: recipe, 1800)."),
       port: Optional[int] = typer.Option(None, "--port", min=1, max=65535, help="Serve on this port instead of the recipe's.")):
    from launcher import deploy, ui
    from launcher.plan import build_for

    recipe_l, plan = build_for(recipe, port=port)
    d = deploy.up(plan, recipe_l, replace=replace, timeout=timeout)
    from launcher.errors import LauncherError
    from launcher.pipeline import derive_limits

    try:
        derive_limits(recipe_l, d)  # DESIGN: `launch up --json` carries limits {context, output}
    except LauncherError as exc:  # the server is up; only the agent's limits cannot be promised
        ui.warn(f"no agent limits: {exc.what} ({exc.fix})" if exc.fix else f"no agent limits: {exc.what}")
    if as_json:
        ui.print_json(d.to_json())
        return
    print_deployment(d, key_source=plan.api_key)


ENGINE_LABELS = {"vllm": "vLLM", "ollama": "Ollama", "lmstudio": "LM Studio", "llamacpp": "llama.cpp",
                 "openai": "server"}


def engine_label(engine: str | None) -> str:
    return ENGINE_LABELS.get(engine or "", engine or "server")


def print_deployment(d, key_source=None) -> None:
    """key_source: the recipe's api_key (a KeySource), named in the output (never its value)."""
    from launcher import ui

    cap = d.capacity
    version = f", {engine_label(d.engine)} {d.version}" if d.version else ""
    ui.out(f"{'attached to' if d.attached else 'started'} {d.recipe}: {d.model} at {d.base_url} "
           f"(plan {d.plan_hash}{version})")
    if cap.kv_tokens or cap.max_model_len:
        conc = f", max concurrency {cap.max_concurrency:g}x" if cap.max_concurrency else ""
        ui.out(f"  capacity: {cap.kv_tokens or '?'} KV tokens, max_model_len {cap.max_model_len or '?'}{conc}"
               f" ({cap.source})")
    if key_source is not None:
        src = key_source.describe() if hasattr(key_source, "describe") else str(key_source)
        given = f" (given to the server as ${d.api_key_env})" if d.api_key_env and d.engine != "openai" else ""
        ui.out(f"  API key: from {src}{given}")
    elif d.api_key_env:
        ui.out(f"  API key: the server reads ${d.api_key_env}")


def status(inventory: Optional[str] = typer.Argument(None, help="Also probe this inventory's hosts' watch URLs."),
           as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    from launcher import ui
    from launcher.status import collect

    rows = collect(inventory)
    if as_json:
        ui.print_json([r.to_json() for r in rows])
        return
    if not rows:
        ui.out("no deployments started by launch" + (f" and no watch URLs in {inventory}" if inventory else ""))
        return

    def f(v, fmt="{}"):
        return "-" if v is None else fmt.format(v)

    table_rows = []
    for r in rows:
        gpu = ", ".join(_gpu_text(g) for g in r.gpus) or "-"
        table_rows.append([r.name, r.endpoint or "-", r.health, ", ".join(r.models) or (r.served or "-"),
                           f(r.kv_usage_pct, "{:.1f}%"), f(r.running), f(r.waiting), f(r.tokens_per_s, "{:.1f}"),
                           gpu, r.note])
    ui.table(None, ["deployment", "endpoint", "health", "model", "KV", "running", "waiting", "tok/s", "GPU memory",
                    "note"], table_rows)


def _gpu_text(g: dict) -> str:
    used, total = g.get("memory_used_mib"), g.get("memory_total_mib")
    if used is not None and total:
        return f"{g.get('host', '')}: {used / 1024:.1f}/{total / 1024:.1f} GiB"
    return f"{g.get('host', '')}: {g.get('name') or 'GPU'}"


def logs(recipe: str = typer.Argument(..., help="Recipe name."),
         follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
         process: Optional[str] = typer.Option(None, "--process", help="server (default), ray-head, worker-1 …"),
         tail: int = typer.Option(200, "--tail", help="Lines to print first.")):
    import sys

    from launcher.auth import redact
    from launcher.deploy import find_deployments
    from launcher.errors import InputError
    from launcher import runtimes

    found = find_deployments(_recipe_name(recipe))
    handles = [(f.runtime, h) for f in found for h in f.handles]
    want = process or "server"
    pick = [(rt, h) for rt, h in handles if h.process == want] or \
           ([(rt, h) for rt, h in handles if h.role == "ray-head"] if process is None else [])
    if not pick:
        names = sorted({h.process for _, h in handles})
        raise InputError(f"no process {want!r} of {recipe} was started by launch",
                         fix=(f"pick one with --process: {', '.join(names)}" if names else
                              f"start it with `launch up {recipe}`"))
    rt_name, h = pick[0]
    try:
        for line in runtimes.get(rt_name).logs(h, follow=follow, tail=tail):
            sys.stdout.write(redact(line) + "\n")
            if follow:
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass


def _recipe_name(ref: str) -> str:
    """A recipe name as deployments record it: the name inside a recipe file, or the name given."""
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        from launcher.spec.load import load_recipe

        return load_recipe(ref).spec.name
    return ref


def _plan_places(ref: str) -> tuple[list[str], dict[str, dict]]:
    """The Docker daemons the recipe's plan uses and the hosts it reaches over ssh, so `down` finds its
    labelled containers and ssh processes even without this machine's notes; nothing when the recipe
    does not load here (the notes still count)."""
    from launcher.errors import LauncherError

    try:
        from launcher.plan import build_for

        _, plan = build_for(ref)
    except LauncherError:
        return [], {}
    from launcher.deploy import places

    return places(plan)


def down(recipe: str = typer.Argument(..., help="Recipe name or path.")):
    from launcher import ui
    from launcher.deploy import down as do_down

    docker_urls, ssh_hosts = _plan_places(recipe)
    stopped = do_down(_recipe_name(recipe), docker_urls=docker_urls, ssh_hosts=ssh_hosts)
    if stopped:
        ui.out(f"stopped {', '.join(stopped)}")
    else:
        ui.out(f"nothing launch started for {recipe} is running")


def demo(keep: bool = typer.Option(False, "--keep", help="Leave the simulated deployment running at the end.")):
    from launcher.demo import run_demo

    run_demo(keep=keep)
