"""`launch`: the entry point. `launch RECIPE …` is `launch run RECIPE …`."""
from __future__ import annotations

import importlib
import os
import sys

import typer
from typer.core import TyperGroup

# Each module registers its commands; each owns one part of the surface.
COMMAND_MODULES = (
    "launcher.cli.recipes",   # recipes, show, plan
    "launcher.cli.run",       # run (the default: launch RECIPE)
    "launcher.cli.serve",     # up, status, logs, down, demo
    "launcher.cli.fit",       # fit
    "launcher.cli.validate",  # validate
    "launcher.cli.config",    # config
    "launcher.cli.watchdog",  # watchdog, harden
    "launcher.cli.sim",       # sim vllm|ollama|lmstudio|plug
)


class DefaultGroup(TyperGroup):
    """A group whose unknown first word is a recipe: `launch nemotron` runs `launch run nemotron`."""

    default_command = "run"

    def parse_args(self, ctx, args):
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx):  # keep registration order in --help
        return list(self.commands)


app = typer.Typer(
    cls=DefaultGroup,
    name="launch",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Serve your own model (vLLM, Ollama, LM Studio, llama.cpp) and run a coding agent on it.\n\n"
         "launch RECIPE [--agent opencode|codex|claude|none] [--dry-run] [-- AGENT ARGS]",
)

STATE = {"debug": False, "verbose": 0}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More output (-v shows HTTP retries)."),
):
    STATE["debug"] = debug
    STATE["verbose"] = verbose
    from launcher.logredact import setup_logging

    # Every log line (httpx's "HTTP Request: GET URL" included) passes the secret filter.
    setup_logging(verbose, stream=sys.stderr)


for _mod in COMMAND_MODULES:
    importlib.import_module(_mod).register(app)


def _click():
    """The click typer runs on: vendored as typer._click since typer 0.29, the click package before."""
    try:
        from typer import _click as click  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - older typer
        import click
    return click


def main(argv: list[str] | None = None) -> None:
    click = _click()

    from launcher.errors import EXIT_INPUT, LauncherError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("LAUNCHER_DEBUG") == "1"
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=args, prog_name="launch", standalone_mode=False)
    except LauncherError as exc:
        if debug:
            raise
        from launcher.ui import error

        error(exc.render())
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(EXIT_INPUT)
    except BrokenPipeError:
        sys.exit(0)
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
