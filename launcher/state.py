"""Records of the processes launch started, under launcher.paths.state_dir().

One JSON file per (recipe, process): state_dir()/processes/<recipe>/<process>.json holding the
runtime Handle (pid + create time + plan hash for local, remote pid + start time for ssh, container
/ exec id for docker). Records are hints, never trusted blindly: runtimes re-check them (psutil,
/proc/<pid>/stat, docker inspect) before acting. Files are 0600 and never hold a secret value.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from launcher import paths
from launcher.runtimes.base import Handle

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A file-name-safe form of a recipe or process name."""
    return _SAFE.sub("_", text).strip("._") or "_"


def processes_dir() -> Path:
    return paths.state_dir() / "processes"


def logs_dir() -> Path:
    return paths.state_dir() / "logs"


def log_path(recipe: str, process: str) -> Path:
    """Where the local runtime writes a process's stdout+stderr."""
    return logs_dir() / safe_name(recipe) / f"{safe_name(process)}.log"


def record_path(recipe: str, process: str, host: str = "") -> Path:
    stem = safe_name(process) if not host else f"{safe_name(process)}@{safe_name(host)}"
    return processes_dir() / safe_name(recipe) / f"{stem}.json"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".rec-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def record(handle: Handle) -> Path:
    """Remember a started process (atomic write, mode 0600)."""
    path = record_path(handle.recipe, handle.process, handle.host)
    _write_private(path, json.dumps(handle.to_json(), indent=2, sort_keys=True))
    return path


def from_json(data: dict) -> Handle:
    fields = {k: data[k] for k in ("runtime", "recipe", "plan_hash", "process", "role", "host", "address")}
    return Handle(**fields, ref=dict(data.get("ref") or {}), log_path=data.get("log_path"))


def load(recipe: str | None = None, runtime: str | None = None) -> list[Handle]:
    """Recorded handles, optionally for one recipe and/or one runtime. Unreadable records are skipped."""
    base = processes_dir()
    if not base.is_dir():
        return []
    dirs = [base / safe_name(recipe)] if recipe else sorted(p for p in base.iterdir() if p.is_dir())
    out: list[Handle] = []
    for d in dirs:
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.json")):
            try:
                h = from_json(json.loads(f.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if recipe and h.recipe != recipe:
                continue
            if runtime and h.runtime != runtime:
                continue
            out.append(h)
    return out


def forget(handle: Handle) -> None:
    """Drop a record (after stop). Missing is fine."""
    path = record_path(handle.recipe, handle.process, handle.host)
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    try:
        path.parent.rmdir()
    except OSError:
        pass
