"""Small HTTP helpers shared by the simulators (stdlib only, cheap enough for 64 servers in one process).

`SimHTTPServer` binds at construction but only listens when `activate()` is called: until then a
client's connect is refused, exactly like a real server that is still booting. `ServeLoop` runs the
accept loop on one thread with a wake-up pipe, so an idle server costs no CPU and stops at once.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import selectors
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable


def new_id(prefix: str = "", nbytes: int = 16) -> str:
    return f"{prefix}{secrets.token_hex(nbytes)}"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SimHTTPServer(ThreadingHTTPServer):
    """Bound at once (so the port is known), listening only after activate()."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler], owner: Any = None):
        super().__init__((host, port), handler, bind_and_activate=False)
        self.owner = owner
        try:
            self.server_bind()
        except OSError:
            self.socket.close()
            raise

    @property
    def port(self) -> int:
        return self.socket.getsockname()[1]

    def activate(self) -> None:
        self.server_activate()

    def handle_error(self, request, client_address) -> None:  # quiet: clients hang up mid-stream
        pass


class ServeLoop:
    """Accept loop on a daemon thread; stop() returns at once (a wake-up socketpair, no polling).

    hold=True makes it accept connections and keep them open without ever answering (the `hang`
    failure: TCP connects, no HTTP reply)."""

    def __init__(self, server: SimHTTPServer, name: str = "sim-http"):
        self.server = server
        self._wake_r, self._wake_w = socket.socketpair()
        self._stop = False
        self.hold = False
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start accepting; call after the server listens (SimHTTPServer.activate())."""
        self._thread.start()

    def _run(self) -> None:
        # Never block in accept(): a readiness report can be stale (another thread accepted, or
        # the socket was not listening yet), and a blocked accept would not see stop().
        self.server.socket.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(self.server.socket, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stop:
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r or self._stop:
                        continue
                    if self.hold:
                        try:
                            conn, _addr = self.server.socket.accept()
                            self._held.append(conn)
                        except OSError:  # includes BlockingIOError
                            pass
                    else:
                        self.server._handle_request_noblock()
        finally:
            sel.close()

    def stop(self) -> None:
        self._stop = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread.ident is not None and self._thread.is_alive() \
                and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        for conn in self._held:
            try:
                conn.close()
            except OSError:
                pass
        self._held.clear()
        self.server.server_close()
        self._wake_r.close()
        self._wake_w.close()


class JSONHandler(BaseHTTPRequestHandler):
    """Request handler with JSON/SSE helpers. Subclasses implement route(method)."""

    protocol_version = "HTTP/1.1"
    server_version = "uvicorn"
    sys_version = ""
    timeout = 60  # idle keep-alive connections give their thread back
    disable_nagle_algorithm = True  # TCP_NODELAY like uvicorn: headers and body written apart cost no 40 ms ACK wait

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass

    # -- reading --------------------------------------------------------------------------
    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    @staticmethod
    def parse_json(raw: bytes) -> Any:
        if not raw:
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return None

    # -- writing --------------------------------------------------------------------------
    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode("utf-8")
        self.send_bytes(status, data, "application/json", headers)

    def send_bytes(self, status: int, data: bytes, ctype: str = "text/plain; charset=utf-8",
                   headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def sse(self, obj: Any, event: str | None = None) -> None:
        payload = obj if isinstance(obj, str) else json.dumps(obj)
        head = f"event: {event}\n" if event else ""
        self.wfile.write(f"{head}data: {payload}\n\n".encode("utf-8"))
        self.wfile.flush()

    def stream_events(self, events: Iterable[tuple[str | None, Any]],
                      pace: Callable[[], bool] | None = None) -> None:
        """Write SSE events; pace() is called between events and returns False to abort."""
        self.start_sse()
        try:
            for event, obj in events:
                if pace is not None and not pace():
                    return
                self.sse(obj, event)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self) -> None:
        self.route("GET")

    def do_POST(self) -> None:
        self.route("POST")

    def do_DELETE(self) -> None:
        self.route("DELETE")

    def route(self, method: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class ServedSim:
    """Lifecycle shared by simulators that own a SimHTTPServer + ServeLoop (self.server, self.loop,
    self.host, self._port): start/stop, url, context manager."""

    server: SimHTTPServer
    loop: ServeLoop
    host: str
    _port: int

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self):
        self.server.activate()
        self.loop.start()
        return self

    def stop(self) -> None:
        self.loop.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
