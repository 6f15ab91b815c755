"""Following a starting server's log, in a way the watch can stop when it is done.

A runtime's `logs(follow=True)` runs until the process ends, which for a healthy server is never:
after `launch up` returns (and the pipeline goes on to run the agent) nothing may keep polling or
keep an `ssh … tail -F` open. Local logs are tailed here directly (a file read every 20 ms, an
exit check every ~250 ms while idle); docker log streams are shut down on close() (the runtime's
open_logs() hands out a closer); ssh followers are ended by stopping the helper processes (ssh's
`tail`) this process started for that log.
"""
from __future__ import annotations

import os
import threading
from typing import Iterator

from launcher.runtimes.base import Handle
from launcher.runtimes.common import LineSplitter


class Follower:
    def __init__(self, rt, handle: Handle, *, poll: float = 0.02, exit_every: float = 0.25):
        self.rt, self.handle, self.poll = rt, handle, poll
        self._exit_polls = max(1, int(exit_every / poll))
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._closer = None

    def __iter__(self) -> Iterator[str]:
        if self.handle.runtime == "local" and self.handle.log_path:
            yield from self._tail_file(self.handle.log_path)
            return
        opener = getattr(self.rt, "open_logs", None)
        if opener is not None:  # docker: a stream close() can end from the watch's thread
            lines, closer = opener(self.handle, follow=True)
            with self._lock:
                self._closer = closer
                stopped = self._stop.is_set()
            if stopped:
                closer()
                return
        else:
            lines = self.rt.logs(self.handle, follow=True)
        try:
            for line in lines:
                if self._stop.is_set():
                    return
                yield line
        finally:
            getattr(lines, "close", lambda: None)()

    def _tail_file(self, path: str) -> Iterator[str]:
        split = LineSplitter()
        idle = 0
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed in finally
        except OSError:
            return
        try:
            while not self._stop.is_set():
                data = f.read()
                if data:
                    idle = 0
                    yield from split.feed(data)
                    continue
                idle += 1
                if idle % self._exit_polls == 0 and self.rt.exit_info(self.handle) is not None:
                    yield from split.feed(f.read())
                    yield from split.flush()
                    return
                self._stop.wait(self.poll)
        finally:
            f.close()

    def close(self) -> None:
        with self._lock:
            self._stop.set()
            closer = self._closer
        if closer is not None:
            try:
                closer()
            except Exception:  # noqa: BLE001 - best effort: the stream also ends with the process
                pass
            return
        if self.handle.runtime == "local" or not self.handle.log_path:
            return
        try:
            import psutil

            me = psutil.Process(os.getpid())
            for child in me.children(recursive=True):
                try:
                    if any(self.handle.log_path in part for part in child.cmdline()):
                        child.terminate()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
        except Exception:  # noqa: BLE001 - best effort: the follower also ends with the process
            pass
