"""Errors a user can cause. Only the CLI maps them to exit codes and prints them.

Every error says what went wrong, where (file:line, host, URL) and what to do.
"""
from __future__ import annotations

# Exit codes (DESIGN.md): 0 ok, 1 runtime failure, 2 bad input or usage,
# 3 validation failed, 4 server failed to start.
EXIT_RUNTIME = 1
EXIT_INPUT = 2
EXIT_VALIDATION = 3
EXIT_SERVER = 4


class LauncherError(Exception):
    """A failure the user can act on."""

    exit_code = EXIT_RUNTIME

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None,
                 details: list[str] | None = None):
        super().__init__(what)
        self.what = what
        self.where = where
        self.fix = fix
        self.details = list(details or [])

    def render(self) -> str:
        head = f"{self.where}: {self.what}" if self.where else self.what
        lines = [head]
        lines += [f"  {d}" for d in self.details]
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.render()


class InputError(LauncherError):
    """Bad recipe, inventory, flag or argument (exit 2)."""

    exit_code = EXIT_INPUT


class SpecError(InputError):
    """One or more problems in a recipe or inventory file; all are listed at once."""

    def __init__(self, problems: list["LauncherError"]):
        self.problems = problems
        first = problems[0]
        super().__init__(first.what, where=first.where, fix=first.fix)

    def render(self) -> str:
        return "\n".join(p.render() for p in self.problems)


class RuntimeFailure(LauncherError):
    """Something outside our control failed at run time (exit 1)."""

    exit_code = EXIT_RUNTIME


class SecretError(InputError):
    """An API key source could not be read."""


class ValidationFailed(LauncherError):
    exit_code = EXIT_VALIDATION


class ServerFailed(LauncherError):
    """The model server did not come up; carries the diagnosis and the last log lines."""

    exit_code = EXIT_SERVER

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None,
                 log_tail: list[str] | None = None, details: list[str] | None = None):
        super().__init__(what, where=where, fix=fix, details=details)
        self.log_tail = list(log_tail or [])

    def render(self) -> str:
        text = super().render()
        if self.log_tail:
            text += "\n  last log lines:\n" + "\n".join(f"    | {line}" for line in self.log_tail)
        return text
