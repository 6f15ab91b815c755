"""Shared by the laptop bring-ups (Ollama, LM Studio, llama.cpp): the progress events they emit,
bounded waits on an injectable clock, NDJSON streams, and the local runtime.

Progress goes through `Reporter`: a launcher.watch.Progress (as the pipeline passes) or a callable
taking one `Step`. `Step.stage` is "start", "wait", "pull", "create", "load", "measure" or "ready";
pull steps carry bytes `completed`/`total`, `percent` and `rate` (bytes/s).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from launcher.errors import ServerFailed


@dataclass
class Step:
    stage: str
    detail: str = ""
    completed: int | None = None
    total: int | None = None
    rate: float | None = None  # bytes per second, pull only

    @property
    def percent(self) -> float | None:
        if self.total and self.completed is not None:
            return round(100.0 * self.completed / self.total, 1)
        return None


class Clock:
    """Real time; tests pass a fake with the same two methods."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


class Reporter:
    """Where a laptop bring-up reports to. `progress` may be
    - a launcher.watch.Progress (what the pipeline passes; `.stage(Stage, elapsed)`, `.note(text)`),
    - a plain callable taking a `Step` (tests, scripts),
    - None: launcher.watch.default_progress(), closed by `close()`.
    Warnings go through `.note("warning: …")` on a Progress, else launcher.ui.warn."""

    def __init__(self, progress, clock: "Clock", title: str = ""):
        self.clock, self.t0 = clock, clock.now()
        self.own = progress is None
        if progress is None:
            from launcher.watch import default_progress

            progress = default_progress(title)
        self.progress = progress
        self.is_watch = hasattr(progress, "stage") and hasattr(progress, "note")
        self.warnings: list[str] = []

    def step(self, stage: str, detail: str = "", **kw) -> None:
        st = Step(stage, detail, **kw)
        if not self.is_watch:
            self.progress(st)
            return
        from launcher.engines.vllm_logs import Stage

        text = detail
        if st.total:
            text += f"  {human_bytes(st.completed or 0)}/{human_bytes(st.total)}"
            if st.rate:
                text += f"  {human_bytes(st.rate)}/s"
        self.progress.stage(Stage(stage, st.percent, text), self.clock.now() - self.t0)

    def note(self, text: str) -> None:
        if self.is_watch:
            self.progress.note(text)
        else:
            self.progress(Step("note", text))

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        if self.is_watch:
            self.progress.note("warning: " + text)
        else:
            from launcher import ui

            ui.warn(text)

    def close(self) -> None:
        if self.own:
            self.progress.close()


class RateMeter:
    """Bytes per second over a sliding window of ~3 s, on the given clock."""

    def __init__(self, clock: Clock, window: float = 3.0):
        self.clock, self.window = clock, window
        self.samples: list[tuple[float, int]] = []

    def update(self, completed: int) -> float | None:
        now = self.clock.now()
        self.samples.append((now, completed))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window:
            self.samples.pop(0)
        t0, c0 = self.samples[0]
        if now - t0 <= 0:
            return None
        return max(0.0, (completed - c0) / (now - t0))


def wait_until(probe: Callable[[], object], *, timeout: float, clock: Clock, what: str, where: str,
               fix: str, died: Callable[[], str | None] | None = None,
               log_tail: Callable[[], list[str]] | None = None,
               on_wait: Callable[[float], None] | None = None, first: float = 0.1,
               most: float = 1.0) -> object:
    """Poll probe() until it returns something truthy; bounded by timeout, polling faster at first.
    Returns at once when died() reports the process ended (its reason) — no waiting out the clock."""
    start = clock.now()
    delay = first
    while True:
        result = probe()
        if result:
            return result
        reason = died() if died else None
        if reason:
            raise ServerFailed(f"{what}: the server exited ({reason})", where=where, fix=fix,
                               log_tail=log_tail() if log_tail else None)
        elapsed = clock.now() - start
        if elapsed >= timeout:
            raise ServerFailed(f"{what}: not ready after {timeout:g} s", where=where, fix=fix,
                               log_tail=log_tail() if log_tail else None)
        if on_wait:
            on_wait(elapsed)
        clock.sleep(min(delay, max(0.0, timeout - elapsed)))
        delay = min(most, delay * 2)


def ndjson(client, method: str, path: str, body: dict, *, timeout: float | None = None) -> Iterator[dict]:
    """POST and yield each JSON line of a streamed answer (Ollama's NDJSON). A non-2xx answer yields
    its JSON body once (Ollama reports `{"error": …}` that way before streaming starts)."""
    import httpx

    kw = {"timeout": httpx.Timeout(timeout, connect=5.0)} if timeout else {}
    with client.stream(method, path, json=body, **kw) as resp:
        if resp.status_code >= 400:
            resp.read()
            try:
                yield resp.json()
            except ValueError:
                yield {"error": f"HTTP {resp.status_code}: {resp.text.strip()[:200]}"}
            return
        for line in resp.iter_lines():
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except ValueError:
                continue


def get_json(client, path: str, **kw):
    """GET path -> (status, parsed JSON or None); (0, None) when nothing answers."""
    import httpx

    try:
        resp = client.get(path, **kw)
    except httpx.HTTPError:
        return 0, None
    try:
        return resp.status_code, resp.json()
    except ValueError:
        return resp.status_code, None


def local_runtime():
    """The local runtime (subprocess + psutil) that starts servers on this machine."""
    from launcher import runtimes

    return runtimes.get("local")


def server_handles(plan) -> list:
    """Launcher-started, still-running server processes of this recipe (any plan hash)."""
    rt = local_runtime()
    return [h for h in rt.find(plan.recipe) if h.role == "server" and rt.alive(h)]


def recipe_spec(plan, recipe):
    """The Recipe model whether the caller passed it, its spec.load.Loaded, or nothing (then the
    plan's recipe file is read)."""
    if recipe is None:
        from launcher.spec.load import load_recipe

        return load_recipe(plan.recipe_path).spec
    return getattr(recipe, "spec", recipe)


def port_is_explicit(plan, recipe, default_port: int) -> bool:
    """A port the user chose (recipe `port:` or `--port`), as opposed to the engine's default."""
    return recipe.port is not None or not plan.endpoint.endswith(f":{default_port}")


def local_host(plan) -> dict:
    """The inventory facts of the plan's (single) host, for runtime.run."""
    return next(iter(plan.hosts.values()), {}) if plan.hosts else {"address": "127.0.0.1"}


def bring_up(impl, plan, recipe, *, replace: bool, timeout: float | None, progress, clock: Clock | None):
    """The shared shell of every laptop bring-up: a reporter around impl(plan, recipe_spec, …)."""
    clock = clock or Clock()
    rep = Reporter(progress, clock, f"{plan.recipe}: ")
    try:
        return impl(plan, recipe_spec(plan, recipe), replace=replace, timeout=timeout, rep=rep, clock=clock)
    finally:
        rep.close()
