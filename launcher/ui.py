"""Console output: rich for people, --json for scripts. Everything printed passes through redaction."""
from __future__ import annotations

import json
import sys

_console = None
_err_console = None


def console():
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(highlight=False, soft_wrap=True)
    return _console


def err_console():
    global _err_console
    if _err_console is None:
        from rich.console import Console

        _err_console = Console(stderr=True, highlight=False, soft_wrap=True)
    return _err_console


def out(text: str = "", **kw) -> None:
    """Plain text to stdout (redacted). Rich is only imported when styling is asked for, which keeps
    `launch plan` and friends fast."""
    from launcher.auth import redact

    if kw:
        console().print(redact(text), markup=kw.pop("markup", False), **kw)
        return
    sys.stdout.write(redact(text) + "\n")
    sys.stdout.flush()


def info(text: str) -> None:
    from launcher.auth import redact

    err_console().print(redact(text), markup=False)


def warn(text: str) -> None:
    from launcher.auth import redact

    err_console().print("warning: " + redact(text), style="yellow", markup=False)


def print_json(data) -> None:
    from launcher.auth import redact

    sys.stdout.write(redact(json.dumps(data, indent=2, sort_keys=False, default=str)) + "\n")
    sys.stdout.flush()


def table(title: str | None, columns: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    from launcher.auth import redact

    t = Table(title=title, show_lines=False, header_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*[redact(str(x)) for x in r])
    console().print(t)


def error(text: str) -> None:
    from launcher.auth import redact

    sys.stderr.write("error: " + redact(text) + "\n")
    sys.stderr.flush()
