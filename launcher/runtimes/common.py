"""Pieces the runtimes share: exit-status wording, env checks, a line splitter for followed logs."""
from __future__ import annotations

import re
import signal as _signal

from launcher.errors import InputError
from launcher.runtimes.base import ExitInfo

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def signal_name(num: int) -> str:
    try:
        return _signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def exit_from_signal(sig: int) -> ExitInfo:
    if sig == _signal.SIGKILL:
        return ExitInfo(code=None, signal=sig, reason="killed by SIGKILL (maybe the kernel's OOM killer: "
                                                    "check `dmesg` or `journalctl -k` for 'Out of memory')")
    return ExitInfo(code=None, signal=sig, reason=f"killed by {signal_name(sig)}")


def exit_from_status(status: int) -> ExitInfo:
    """A shell's `$?`: 128+N means the child died of signal N."""
    if status > 128 and status - 128 < 65:
        info = exit_from_signal(status - 128)
        info.code = status
        return info
    return ExitInfo(code=status, reason=f"exited with code {status}")


def check_env(env: dict[str, str], where: str) -> None:
    """Names must be shell identifiers and values single-line (they travel as NAME=value lines)."""
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            raise InputError(f"invalid environment variable name {name!r}", where=where,
                             fix="use letters, digits and _ only, not starting with a digit")
        if "\n" in value or "\0" in value:
            raise InputError(f"the value of {name} contains a newline or NUL byte", where=where,
                             fix="environment values must be one line")


def parse_stat(line: str) -> tuple[str, str] | None:
    """(state, starttime) from a /proc/<pid>/stat line; comm may hold spaces and parentheses."""
    if ")" not in line:
        return None
    rest = line.rsplit(")", 1)[1].split()
    if len(rest) < 20:
        return None
    return rest[0], rest[19]


def start_ticks(pid: int) -> str | None:
    """The kernel's start time of a local process in clock ticks since boot (/proc/<pid>/stat field
    22): exact and immune to wall-clock steps, unlike psutil's create_time, which adds the boot time
    re-read from /proc/stat and can move by a second after an NTP step. None where there is no /proc
    (macOS) or the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            parsed = parse_stat(f.read())
    except OSError:
        return None
    return parsed[1] if parsed else None


class LineSplitter:
    """Bytes in, complete lines out (decoded, newline stripped); keeps a partial last line."""

    def __init__(self):
        self._buf = b""

    def feed(self, data: bytes) -> list[str]:
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        return [ln.rstrip(b"\r").decode("utf-8", "replace") for ln in lines]

    def flush(self) -> list[str]:
        rest, self._buf = self._buf, b""
        return [rest.rstrip(b"\r").decode("utf-8", "replace")] if rest else []
