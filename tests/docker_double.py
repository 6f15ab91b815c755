"""A Docker Engine API double on a unix socket (reusable by any test that drives the docker SDK).

It stands for the daemon's HTTP API as the docker SDK (docker-py 7) calls it: `/_ping`, `/version`,
`/images/{name}/json`, `/images/create` (pull, a JSON-lines progress stream), containers
create/start/stop/kill/wait/json/logs/delete, `/containers/json?filters=` (label, name, status),
exec create/start/json. Container logs use the daemon's multiplexed stream format for non-tty
containers (8-byte header: stream type, 3 zero bytes, big-endian length), as real Docker does.
Nothing runs: tests script outputs and outcomes.

  double = DockerDouble(path).start();  double.url  -> "unix://…"
  double.calls                  every request: Call(method, path, query, body)
  double.containers[id]         inspect-shaped dicts (Config, HostConfig, State, Name, Id)
  double.images                 names present;  double.pull_events  what a pull streams
  double.add_log(c, text, stream=1)   append log output (1 stdout, 2 stderr)
  double.exit(c, code, oom=False)     the container's main process ends (oom -> OOMKilled + 137)
  double.on_exec = fn(exec) -> None | (bytes, code)   None: keeps running (detached server);
                                                      tuple: output and exit code, ends at once
  double.finish_exec(exec_id, code)
  double.follows                 log streams being followed right now (a closed client ends its own)
Fixture: `docker_double` (function-scoped) from `from docker_double import docker_double`.
"""
from __future__ import annotations

import json
import re
import secrets
import socketserver
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

API_VERSION = "1.45"


@dataclass
class Call:
    method: str
    path: str  # without the /v1.xx prefix
    query: dict
    body: object


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class DockerDouble:
    def __init__(self, path: str | Path):
        self.path = str(path)
        self.url = f"unix://{self.path}"
        self.calls: list[Call] = []
        self.containers: dict[str, dict] = {}
        self.logs: dict[str, list[tuple[int, bytes]]] = {}
        self.execs: dict[str, dict] = {}
        self.images: set[str] = set()
        self.pull_events: list[dict] = [
            {"status": "Pulling from library/x", "id": "latest"},
            {"status": "Downloading", "id": "layer1", "progressDetail": {"current": 50, "total": 100}},
            {"status": "Downloading", "id": "layer1", "progressDetail": {"current": 100, "total": 100}},
            {"status": "Pull complete", "id": "layer1", "progressDetail": {}},
            {"status": "Status: Downloaded newer image"}]
        self.pull_error: str | None = None
        self.on_exec = None
        self.follows = 0  # followed log streams open right now (`docker logs -f` clients)
        self.cond = threading.Condition()
        self._server: _Server | None = None

    # -- control ---------------------------------------------------------------------------------
    def start(self) -> "DockerDouble":
        double = self

        class Handler(_Handler):
            pass

        Handler.double = double
        self._server = _Server(self.path, Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def close(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def calls_to(self, method: str, pattern: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and re.fullmatch(pattern, c.path)]

    def resolve(self, ref: str) -> dict | None:
        for c in self.containers.values():
            if c["Id"] == ref or c["Name"] == f"/{ref}" or (len(ref) >= 6 and c["Id"].startswith(ref)):
                return c
        return None

    def add_log(self, ref: str, text: str, stream: int = 1) -> None:
        with self.cond:
            self.logs[self.resolve(ref)["Id"]].append((stream, text.encode()))
            self.cond.notify_all()

    def exit(self, ref: str, code: int = 0, *, oom: bool = False) -> None:
        with self.cond:
            st = self.resolve(ref)["State"]
            st.update(Status="exited", Running=False, Pid=0, ExitCode=137 if oom else code,
                      OOMKilled=oom, FinishedAt=_now())
            for e in self.execs.values():
                if e["ContainerID"] == self.resolve(ref)["Id"] and e["Running"]:
                    e.update(Running=False, ExitCode=137, Pid=0)
            self.cond.notify_all()

    def finish_exec(self, exec_id: str, code: int) -> None:
        with self.cond:
            self.execs[exec_id].update(Running=False, ExitCode=code, Pid=0)
            self.cond.notify_all()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    double: DockerDouble

    def log_message(self, *args):  # unix socket: no client address; keep test output quiet
        pass

    def address_string(self):
        return "unix"

    # -- plumbing --------------------------------------------------------------------------------
    def _reply(self, code: int, body=None, *, ctype="application/json"):
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(code)
        self.send_header("Api-Version", API_VERSION)
        if code != 204:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if code != 204:
            self.wfile.write(data)

    def _stream_start(self, ctype: str, *, chunked: bool = True):
        """Streams (pull progress, followed logs) are chunked, as Go's net/http sends them; an
        exec's hijacked raw stream is not (it ends when the connection closes)."""
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Connection", "close")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        self._chunked = chunked

    def _write(self, data: bytes) -> bool:
        if not data:
            return True
        try:
            if self._chunked:
                data = b"%x\r\n%s\r\n" % (len(data), data)
            self.wfile.write(data)
            self.wfile.flush()
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _stream_end(self):
        if self._chunked:
            try:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

    def _dispatch(self, method: str):
        u = urlsplit(self.path)
        path = re.sub(r"^/v\d+\.\d+", "", unquote(u.path))
        query = {k: v[-1] for k, v in parse_qs(u.query).items()}
        body = None
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            raw = self.rfile.read(n)
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        d = self.double
        with d.cond:
            d.calls.append(Call(method, path, query, body))
        for pat, meth, fn in ROUTES:
            m = re.fullmatch(pat, path)
            if m and meth == method:
                return fn(self, d, query, body, *m.groups())
        self._reply(404, {"message": f"page not found: {method} {path}"})

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_HEAD(self):
        self._dispatch("HEAD")

    # -- system / images -------------------------------------------------------------------------
    def ping(self, d, q, b):
        self._reply(200, b"OK", ctype="text/plain")

    def version(self, d, q, b):
        self._reply(200, {"Version": "27.0.0-double", "ApiVersion": API_VERSION, "MinAPIVersion": "1.24",
                          "Os": "linux", "Arch": "amd64"})

    def image(self, d, q, b, name):
        if name in d.images or f"{name}:latest" in d.images:
            return self._reply(200, {"Id": "sha256:" + "ab" * 32, "RepoTags": [name]})
        self._reply(404, {"message": f"No such image: {name}"})

    def pull(self, d, q, b):
        name = q.get("fromImage", "") + (f":{q['tag']}" if q.get("tag") else "")
        self._stream_start("application/json")
        for ev in d.pull_events:
            self._write(json.dumps(ev).encode() + b"\r\n")
        if d.pull_error:
            self._write(json.dumps({"errorDetail": {"message": d.pull_error}, "error": d.pull_error}).encode())
            return self._stream_end()
        d.images.add(name)
        self._stream_end()

    # -- containers ------------------------------------------------------------------------------
    def _get(self, d, ref):
        c = d.resolve(ref)
        if c is None:
            self._reply(404, {"message": f"No such container: {ref}"})
        return c

    def create(self, d, q, b):
        name = q.get("name") or f"double_{secrets.token_hex(3)}"
        if d.resolve(name):
            return self._reply(409, {"message": f'Conflict. The container name "/{name}" is already in use'})
        if b["Image"] not in d.images and f"{b['Image']}:latest" not in d.images:
            return self._reply(404, {"message": f"No such image: {b['Image']}"})
        cid = secrets.token_hex(32)
        config = {k: v for k, v in b.items() if k != "HostConfig"}
        with d.cond:
            d.containers[cid] = {
                "Id": cid, "Name": f"/{name}", "Created": _now(), "Image": "sha256:" + "ab" * 32,
                "Config": {"Tty": False, "Labels": {}, **config}, "HostConfig": b.get("HostConfig") or {},
                "State": {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
                          "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
                          "StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z"}}
            d.logs[cid] = []
        self._reply(201, {"Id": cid, "Warnings": []})

    def inspect(self, d, q, b, ref):
        c = self._get(d, ref)
        if c:
            self._reply(200, c)

    def start(self, d, q, b, ref):
        c = self._get(d, ref)
        if c:
            with d.cond:
                c["State"].update(Status="running", Running=True, Pid=4242, StartedAt=_now(), ExitCode=0)
            self._reply(204)

    def stop(self, d, q, b, ref, code=143):
        c = self._get(d, ref)
        if c:
            if c["State"]["Running"]:
                d.exit(ref, code)
            self._reply(204)

    def kill(self, d, q, b, ref):
        self.stop(d, q, b, ref, code=137)

    def wait(self, d, q, b, ref):
        c = self._get(d, ref)
        if c:
            with d.cond:
                d.cond.wait_for(lambda: not c["State"]["Running"], timeout=30)
            self._reply(200, {"StatusCode": c["State"]["ExitCode"], "Error": None})

    def remove(self, d, q, b, ref):
        c = self._get(d, ref)
        if c:
            if c["State"]["Running"] and q.get("force") not in ("1", "true", "True"):
                return self._reply(409, {"message": "You cannot remove a running container. Stop it first"})
            with d.cond:
                del d.containers[c["Id"]]
            self._reply(204)

    def logs_(self, d, q, b, ref):
        c = self._get(d, ref)
        if not c:
            return
        want = {1} if q.get("stdout") in ("1", "true") else set()
        want |= {2} if q.get("stderr") in ("1", "true") else set()
        with d.cond:  # one snapshot: a line added while we answer is sent by the follow loop, not lost
            snap = list(d.logs[c["Id"]])
        entries = [e for e in snap if e[0] in want]
        tail = q.get("tail", "all")
        if tail != "all":
            entries = entries[-int(tail):] if int(tail) else []
        data = b"".join(frame(s, t) for s, t in entries)
        if q.get("follow") not in ("1", "true"):
            return self._reply(200, data, ctype="application/vnd.docker.multiplexed-stream")
        self._stream_start("application/vnd.docker.multiplexed-stream")
        with d.cond:
            d.follows += 1
        try:
            if not self._write(data):
                return
            sent = len(snap)
            while True:
                with d.cond:
                    d.cond.wait_for(lambda: len(d.logs[c["Id"]]) > sent or not c["State"]["Running"], timeout=0.1)
                    new, sent = d.logs[c["Id"]][sent:], len(d.logs[c["Id"]])
                    running = c["State"]["Running"]
                if new and not self._write(b"".join(frame(s, t) for s, t in new if s in want)):
                    return
                if not running and not new:
                    return self._stream_end()
                if self._client_gone():  # the client closed its end (what dockerd notices too)
                    return
        finally:
            with d.cond:
                d.follows -= 1
                d.cond.notify_all()

    def _client_gone(self) -> bool:
        import select
        import socket

        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def list_(self, d, q, b):
        filters = json.loads(q.get("filters") or "{}")
        out = []
        for c in list(d.containers.values()):
            if q.get("all") not in ("1", "true") and not c["State"]["Running"]:
                continue
            labels = c["Config"].get("Labels") or {}
            if not all((lf.split("=", 1)[0] in labels) if "=" not in lf
                       else labels.get(lf.split("=", 1)[0]) == lf.split("=", 1)[1]
                       for lf in _filter_values(filters.get("label"))):
                continue
            names = _filter_values(filters.get("name"))
            if names and not any(n.lstrip("/") in c["Name"] for n in names):
                continue
            status = _filter_values(filters.get("status"))
            if status and c["State"]["Status"] not in status:
                continue
            out.append({"Id": c["Id"], "Names": [c["Name"]], "Image": c["Config"].get("Image"),
                        "Labels": labels, "State": c["State"]["Status"], "Status": c["State"]["Status"]})
        self._reply(200, out)

    # -- exec ------------------------------------------------------------------------------------
    def exec_create(self, d, q, b, ref):
        c = self._get(d, ref)
        if not c:
            return
        if not c["State"]["Running"]:
            return self._reply(409, {"message": f"Container {c['Id']} is not running"})
        eid = secrets.token_hex(32)
        with d.cond:
            d.execs[eid] = {"ID": eid, "ContainerID": c["Id"], "Running": False, "ExitCode": None, "Pid": 0,
                            "Env": b.get("Env") or [], "Cmd": b.get("Cmd") or [], "started": False,
                            "ProcessConfig": {"entrypoint": (b.get("Cmd") or [""])[0],
                                              "arguments": (b.get("Cmd") or [])[1:], "tty": False}}
        self._reply(201, {"Id": eid})

    def exec_start(self, d, q, b, eid):
        e = d.execs.get(eid)
        if e is None:
            return self._reply(404, {"message": f"No such exec instance: {eid}"})
        result = d.on_exec(e) if d.on_exec else (b"", 0)
        with d.cond:
            e.update(started=True, Running=result is None, Pid=5000 + len(d.execs))
            if result is not None:
                e.update(Running=False, ExitCode=result[1], Pid=0)
        detach = isinstance(b, dict) and b.get("Detach")
        if detach:
            return self._reply(200, b"", ctype="text/plain")
        # real Docker hijacks the connection: 200 (or 101 on Upgrade), a raw stream, then close
        self._stream_start("application/vnd.docker.raw-stream", chunked=False)
        if result is not None and result[0]:
            self._write(frame(1, result[0]))

    def exec_inspect(self, d, q, b, eid):
        e = d.execs.get(eid)
        if e is None:
            return self._reply(404, {"message": f"No such exec instance: {eid}"})
        self._reply(200, {k: v for k, v in e.items() if k not in ("Env", "Cmd", "started")})


def _filter_values(v) -> list[str]:
    if not v:
        return []
    if isinstance(v, dict):  # {"key=value": true} (newer clients)
        return [k for k, on in v.items() if on]
    return list(v)


ROUTES = [
    (r"/_ping", "GET", _Handler.ping), (r"/_ping", "HEAD", _Handler.ping),
    (r"/version", "GET", _Handler.version),
    (r"/images/create", "POST", _Handler.pull),
    (r"/images/(.+)/json", "GET", _Handler.image),
    (r"/containers/create", "POST", _Handler.create),
    (r"/containers/json", "GET", _Handler.list_),
    (r"/containers/([^/]+)/json", "GET", _Handler.inspect),
    (r"/containers/([^/]+)/start", "POST", _Handler.start),
    (r"/containers/([^/]+)/stop", "POST", _Handler.stop),
    (r"/containers/([^/]+)/kill", "POST", _Handler.kill),
    (r"/containers/([^/]+)/wait", "POST", _Handler.wait),
    (r"/containers/([^/]+)/logs", "GET", _Handler.logs_),
    (r"/containers/([^/]+)", "DELETE", _Handler.remove),
    (r"/containers/([^/]+)/exec", "POST", _Handler.exec_create),
    (r"/exec/([^/]+)/start", "POST", _Handler.exec_start),
    (r"/exec/([^/]+)/json", "GET", _Handler.exec_inspect),
]


@pytest.fixture
def docker_double(tmp_path_factory):
    """A running DockerDouble on a fresh unix socket; closed afterwards."""
    d = DockerDouble(tmp_path_factory.mktemp("docker") / "docker.sock").start()
    try:
        yield d
    finally:
        d.close()
