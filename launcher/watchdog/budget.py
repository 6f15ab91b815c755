"""Budgets and brakes: at most K power cycles per node per window (kept in a state file, so a
restarted watchdog remembers), a random delay before acting, a pause file, and the "gave up" state
that alerts a human (a command or a webhook) instead of cycling again."""
from __future__ import annotations

import json
import os
import random
import shlex
import subprocess
from pathlib import Path
from typing import Callable


class Budget:
    def __init__(self, *, max_cycles: int = 3, window: float = 6 * 3600.0, path: str | Path | None = None,
                 wall: Callable[[], float] | None = None):
        import time

        self.max_cycles, self.window = max_cycles, window
        self.path = Path(path) if path else None
        self.wall = wall or time.time
        self._cycles: dict[str, list[float]] = {}
        if self.path and self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                self._cycles = {k: [float(x) for x in v] for k, v in (data.get("cycles") or {}).items()}
            except (OSError, ValueError, AttributeError):
                self._cycles = {}

    def _recent(self, node: str) -> list[float]:
        now = self.wall()
        keep = [t for t in self._cycles.get(node, []) if now - t < self.window]
        self._cycles[node] = keep
        return keep

    def used(self, node: str) -> int:
        return len(self._recent(node))

    def left(self, node: str) -> int:
        return max(0, self.max_cycles - self.used(node))

    def record(self, node: str) -> None:
        self._recent(node).append(self.wall())
        self._save()

    def _save(self) -> None:
        if not self.path:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"cycles": self._cycles}))
        os.replace(tmp, self.path)


def random_delay(delay_max: float, rng: random.Random | None = None) -> float:
    return (rng or random).uniform(0.0, max(0.0, delay_max))


def paused(pause_file: str | Path | None) -> bool:
    return bool(pause_file) and Path(pause_file).exists()


def webhook_origin(url: str) -> str:
    """scheme://host[:port] only: Slack, Discord and Teams webhooks carry their token in the path (and
    some services in the query or user info), so nothing past the host is ever shown."""
    from urllib.parse import urlsplit

    try:
        u = urlsplit(url)
        host = u.hostname or "?"
        port = f":{u.port}" if u.port else ""
    except ValueError:
        return "(webhook URL hidden)"
    return f"{u.scheme or 'https'}://{host}{port}"


class Alerter:
    """Tells a human. command: run with /bin/sh, the event in LAUNCHER_WATCHDOG_* variables (never
    interpolated into the command). webhook: POST JSON {text, node, event, reason} (Slack-style `text`)."""

    def __init__(self, *, command: str | None = None, webhook: str | None = None, gave_up_dir: str | Path | None = None,
                 timeout: float = 15.0):
        self.command, self.webhook, self.timeout = command, webhook, timeout
        if webhook:  # the whole URL is a secret: masked wherever it might show (errors, reprs)
            from launcher.auth import register_secret

            register_secret(webhook)
        self.gave_up_dir = Path(gave_up_dir) if gave_up_dir else None
        self.sent: list[dict] = []

    def describe(self) -> str:
        parts = []
        if self.command:
            parts.append(f"command {shlex.quote(self.command)}")
        if self.webhook:
            parts.append(f"webhook {webhook_origin(self.webhook)}")
        return " and ".join(parts) or "no alert configured (journal and console only)"

    def alert(self, node: str, event: str, reason: str) -> dict:
        text = f"launch watchdog: {node}: {event}: {reason}"
        result: dict = {"node": node, "event": event, "reason": reason, "via": []}
        if self.gave_up_dir and event == "gave-up":
            self.gave_up_dir.mkdir(parents=True, exist_ok=True)
            (self.gave_up_dir / f"{node}.gave-up").write_text(text + "\n")
            result["via"].append(f"file {self.gave_up_dir / (node + '.gave-up')}")
        if self.command:
            env = dict(os.environ, LAUNCHER_WATCHDOG_NODE=node, LAUNCHER_WATCHDOG_EVENT=event,
                       LAUNCHER_WATCHDOG_REASON=reason, LAUNCHER_WATCHDOG_TEXT=text)
            try:
                p = subprocess.run(["/bin/sh", "-c", self.command], env=env, capture_output=True, text=True,
                                   timeout=self.timeout, stdin=subprocess.DEVNULL)
                result["via"].append(f"command exit {p.returncode}")
            except subprocess.TimeoutExpired:
                result["via"].append(f"command timed out after {self.timeout:g} s")
        if self.webhook:
            try:
                from launcher.http import client

                with client(connect=self.timeout, read=self.timeout, retries=2) as c:
                    r = c.post(self.webhook, json={"text": text, "node": node, "event": event, "reason": reason})
                result["via"].append(f"webhook HTTP {r.status_code}")
            except Exception as exc:  # noqa: BLE001 - an alert failure is journaled, never fatal
                result["via"].append(f"webhook failed: {type(exc).__name__}")
        self.sent.append(result)
        return result
