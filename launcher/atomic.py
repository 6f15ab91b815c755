"""Atomic file writes for configs that belong to the user.

write_atomic(path, text): a temporary file in the same directory, fsync, os.replace, so a reader
(or a crash) sees the old file or the new one, never half of one. An existing file keeps its mode
and gets a timestamped backup first. Nothing is written, and no backup made, when the content
would not change (idempotent). A symlink is followed: the file it points at is replaced, the link
stays.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from launcher.errors import RuntimeFailure


@dataclass
class WriteResult:
    path: Path  # the file written (a symlink's target)
    changed: bool  # False: the content was already there, nothing was touched
    backup: Path | None = None  # the copy of the previous content, when there was one


def backup_path(path: Path, now: float) -> Path:
    """`<name>.bak-YYYYmmdd-HHMMSS` next to the file; a counter when that name is taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    candidate = path.with_name(f"{path.name}.bak-{stamp}")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bak-{stamp}-{n}")
        n += 1
    return candidate


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | Path, content: str | bytes, *, backup: bool = True, mode: int | None = None,
                 clock: Callable[[], float] = time.time) -> WriteResult:
    """Replace path's content atomically. mode applies to a new file (default 0o644 less the umask);
    an existing file keeps its own. Raises RuntimeFailure naming the file when it cannot be written."""
    path = Path(path).expanduser()
    if path.is_symlink():
        path = path.resolve()
    data = content.encode("utf-8") if isinstance(content, str) else content
    old_mode = None
    if path.exists():
        try:
            if path.read_bytes() == data:
                return WriteResult(path, changed=False)
            old_mode = path.stat().st_mode & 0o7777
        except OSError as exc:
            raise RuntimeFailure(f"cannot read {path}: {exc.strerror}", where=str(path),
                                 fix="check the file's permissions") from None
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeFailure(f"cannot create the directory {directory}: {exc.strerror}", where=str(directory),
                             fix="check the permissions of its parent") from None
    saved: Path | None = None
    if old_mode is not None and backup:
        saved = backup_path(path, clock())
        try:
            shutil.copy2(path, saved)
        except OSError as exc:
            raise RuntimeFailure(f"cannot back up {path} to {saved}: {exc.strerror}", where=str(path),
                                 fix="free disk space or fix the directory's permissions; nothing was changed") from None
    if old_mode is None:
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o644 & ~umask
        target_mode = mode
    else:
        target_mode = old_mode
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, target_mode)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise RuntimeFailure(f"cannot write {path}: {exc.strerror or exc}", where=str(path),
                                 fix="check disk space and permissions; the previous file is unchanged") from None
        raise
    _fsync_dir(directory)
    return WriteResult(path, changed=True, backup=saved)
