"""Every probe result and decision: one JSON line each in the journal, and the console."""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Callable, TextIO

from launcher.auth import redact

QUIET_EVENTS = {"probe", "round"}  # on the console only when a probe fails, or with verbose (all are in the journal)


class Journal:
    def __init__(self, path: str | Path | None = None, *, console: TextIO | None = sys.stderr,
                 wall: Callable[[], float] = time.time, verbose: bool = False):
        self.path = Path(path) if path else None
        self.console = console
        self.wall = wall
        self.verbose = verbose
        self.events: list[dict] = []
        self._lock = threading.Lock()
        self._fh = None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def write(self, event: str, node: str | None = None, **data) -> dict:
        rec = {"ts": round(self.wall(), 3), "event": event}
        if node is not None:
            rec["node"] = node
        rec.update(data)
        line = redact(json.dumps(rec, default=str))
        with self._lock:
            self.events.append(json.loads(line))
            if self._fh:
                self._fh.write(line + "\n")
                self._fh.flush()
            if self.console is not None and (self.verbose or event not in QUIET_EVENTS or data.get("service_ok") is False):
                self.console.write(redact(self.render(rec)) + "\n")
                self.console.flush()
        return rec

    @staticmethod
    def render(rec: dict) -> str:
        t = time.strftime("%H:%M:%S", time.localtime(rec.get("ts", 0)))
        node = rec.get("node", "-")
        ev = rec.get("event")
        if ev == "probe":
            return f"{t} {node}: probe {'ok' if rec.get('service_ok') else 'FAILED'}" + (
                f" ({rec['reason']})" if rec.get("reason") else "") + (
                f"; ssh {'ok' if rec['ssh_ok'] else 'DOWN'}" if rec.get("ssh_ok") is not None else "")
        if ev == "decision":
            action = "skipped (paused)" if rec.get("skipped") == "paused" else rec.get("action")
            return f"{t} {node}: {action}: {rec.get('reason')}"
        if ev == "cycle":
            member = f" (member of {rec['member_of']}'s deployment)" if rec.get("member_of") else ""
            if rec.get("dry_run"):
                return f"{t} {node}{member}: DRY RUN: would {rec.get('would')}"
            if rec.get("error"):
                return (f"{t} {node}{member}: power device FAILED: {rec['error']}; "
                        + (f"it did switch {', '.join(rec.get('switched') or [])}" if rec.get("switched")
                           else "nothing switched, not charged to the budget")
                        + (f"; next try after {rec['retry_after_s']:g} s" if rec.get("retry_after_s") is not None else ""))
            return (f"{t} {node}{member}: power {'OK' if rec.get('ok') else 'FAILED'}: {rec.get('message')} "
                    f"(before {rec.get('before')}, confirmed {rec.get('after')}); sent: " + " | ".join(rec.get("sent") or []))
        if ev == "watch":
            return (f"{t} {node}: watching {', '.join(rec.get('urls') or []) or 'no URL'} (from {rec.get('source')})"
                    + (f"; ssh {rec['ssh']}" if rec.get("ssh") else "") + f"; power {rec.get('power') or 'none'}"
                    + (f"; restart: {rec['restart']}" if rec.get("restart") else ""))
        if ev == "round":
            return f"{t} round {rec.get('n')}: {rec.get('ok')}/{rec.get('nodes')} ok in {rec.get('wall_s')} s"
        extra = {k: v for k, v in rec.items() if k not in ("ts", "event", "node")}
        return f"{t} {node}: {ev}: " + ", ".join(f"{k}={v}" for k, v in extra.items())

    def close(self) -> None:
        if self._fh:
            self._fh.close()
            self._fh = None
