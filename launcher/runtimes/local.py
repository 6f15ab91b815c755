"""Local runtime: a child process on this machine, in its own session, checked with psutil.

The plan's argv runs under a tiny `sh` wrapper that writes the exit status to LOG.exit, so any later
`launch` invocation (not only the parent) can say how it ended. stdout+stderr go to a log file in
the state dir. Secrets reach the child through its environment only.
"""
from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator

from launcher import state
from launcher.errors import RuntimeFailure
from launcher.runtimes.base import CommandResult, ExitInfo, Handle, Runtime
from launcher.runtimes.common import LineSplitter, check_env, exit_from_signal, exit_from_status, start_ticks

# "$1" is the exit file; the rest is the plan's argv, passed as arguments (never parsed by a shell).
WRAPPER = 'f=$1; shift; "$@"; echo $? > "$f.tmp"; mv -f "$f.tmp" "$f"'
# psutil's create_time adds a boot time re-read from /proc/stat, which a wall-clock step can move by a
# second; the kernel's start ticks (recorded where /proc exists) are compared exactly instead.
_CT_TOLERANCE = 1.0


def _exit_file(log_path: str | Path) -> Path:
    return Path(f"{log_path}.exit")


def inherited_env(plan, environ=None) -> dict[str, str]:
    """This shell's environment for a child, less the engine's API key variable when the recipe has
    no api_key: vLLM reads VLLM_API_KEY from its environment, so a key exported in this shell would
    start a protected server that launch then probes without a key (401 until the timeout)."""
    import logging

    env = dict(os.environ if environ is None else environ)
    if getattr(plan, "api_key", None) is None:
        var = None
        try:
            from launcher import engines

            var = engines.get(plan.engine).api_key_env
        except Exception:  # noqa: BLE001 - an engine without a key variable drops nothing
            var = None
        if var and env.pop(var, None) is not None:
            logging.getLogger("launcher.runtime").info(
                "%s: not passing %s from this shell to the server: the recipe has no api_key "
                "(add api_key: {env: %s} to serve with that key)", plan.recipe, var, var)
    return env


class LocalRuntime(Runtime):
    name = "local"

    def __init__(self, *, poll_interval: float = 0.05, sleep: Callable[[float], None] = time.sleep):
        self.poll_interval = poll_interval
        self._sleep = sleep
        self._children: dict[int, subprocess.Popen] = {}

    # -- start ---------------------------------------------------------------------------------
    def start(self, proc, plan, secrets: dict[str, str]) -> Handle:
        import psutil

        where = f"{plan.recipe}: process {proc.name}"
        env = {**inherited_env(plan), **proc.env, **secrets}
        check_env({**proc.env, **secrets}, where)
        exe = proc.argv[0]
        if not shutil.which(exe, path=env.get("PATH")):
            raise RuntimeFailure(f"{exe} is not on PATH on this machine", where=where,
                                 fix=f"install {exe} (or activate its virtualenv) before `launch`")
        log = state.log_path(plan.recipe, proc.name)
        log.parent.mkdir(parents=True, exist_ok=True)
        _exit_file(log).unlink(missing_ok=True)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            child = subprocess.Popen(["sh", "-c", WRAPPER, "sh", str(_exit_file(log)), *proc.argv],
                                     stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True, close_fds=True)
        finally:
            os.close(fd)
        self._children[child.pid] = child
        try:
            create_time = psutil.Process(child.pid).create_time()
        except psutil.NoSuchProcess:
            create_time = 0.0
        ref = {"pid": child.pid, "create_time": create_time}
        ticks = start_ticks(child.pid)
        if ticks is not None:
            ref["start_ticks"] = ticks
        handle = Handle(runtime=self.name, recipe=plan.recipe, plan_hash=plan.hash, process=proc.name,
                        role=proc.role, host=proc.host, address=proc.address, ref=ref, log_path=str(log))
        state.record(handle)
        return handle

    # -- liveness ------------------------------------------------------------------------------
    def _process(self, handle: Handle):
        """The live psutil.Process behind a handle, or None (gone, zombie, or pid reused)."""
        import psutil

        pid = handle.ref.get("pid")
        if not pid:
            return None
        child = self._children.get(pid)
        if child is not None:
            child.poll()
        try:
            p = psutil.Process(pid)
            recorded = handle.ref.get("start_ticks")
            ticks = start_ticks(pid) if recorded is not None else None
            if ticks is not None:
                if ticks != recorded:
                    return None  # the pid now belongs to someone else
            elif abs(p.create_time() - float(handle.ref.get("create_time", 0))) > _CT_TOLERANCE:
                return None  # the pid now belongs to someone else
            if p.status() == psutil.STATUS_ZOMBIE:
                return None
            return p
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    def exit_info(self, handle: Handle) -> ExitInfo | None:
        if self._process(handle) is not None:
            return None
        if handle.log_path:
            try:
                text = _exit_file(handle.log_path).read_text().strip()
                if text:
                    return exit_from_status(int(text))
            except (OSError, ValueError):
                pass
        child = self._children.get(handle.ref.get("pid"))
        if child is not None and child.returncode is not None:
            if child.returncode < 0:
                return exit_from_signal(-child.returncode)
            return exit_from_status(child.returncode)
        return ExitInfo(reason="not running (exit status unknown)")

    # -- stop ----------------------------------------------------------------------------------
    def stop(self, handle: Handle, timeout: float = 15.0) -> None:
        """TERM to the process group (and descendants that left it), KILL after timeout; forgets the record."""
        import psutil

        p = self._process(handle)
        if p is not None:
            try:
                procs = [p, *p.children(recursive=True)]
            except psutil.NoSuchProcess:
                procs = [p]
            self._signal_all(p.pid, procs, signal.SIGTERM)
            _, alive = psutil.wait_procs(procs, timeout=timeout)
            if alive:
                self._signal_all(p.pid, alive, signal.SIGKILL)
                psutil.wait_procs(alive, timeout=5)
        child = self._children.pop(handle.ref.get("pid"), None)
        if child is not None:
            try:
                child.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        state.forget(handle)

    @staticmethod
    def _signal_all(pgid: int, procs, sig) -> None:
        import psutil

        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for q in procs:  # children that left the group (setsid) still get it
            try:
                q.send_signal(sig)
            except psutil.NoSuchProcess:
                pass

    # -- logs ----------------------------------------------------------------------------------
    def logs(self, handle: Handle, *, follow: bool = False, tail: int | None = None) -> Iterator[str]:
        if not handle.log_path or not os.path.exists(handle.log_path):
            return
        with open(handle.log_path, "rb") as f:
            split = LineSplitter()
            first = split.feed(f.read())
            yield from (collections.deque(first, maxlen=tail) if tail is not None else first)
            if not follow:
                yield from split.flush()
                return
            while True:
                data = f.read()
                if data:
                    yield from split.feed(data)
                    continue
                if self._process(handle) is None:
                    yield from split.feed(f.read())
                    yield from split.flush()
                    return
                self._sleep(self.poll_interval)

    # -- run / find ----------------------------------------------------------------------------
    def run(self, host: dict, argv: list[str], *, timeout: float = 10.0) -> CommandResult:
        return run_local(argv, timeout=timeout)

    def find(self, recipe: str | None = None) -> list[Handle]:
        """Recorded local processes (dead ones included: check alive()/exit_info())."""
        return state.load(recipe, runtime=self.name)


def run_local(argv: list[str], *, timeout: float = 10.0, input: str | None = None) -> CommandResult:
    """Run a short command here. Not found -> code 127, timeout -> code 124 (stderr says which)."""
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input,
                            stdin=None if input is not None else subprocess.DEVNULL)
    except FileNotFoundError:
        return CommandResult(127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        return CommandResult(124, "", f"{argv[0]}: timed out after {timeout:g} s")
    return CommandResult(cp.returncode, cp.stdout, cp.stderr)
