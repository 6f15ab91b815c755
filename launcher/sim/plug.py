"""Simulated power devices: Shelly gen1/gen2, Tasmota and Home Assistant (Redfish in redfish.py).

Each one holds a power state, records every request it receives (`.requests`), and calls
`on_change(on)` whenever the state flips, so a test can stop a node's simulated server while it is
"off" and start it again when it is "on". The wire formats follow ../shared/reference/watchdog.md:
they stand for the real devices' HTTP APIs (only the calls the drivers use, plus a few neighbours).
Timed behaviour (Shelly toggle_after, Tasmota Backlog Delay) runs on real timers, as on the device.
"""
from __future__ import annotations

import base64
import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, unquote, urlsplit

KINDS = ("shelly", "shelly-gen1", "tasmota", "homeassistant", "redfish")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sim-power"

    def log_message(self, format, *args):  # noqa: A002
        pass

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        dev: PowerDevice = self.server.device  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        req = {"method": method, "path": parts.path, "raw_path": self.path, "query": query, "body": body,
               "authorization": self.headers.get("Authorization"), "t": time.time()}
        dev._record(req)
        status, obj = dev.handle(method, unquote(parts.path), query, body, self.headers)
        data = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        if status == 401 and dev.www_authenticate:
            self.send_header("WWW-Authenticate", dev.www_authenticate)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PATCH(self):
        self._dispatch("PATCH")


class PowerDevice:
    """Base: an HTTP server on 127.0.0.1 holding `on`, recording requests, calling on_change."""

    kind = ""
    www_authenticate: str | None = None

    def __init__(self, *, on: bool = True, host: str = "127.0.0.1", port: int = 0,
                 on_change: Callable[[bool], None] | None = None, tls: tuple[str, str] | None = None):
        self.on = on
        self.tls = tls  # (certfile, keyfile): serve HTTPS, e.g. a BMC's self-signed certificate
        self.on_change = on_change
        self.requests: list[dict] = []
        self.changes: list[tuple[float, bool]] = []
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self._server = _Server((host, port), _Handler)
        self._server.device = self  # type: ignore[attr-defined]
        if tls:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self._thread: threading.Thread | None = None
        self._hooks: queue.Queue = queue.Queue()
        self._hook_thread = threading.Thread(target=self._run_hooks, daemon=True, name=f"sim-{self.kind}-hooks")

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> "PowerDevice":
        self._hook_thread.start()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.5},
                                        daemon=True, name=f"sim-{self.kind}")
        self._thread.start()
        return self

    def stop(self) -> None:
        for t in self._timers:
            t.cancel()
        if self._thread:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
        self._hooks.put(None)
        if self._hook_thread.is_alive():
            self._hook_thread.join(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- state ------------------------------------------------------------------------------
    def _record(self, req: dict) -> None:
        with self._lock:
            self.requests.append(req)

    def set_power(self, on: bool) -> bool:
        """Switch; returns the previous state. on_change runs (in order) on a hook thread."""
        with self._lock:
            was, self.on = self.on, bool(on)
            if was != self.on:
                self.changes.append((time.time(), self.on))
                self._hooks.put(self.on)
        return was

    def later(self, seconds: float, fn: Callable[[], None]) -> None:
        t = threading.Timer(seconds, fn)
        t.daemon = True
        self._timers.append(t)
        t.start()

    def _run_hooks(self) -> None:
        while True:
            item = self._hooks.get()
            if item is None:
                return
            if self.on_change is not None:
                try:
                    self.on_change(item)
                except Exception:  # noqa: BLE001 - a hook's failure must not kill the device
                    pass

    def handle(self, method: str, path: str, query: dict, body, headers) -> tuple[int, object]:
        raise NotImplementedError


class ShellySim(PowerDevice):
    """Shelly gen2 (RPC) or gen1 (/relay/N). No authentication (a plug on a trusted LAN)."""

    def __init__(self, *, generation: int = 2, **kw):
        super().__init__(**kw)
        self.generation = generation
        self.kind = f"shelly-gen{generation}"

    def _toggle_later(self, after: float, to: bool) -> None:
        self.later(after, lambda: self.set_power(to))

    def handle(self, method, path, query, body, headers):
        if path == "/shelly":
            return 200, {"gen": self.generation, "id": "shelly-sim", "app": "PlusPlugS" if self.generation >= 2 else None}
        if self.generation >= 2:
            if path == "/rpc/Switch.GetStatus":
                return 200, {"id": int(query.get("id", 0)), "source": "sim", "output": self.on,
                             "apower": 42.0 if self.on else 0.0, "voltage": 230.1}
            if path == "/rpc" and method == "POST" and isinstance(body, dict):
                rid, m, params = body.get("id"), body.get("method"), body.get("params") or {}
            elif path == "/rpc/Switch.Set":
                rid, m = None, "Switch.Set"
                params = {"id": int(query.get("id", 0)), "on": query.get("on") == "true"}
                if "toggle_after" in query:
                    params["toggle_after"] = float(query["toggle_after"])
            else:
                return 404, {"code": 404, "message": f"No handler for {path}"}
            if m == "Switch.GetStatus":
                return 200, {"id": rid, "src": "shelly-sim", "result": {"id": 0, "output": self.on}}
            if m != "Switch.Set" or not isinstance(params.get("on"), bool):
                return 200, {"id": rid, "src": "shelly-sim", "error": {"code": -103, "message": "Invalid argument"}}
            was = self.set_power(params["on"])
            if params.get("toggle_after"):
                self._toggle_later(float(params["toggle_after"]), not params["on"])
            return 200, {"id": rid, "src": "shelly-sim", "result": {"was_on": was}}
        if path.startswith("/relay/"):
            turn = query.get("turn")
            if turn in ("on", "off", "toggle"):
                self.set_power(not self.on if turn == "toggle" else turn == "on")
                if query.get("timer"):
                    self._toggle_later(float(query["timer"]), not self.on)
            elif turn is not None:
                return 400, {"error": "Bad turn!"}
            return 200, {"ison": self.on, "has_timer": False, "timer_duration": 0, "source": "http"}
        return 404, None


class TasmotaSim(PowerDevice):
    """Tasmota `/cm?cmnd=…` with optional user/password in the query (as the firmware checks them)."""

    kind = "tasmota"

    def __init__(self, *, username: str = "admin", password: str | None = None, **kw):
        super().__init__(**kw)
        self.username, self.password = username, password

    def _power(self, arg: str) -> dict:
        arg = arg.strip().lower()
        if arg in ("on", "1"):
            self.set_power(True)
        elif arg in ("off", "0"):
            self.set_power(False)
        elif arg in ("toggle", "2"):
            self.set_power(not self.on)
        return {"POWER": "ON" if self.on else "OFF"}

    def _run(self, cmd: str) -> dict:
        name, _, arg = cmd.strip().partition(" ")
        if name.lower() in ("power", "power1"):
            return self._power(arg)
        return {"Command": "Unknown"}

    def _backlog(self, cmds: list[str]) -> None:
        def run():
            for c in cmds:
                name, _, arg = c.strip().partition(" ")
                if name.lower() == "delay":
                    time.sleep(max(0, int(arg or 0)) / 10.0)
                else:
                    self._run(c)
        threading.Thread(target=run, daemon=True, name="tasmota-backlog").start()

    def handle(self, method, path, query, body, headers):
        if path != "/cm":
            return 404, None
        if self.password is not None and (query.get("user") != self.username or query.get("password") != self.password):
            return 401, {"WARNING": "Need user=<username>&password=<password>"}
        cmnd = query.get("cmnd", "")
        name, _, rest = cmnd.partition(" ")
        if name.lower() == "backlog":
            self._backlog([c for c in rest.split(";") if c.strip()])
            return 200, {"WARNING": "Enable weblog 2 if response expected"}
        return 200, self._run(cmnd)


class HomeAssistantSim(PowerDevice):
    """Home Assistant REST API for switch entities, Bearer token checked when set."""

    kind = "homeassistant"

    def __init__(self, *, entity_id: str = "switch.node1", token: str | None = None, **kw):
        super().__init__(**kw)
        self.entity_id, self.token = entity_id, token

    def _state(self) -> dict:
        return {"entity_id": self.entity_id, "state": "on" if self.on else "off", "attributes": {},
                "last_changed": "2026-01-01T00:00:00+00:00"}

    def handle(self, method, path, query, body, headers):
        if self.token is not None and headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"message": "401: Unauthorized"}
        if path == "/api/":
            return 200, {"message": "API running."}
        if path.startswith("/api/states/") and method == "GET":
            if path.rsplit("/", 1)[-1] != self.entity_id:
                return 404, {"message": "Entity not found."}
            return 200, self._state()
        if path.startswith("/api/services/") and method == "POST":
            service = path.rsplit("/", 1)[-1]
            if not isinstance(body, dict) or body.get("entity_id") != self.entity_id:
                return 200, []  # HA answers an empty change list for unknown entities
            if service in ("turn_on", "turn_off", "toggle"):
                self.set_power(not self.on if service == "toggle" else service == "turn_on")
                return 200, [self._state()]
            return 400, {"message": f"Service {service} not found."}
        return 404, {"message": "Not found"}


def basic_ok(headers, username: str, password: str | None) -> bool:
    if password is None:
        return True
    want = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    return headers.get("Authorization") == want


def make(kind: str, **kw) -> PowerDevice:
    """A device by CLI kind: shelly (gen2), shelly-gen1, tasmota, homeassistant, redfish."""
    if kind in ("shelly", "shelly-gen2"):
        return ShellySim(generation=2, **kw)
    if kind == "shelly-gen1":
        return ShellySim(generation=1, **kw)
    if kind == "tasmota":
        return TasmotaSim(**kw)
    if kind == "homeassistant":
        return HomeAssistantSim(**kw)
    if kind == "redfish":
        from launcher.sim.redfish import RedfishSim

        return RedfishSim(**kw)
    raise ValueError(f"unknown simulated power device {kind!r}; known: {', '.join(KINDS)}")
