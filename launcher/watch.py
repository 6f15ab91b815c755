"""Start-up watch: log lines → stages on a live display, readiness probed the moment the API is up.

Like llama-swap's readiness loop, it returns the moment the process dies instead of waiting out the
timeout. No fixed sleeps: the loop blocks on the log queue until the next thing is due (a probe, an
exit check, the deadline). Ready = /health 200 and the served name in /v1/models.
"""
from __future__ import annotations

import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

from launcher.engines.vllm_logs import STAGE_LABELS, Failure, LogReader, Stage, exit_failure, timeout_failure
from launcher.errors import ServerFailed

TAIL = 30
_EOF = object()


# ------------------------------------------------------------------------------------------ probe
class AuthRejected(ServerFailed):
    """/health is 200 but /v1/models answers 401/403: the server wants a key launch does not have.
    Waiting cannot fix that, so the probe stops the watch at once (exit 4)."""


class ReadyProbe:
    """GET /health then /v1/models; ready when /health is 200 and the served id is listed.

    A 401/403 from /v1/models once /health is 200 raises AuthRejected: the server is up and will never
    accept this launch's key (or lack of one). key_source names where launch's key came from
    ("env:MYKEY"), never its value; None when launch sends no key."""

    def __init__(self, endpoint: str, served_name: str, api_key: str | None = None, *, timeout: float = 2.0,
                 key_source: str | None = None, recipe: str | None = None):
        from launcher.http import bearer, client

        self.endpoint = endpoint.rstrip("/")
        self.served = served_name
        self.models: dict | None = None
        self.why = "not probed yet"
        self.sent_key = bool(api_key)
        self.key_source = key_source
        self.recipe = recipe
        self._client = client(connect=min(1.0, timeout), read=timeout, retries=0, headers=bearer(api_key))

    def __call__(self) -> bool:
        import httpx

        try:
            r = self._client.get(self.endpoint + "/health")
            if r.status_code != 200:
                self.why = f"/health answered {r.status_code}"
                return False
            r = self._client.get(self.endpoint + "/v1/models")
        except httpx.HTTPError as exc:
            self.why = f"{type(exc).__name__} on {self.endpoint}"
            return False
        if r.status_code in (401, 403):
            self.why = f"/v1/models answered {r.status_code}"
            raise self.rejected(r.status_code)
        if r.status_code != 200:
            self.why = f"/v1/models answered {r.status_code}"
            return False
        try:
            data = r.json()
            ids = [m.get("id") for m in data.get("data", [])]
        except (ValueError, AttributeError):
            self.why = "/v1/models did not answer JSON"
            return False
        if self.served not in ids:
            self.why = f"/v1/models lists {ids}, not {self.served}"
            return False
        self.models = data
        self.why = "ready"
        return True

    def rejected(self, status: int) -> AuthRejected:
        url = self.endpoint + "/v1/models"
        recipe = self.recipe or "RECIPE"
        if self.sent_key:
            src = self.key_source or "the recipe's api_key"
            what = (f"{url} answered {status}: the server refused the API key launch sent "
                    f"(from {src}, the recipe's api_key)")
            fix = (f"make {src} hold the key this server was started with, or stop the server "
                   f"(`launch down {recipe}` if launch started it) and start it again with this key")
        else:
            what = (f"{url} answered {status}: the server wants an API key and launch sent none "
                    "(the recipe has no api_key)")
            fix = ("add `api_key: {env: VAR}` to the recipe, VAR holding the key the server expects, or run the "
                   "server without one (vLLM takes it from --api-key or from VLLM_API_KEY in its environment)")
        return AuthRejected(what, where=self.recipe, fix=fix)

    def close(self) -> None:
        self._client.close()


# --------------------------------------------------------------------------------------- progress
class Progress:
    """What the watch reports to. The base class prints nothing (tests, --quiet)."""

    def stage(self, st: Stage, elapsed: float) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def _stage_text(st: Stage | None, elapsed: float | None = None) -> str:
    clock = f"  {elapsed:.0f}s" if elapsed is not None else ""
    if st is None:
        return f"waiting for the server{clock}"
    pct = f" {st.percent:.0f}%" if st.percent is not None else ""
    detail = f" ({st.detail})" if st.detail else ""
    return f"{st.label}{pct}{detail}{clock}"


class LineProgress(Progress):
    """Non-TTY: one line per stage change (percent steps of 25 at most, so logs stay short)."""

    def __init__(self, stream=None, clock: Callable[[], float] = time.monotonic):
        self.stream = stream or sys.stderr
        self._last: tuple[str, int] | None = None

    def stage(self, st: Stage, elapsed: float) -> None:
        key = (st.name, int((st.percent or 0) // 25))
        if key == self._last:
            return
        self._last = key
        self._write(f"[{elapsed:6.1f}s] {_stage_text(st)}")

    def note(self, text: str) -> None:
        self._write(text)

    def _write(self, text: str) -> None:
        from launcher.auth import redact

        self.stream.write(redact(text) + "\n")
        self.stream.flush()


class LiveProgress(Progress):
    """TTY: a rich Live line with a spinner, the stage, percent and elapsed time (4 refreshes/s)."""

    def __init__(self, title: str = "", clock: Callable[[], float] = time.monotonic):
        from rich.live import Live
        from rich.spinner import Spinner

        from launcher.ui import err_console

        self.clock = clock
        self.t0 = clock()
        self.title = title
        self.current: Stage | None = None
        self._spinner = Spinner("dots", text="")
        self._live = Live(self, console=err_console(), refresh_per_second=4, transient=True)
        self._live.start()

    def __rich__(self):
        from launcher.auth import redact

        self._spinner.text = redact(f"{self.title}{_stage_text(self.current, self.clock() - self.t0)}")
        return self._spinner

    def stage(self, st: Stage, elapsed: float) -> None:
        if self.current is not None and self.current.name != st.name:
            self._live.console.print(f"  ✓ {self.current.label}  [{elapsed:.1f}s]", markup=False, highlight=False)
        self.current = st

    def note(self, text: str) -> None:
        from launcher.auth import redact

        self._live.console.print(redact(text), markup=False, highlight=False)

    def close(self) -> None:
        self._live.stop()


class PullTracker:
    """Docker pull events (one per layer: Pulling fs layer, Downloading current/total, Download
    complete, Extracting, Pull complete, Already exists) -> the "pulling image" stage with one percent:
    the mean over the image's layers of each layer's downloaded fraction."""

    DONE = ("download complete", "extracting", "verifying checksum", "pull complete", "already exists")

    def __init__(self, progress: Progress, elapsed: Callable[[], float], *, every: float = 0.1):
        self.progress, self.elapsed, self.every = progress, elapsed, every
        self.layers: dict[str, float] = {}  # layer id -> downloaded fraction
        self._shown: tuple[int, int] | None = None
        self._at = -1e9

    def __call__(self, ev) -> None:
        status = (ev.status or "").lower()
        layer = ev.layer
        if layer and (status.startswith(("pulling fs layer", "waiting", "downloading")) or
                      status.startswith(self.DONE)):
            if status.startswith("downloading") and ev.total:
                frac = min(1.0, (ev.current or 0) / ev.total)
            elif status.startswith(self.DONE):
                frac = 1.0
            else:
                frac = self.layers.get(layer, 0.0)
            self.layers[layer] = max(frac, self.layers.get(layer, 0.0))
        if not self.layers:
            return
        pct = 100.0 * sum(self.layers.values()) / len(self.layers)
        done = sum(1 for f in self.layers.values() if f >= 1.0)
        key = (int(pct), done)
        now = self.elapsed()
        if key == self._shown or (now - self._at < self.every and done < len(self.layers)):
            return
        self._shown, self._at = key, now
        self.progress.stage(Stage("image", pct, f"{ev.image}: {done}/{len(self.layers)} layers"), now)


def default_progress(title: str = "", *, quiet: bool = False) -> Progress:
    if quiet:
        return Progress()
    if sys.stderr.isatty():
        return LiveProgress(title)
    return LineProgress()


# ------------------------------------------------------------------------------------------ watch
@dataclass
class WatchResult:
    ready: bool
    failure: Failure | None
    elapsed: float
    lines: list[str] = field(default_factory=list)  # every line seen (capacity parsing reads them)
    tail: list[str] = field(default_factory=list)  # the last TAIL lines
    version: str | None = None
    models: dict | None = None


def _pump(lines: Iterable[str], q: queue.Queue) -> None:
    try:
        for line in lines:
            q.put(line)
    except Exception as exc:  # noqa: BLE001 - a broken follow must not hang the watch
        q.put(f"[launch] log stream ended: {exc}")
    finally:
        q.put(_EOF)


def watch_startup(lines: Iterable[str], *, exited: Callable[[], object | None], probe: Callable[[], bool],
                  timeout: float, progress: Progress | None = None, clock: Callable[[], float] = time.monotonic,
                  exit_poll: float = 0.5, slow_probe: float = 2.0, fail_grace: float = 5.0,
                  keep_lines: int = 5000, timeout_label: float | None = None,
                  started_at: float | None = None) -> WatchResult:
    """Follow `lines` until ready, failed, exited or timed out.

    exited() returns None while every watched process runs, else an object with code, signal,
    oom_killed, reason (runtimes.base.ExitInfo). probe() returns True once the server is ready.
    After the API-up log line the probe runs at once, then after 5 ms, growing ×1.5 up to 50 ms for 10 s and
    0.5 s after that; before it,
    every `slow_probe` seconds (servers whose log wording we do not know still become ready).
    Elapsed times (stages, the result) count from `started_at` (a clock() value; default: now), so a
    launch that pulled an image first shows the time since it began.
    """
    progress = progress or Progress()
    reader = LogReader()
    tail: deque[str] = deque(maxlen=TAIL)
    seen: deque[str] = deque(maxlen=keep_lines)
    q: queue.Queue = queue.Queue()
    threading.Thread(target=_pump, args=(lines, q), name="launch-log-follow", daemon=True).start()

    t0 = clock()
    base = t0 if started_at is None else started_at
    deadline = t0 + timeout
    next_probe = t0 + min(slow_probe, 0.2)
    interval = slow_probe
    api_up_at: float | None = None
    next_exit = t0 + exit_poll
    fail_at: float | None = None
    eof = False

    def result(ready: bool, failure: Failure | Callable[[], Failure] | None) -> WatchResult:
        # lines still on their way belong in the tail (a traceback printed just before the exit). The
        # grace is real time, not clock(): it waits for the log-follow thread, whatever the clock says.
        end = time.monotonic() + (0.0 if ready or eof else 1.0)
        while True:
            try:
                item = q.get(timeout=max(0.0, end - time.monotonic())) if not eof else q.get_nowait()
            except queue.Empty:
                break
            if item is _EOF:
                break
            _take(item)
        if callable(failure):
            failure = failure()  # judged on every line read, the late ones included
        if failure is not None and reader.failure is not None and failure.kind in ("exited", "timeout"):
            failure = reader.failure
        why = getattr(probe, "why", None)
        if failure is not None and failure.kind in ("timeout", "not-ready") and why:
            failure = replace(failure, details=(*failure.details, f"last readiness check: {why}"))
        return WatchResult(ready, failure, clock() - base, list(seen), list(tail), reader.version,
                           getattr(probe, "models", None))

    def _take(line: str) -> list:
        tail.append(line)
        seen.append(line)
        return reader.feed(line)

    while True:
        now = clock()
        if now >= deadline:
            return result(False, lambda: timeout_failure(timeout_label or timeout, reader.stage, reader.api_up))
        due = min(deadline, next_probe, next_exit, fail_at if fail_at is not None else deadline)
        try:
            item = q.get(timeout=max(0.0, due - now))
        except queue.Empty:
            item = None
        batch = [] if item is None else [item]
        while len(batch) < 500:
            try:
                batch.append(q.get_nowait())
            except queue.Empty:
                break
        now = clock()
        for item in batch:
            if item is _EOF:
                eof = True
                next_exit = now  # the stream ended: the process has most likely just died
                continue
            was_up = reader.api_up
            for ev in _take(item):
                if isinstance(ev, Stage):
                    progress.stage(ev, now - base)
                elif fail_at is None:
                    fail_at = now + fail_grace
            if reader.api_up and not was_up:
                next_probe, interval = now, 0.005  # refused until it listens: retry fast, then back off
                api_up_at = now
        if now >= next_exit:
            info = exited()
            if info is not None:
                return result(False, reader.failure or exit_failure(
                    getattr(info, "code", None), getattr(info, "signal", None),
                    bool(getattr(info, "oom_killed", False)), getattr(info, "reason", "")))
            next_exit = now + exit_poll
        if fail_at is not None and now >= fail_at:
            return result(False, reader.failure)
        if now >= next_probe:
            if probe():
                progress.stage(Stage("ready"), clock() - base)
                return result(True, None)
            if reader.api_up:
                # the HTTP server binds within a second or two of the API-up line: poll a refused port
                # every 50 ms for the first 10 s (a refused connect costs ~1 ms), then back off to 0.5 s
                fast = api_up_at is not None and now - api_up_at < 10.0
                interval = min(interval * 1.5, 0.05 if fast else 0.5)
            next_probe = clock() + interval


__all__ = ["AuthRejected", "ReadyProbe", "Progress", "PullTracker", "LineProgress", "LiveProgress", "default_progress", "watch_startup",
           "WatchResult", "STAGE_LABELS"]
