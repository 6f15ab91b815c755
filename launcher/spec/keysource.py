"""Where a secret comes from: `env: NAME` | `file: PATH` | `command: "…"` (never the value itself)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator


class KeySource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = None
    file: str | None = None
    command: str | None = None
    timeout: float = 10.0

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [k for k in ("env", "file", "command") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of env: NAME, file: PATH or command: \"…\"")
        return self

    @property
    def kind(self) -> str:
        return "env" if self.env else "file" if self.file else "command"

    def describe(self) -> str:
        """A safe description (names the source, never the value)."""
        if self.env:
            return f"env:{self.env}"
        if self.file:
            return f"file:{self.file}"
        return "command"
