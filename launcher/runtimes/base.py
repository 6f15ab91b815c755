"""The runtime contract: where and how a planned process runs (local | ssh | docker).

A runtime executes; it knows nothing about engines. Deploy code calls these methods only.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Iterator


@dataclass
class Handle:
    """A process launch started, enough to find, probe, follow and stop it later."""

    runtime: str  # local | ssh | docker
    recipe: str
    plan_hash: str
    process: str  # the plan's process name: server, ray-head, ray-worker-1, worker-1
    role: str
    host: str  # inventory host name
    address: str
    ref: dict = field(default_factory=dict)  # runtime-specific: pid + create_time | remote pid | container id
    log_path: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ExitInfo:
    code: int | None = None
    signal: int | None = None
    oom_killed: bool = False
    reason: str = ""  # human text, e.g. "container OOMKilled (exit 137)"


@dataclass
class CommandResult:
    code: int
    stdout: str
    stderr: str


class Runtime(ABC):
    name = ""

    @abstractmethod
    def start(self, proc, plan, secrets: dict[str, str]) -> Handle:
        """Start one plan Process. secrets: {ENV_NAME: value}, passed through the environment only."""

    @abstractmethod
    def exit_info(self, handle: Handle) -> ExitInfo | None:
        """None while running; how it ended otherwise."""

    def alive(self, handle: Handle) -> bool:
        return self.exit_info(handle) is None

    @abstractmethod
    def stop(self, handle: Handle, timeout: float = 15.0) -> None:
        """Stop it (TERM, then KILL after timeout); a no-op when already gone."""

    @abstractmethod
    def logs(self, handle: Handle, *, follow: bool = False, tail: int | None = None) -> Iterator[str]:
        """Log lines (without newline). follow=True yields new lines until the process ends."""

    @abstractmethod
    def run(self, host: dict, argv: list[str], *, timeout: float = 10.0) -> CommandResult:
        """Run a short command on the host (nvidia-smi, cat /proc/meminfo, ray status)."""

    @abstractmethod
    def find(self, recipe: str | None = None) -> list[Handle]:
        """Processes launch started (and still recorded or labelled), optionally for one recipe."""
