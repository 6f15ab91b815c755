"""The simulated vLLM server: start-up sequence, then vLLM's HTTP API on a stdlib ThreadingHTTPServer.

    sim = VllmSim(SimConfig(load_seconds=0.2, api_key="k")).start()   # returns once listening
    ... httpx.get(sim.url + "/health") ...
    sim.stop()

Before the start-up sequence reaches "Application startup complete." the port is bound but not
listening, so a client's connect is refused — what a real vLLM does while it loads (vllm.md, HTTP).
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time

from launcher.sim.common import ServeLoop, SimHTTPServer, sha256_hex
from launcher.sim.vllm_config import SimConfig
from launcher.sim.vllm_logs import LISTEN, boot_script, crash_lines


class SimExited(RuntimeError):
    """The simulated server died (a failure mode) before or after becoming ready."""

    def __init__(self, code: int, tail: list[str]):
        super().__init__(f"simulated vLLM exited with code {code}: " + (tail[-1] if tail else ""))
        self.code, self.tail = code, tail


class Metrics:
    """Engine counters behind /metrics; counters move while tokens are generated."""

    def __init__(self):
        self.lock = threading.Lock()
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.preemptions = 0
        self.running = 0
        self.waiting = 0
        self.running_tokens = 0
        self.success: dict[str, int] = {}

    def admit(self, tokens: int, kv_tokens: int) -> None:
        with self.lock:
            self.running += 1
            self.running_tokens += tokens
            if self.running_tokens > kv_tokens:  # the pool is over-committed: vLLM preempts
                self.preemptions += 1

    def release(self, tokens: int, finish: str | None) -> None:
        with self.lock:
            self.running -= 1
            self.running_tokens -= tokens
            if finish:
                self.success[finish] = self.success.get(finish, 0) + 1

    def add(self, prompt: int = 0, generation: int = 0) -> None:
        with self.lock:
            self.prompt_tokens += prompt
            self.generation_tokens += generation


class VllmSim:
    """One simulated vLLM server. See SimConfig for the knobs; cheap enough for 64 per process."""

    def __init__(self, config: SimConfig | None = None, **overrides):
        if config is None:
            config = SimConfig(**overrides)
        elif overrides:
            from dataclasses import replace
            config = replace(config, **overrides)
        self.config = config
        from launcher.sim.vllm_http import VllmHandler
        self._server = SimHTTPServer(config.host, config.port, VllmHandler, owner=self)
        self.port: int = self._server.port
        self._loop = ServeLoop(self._server, name=f"vllm-sim-{self.port}")
        self.requests: list[dict] = []
        self.log_lines: list[str] = []
        self.metrics = Metrics()
        self.state = "created"     # created | booting | ready | dead | exited | stopped
        self.exit_code: int | None = None
        self.ready_at: float | None = None      # time.time() when it started listening
        self.created_at = int(time.time())
        self._ready = threading.Event()
        self._done = threading.Event()          # set when it exits (failure) or is stopped
        self._stop_ev = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._record_lock = threading.Lock()

    # -- addresses --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = self.config.host
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def listed_model(self) -> str:
        """The id /v1/models lists (differs from the served name under the wrong-model fault)."""
        cfg = self.config
        if cfg.has("wrong-model"):
            return cfg.model if cfg.model != cfg.served_model_name else cfg.served_model_name + "-base"
        return cfg.served_model_name

    # -- life cycle -------------------------------------------------------------------------
    def start(self, wait: bool = True, timeout: float | None = None) -> "VllmSim":
        """Run the start-up sequence (paced by load_seconds) on a thread, then listen.

        wait=True returns once listening, or once a failure mode has exited (see exit_code)."""
        if self._thread is not None:
            return self
        self.state = "booting"
        self._thread = threading.Thread(target=self._boot, name=f"vllm-sim-boot-{self.port}", daemon=True)
        self._thread.start()
        if wait:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not (self._ready.is_set() or self._done.is_set()):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._ready.wait(0.05 if left is None else min(0.05, left))
        return self

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """True once listening; raises SimExited if it died first; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready.is_set() and self.state in ("ready",):
                return True
            if self._done.is_set():
                if self.exit_code not in (None, 0):
                    raise SimExited(self.exit_code, self.log_lines[-5:])
                return False
            self._ready.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        return self._ready.is_set()

    def wait_exit(self, timeout: float = 30.0) -> int | None:
        """Block until the simulated process exits; returns its exit code (None on timeout)."""
        self._done.wait(timeout)
        return self.exit_code

    def stop(self) -> None:
        with self._lock:
            if self.state == "stopped":
                return
            if self.state not in ("exited",):
                self.state = "stopped"
            self._stop_ev.set()
        self._loop.stop()
        if self.exit_code is None:
            self.exit_code = 0
        self._done.set()

    def __enter__(self) -> "VllmSim":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def stopping(self) -> bool:
        return self._stop_ev.is_set()

    def sleep(self, seconds: float) -> bool:
        """Interruptible sleep; False when the server is stopping."""
        if seconds > 0:
            return not self._stop_ev.wait(seconds)
        return not self._stop_ev.is_set()

    # -- logging ----------------------------------------------------------------------------
    def log(self, line: str) -> None:
        self.log_lines.append(line)
        cfg = self.config
        if cfg.on_log is not None:
            cfg.on_log(line)
        if not cfg.quiet:
            stream = cfg.log_stream or sys.stdout
            try:
                stream.write(line + "\n")
                stream.flush()
            except (ValueError, OSError):
                pass

    def _boot(self) -> None:
        try:
            for delay, item in boot_script(self.config, self.port):
                if not self.sleep(delay):
                    return
                if item == LISTEN:
                    if self.config.fail == "hang":
                        self._loop.hold = True
                    self._server.activate()
                    self._loop.start()
                    self.ready_at = time.time()
                    self.state = "ready"
                    self._ready.set()
                elif isinstance(item, tuple) and item[0] == "EXIT":
                    self._exit(int(item[1]))
                    return
                else:
                    self.log(str(item))
            if self.config.fail == "crash-after-ready":
                if self.sleep(self.config.crash_after_s):
                    self.state = "dead"        # /health answers 503 while the server shuts down
                    for line in crash_lines(self.config):
                        self.log(line)
                    self.sleep(0.2)
                    self._exit(1)
        except Exception as exc:  # pragma: no cover - a bug in the simulator itself
            self.log(f"simulator error: {exc!r}")
            self._exit(1)

    def _exit(self, code: int) -> None:
        with self._lock:
            self.exit_code = code
            self.state = "exited"
            self._stop_ev.set()
        self._loop.stop()
        self._done.set()

    # -- request recording ------------------------------------------------------------------
    def record(self, method: str, path: str, headers, body_raw: bytes, body_json) -> dict:
        auth = headers.get("Authorization")
        token = auth[7:] if auth and auth.startswith("Bearer ") else (auth or None)
        key = self.config.api_key
        hdrs = {k.lower(): v for k, v in headers.items() if k.lower() not in ("authorization", "x-api-key")}
        entry = {
            "time": time.time(), "method": method, "path": path, "json": body_json,
            "body_bytes": len(body_raw),
            "headers": hdrs,
            "auth_present": auth is not None,
            "auth_ok": bool(key) and auth == f"Bearer {key}",
            "auth_sha256": sha256_hex(token) if token else None,
        }
        self.requests.append(entry)
        if self.config.record:
            with self._record_lock, open(self.config.record, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")
        return entry

    def metrics_text(self) -> str:
        from launcher.sim.vllm_http import render_metrics
        return render_metrics(self)


def _pid() -> int:
    return os.getpid()
