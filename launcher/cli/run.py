"""launch RECIPE: up (start or attach) -> capacity -> validate -> agent config -> agent."""
from __future__ import annotations

from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("run", hidden=True, help="Serve RECIPE and run the coding agent on it (same as `launch RECIPE`).")(run)


def run(recipe: str = typer.Argument(..., help="Recipe name or path."),
        agent_args: Optional[list[str]] = typer.Argument(None, help="Arguments after -- go to the agent."),
        agent: Optional[str] = typer.Option(None, "--agent", help="opencode | codex | claude | none"),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and stop."),
        no_validate: bool = typer.Option(False, "--no-validate", help="Skip the endpoint checks (not advised)."),
        replace: bool = typer.Option(False, "--replace", help="Stop a different deployment holding the port."),
        write: str = typer.Option("default", "--write", help="Where the agent config goes: default | global | project"),
        watch: bool = typer.Option(False, "--watch", help="Keep a supervisor; report a server failure when the agent exits."),
        timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds to wait for the server (default: recipe, 1800)."),
        context_check: Optional[str] = typer.Option(
            None, "--context-check", metavar="full|length|off",
            help="How the gate proves limit.context: a full-length prompt, only the server's length check "
                 "(default on unified-memory hosts such as GB10, where very long prefills have reset hosts), or off.")):
    from launcher.plan import build_for

    recipe_l, plan = build_for(recipe)
    if dry_run:
        from launcher.cli.recipes import print_plan

        print_plan(plan)
        return
    from launcher.pipeline import run_pipeline

    return run_pipeline(recipe_l, plan, agent=agent, agent_args=list(agent_args or []), validate=not no_validate,
                        replace=replace, write=write, watch=watch, timeout=timeout,
                        context_check=context_check)
