"""launch config RECIPE [--agent A] [--write default|global|project] [--print]: write (or print) the
coding agent's config for a recipe without starting anything."""
from __future__ import annotations

from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("config", help="Write (or print) the coding agent's config for RECIPE; starts nothing.")(config)


def deployment_from_plan(plan):
    """The Deployment a plan describes, before anything runs: limits unknown (the agents fall back
    to safe figures and say so)."""
    from launcher.deployment import Deployment

    return Deployment(recipe=plan.recipe, engine=plan.engine, base_url=plan.base_url, model=plan.served_name,
                      plan_hash=plan.hash, attached=plan.attach_only, api_key_env=plan.api_key_env)


ATTACH_STYLE = ("ollama", "lmstudio")  # servers launch attaches to (started by the user or the app)


def attached_deployment(ref: str, recipe_l, plan):
    """Ollama / LM Studio: read what the server really serves for the recipe (the derived model and its
    /api/ps context; LM Studio's loaded context), read-only; when nothing matches, the recipe's guess
    with a warning that the written config may not match a server."""
    import importlib

    from launcher import ui
    from launcher.pipeline import derive_limits

    mod = importlib.import_module(f"launcher.bringup.{plan.engine}")
    dep, found, url = mod.read_running(plan, recipe_l.spec)
    if dep is not None:
        ui.info(found)
        derive_limits(recipe_l, dep)
        return dep
    dep = deployment_from_plan(plan)
    dep.base_url = url + "/v1"
    if plan.engine == "ollama":
        dep.model = mod.planned_model(recipe_l.spec)
    ui.warn(f"{found}: the config written below is the recipe's guess (model '{dep.model}' at {dep.base_url}, "
            f"limits not measured) and may not match a server; run `launch up {ref}` (or `launch {ref}`, which "
            f"also starts the agent) to prepare the model and measure its context, then `launch config {ref}` again")
    return dep


def config(recipe: str = typer.Argument(..., help="Recipe name or path."),
           agent: Optional[str] = typer.Option(None, "--agent", help="opencode | codex | claude (default: the recipe's)"),
           write: str = typer.Option("default", "--write",
                                     help="default (launch's own file) | global (the user's config) | project (./)"),
           print_only: bool = typer.Option(False, "--print", help="Print the block instead of writing it.")):
    from pathlib import Path

    from launcher import agents, ui
    from launcher.errors import InputError
    from launcher.plan import build_for

    recipe_l, plan = build_for(recipe)
    r = recipe_l.spec
    name = agent or r.agent.name
    if name == "none":
        raise InputError("the recipe names no agent (agent.name: none)", where=recipe_l.where("agent", "name"),
                         fix=f"pass --agent {' | '.join(agents.names())}")
    ag = agents.get(name)
    if plan.engine in ATTACH_STYLE:
        dep = attached_deployment(recipe, recipe_l, plan)
    else:
        from launcher.pipeline import running_deployment

        dep = running_deployment(recipe_l, plan)  # measured limits when the server is up
        if dep is None:  # not running: the agent notes say the limits were not measured
            dep = deployment_from_plan(plan)
    result = ag.configure(dep, recipe=r, key_source=r.api_key, write=write, cwd=Path.cwd(), dry_run=print_only)
    if print_only:
        ui.out(result.text.rstrip("\n"))
        for note in result.notes:
            ui.info(f"note: {note}")
        return
    ui.out(result.summary())
    for k, v in result.env.items():
        if k == "OPENCODE_CONFIG":
            ui.out(f"  start it with: OPENCODE_CONFIG={v} opencode   (launch {r.name} does this for you)")
    for note in result.notes:
        ui.info(f"note: {note}")
