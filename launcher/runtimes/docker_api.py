"""Docker SDK helpers for the docker runtime: clients per daemon URL, error mapping, image pulls with
progress, and attached exec output read as a plain HTTP stream (no socket hijacking), demultiplexed.
The docker package is imported lazily (it is slow to import and optional for other runtimes)."""
from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass
from typing import Callable, Iterator

from launcher.auth import redact
from launcher.errors import RuntimeFailure

LOCAL_URL = "unix:///var/run/docker.sock"


@dataclass
class PullProgress:
    """One pull event, per layer: status text ('Downloading', 'Extracting', 'Pull complete', …)."""

    image: str
    layer: str | None
    status: str
    current: int | None = None
    total: int | None = None


def is_local_url(url: str | None) -> bool:
    return not url or url == "local" or url.startswith("unix://")


@contextlib.contextmanager
def daemon_errors(url: str, what: str):
    """Map docker SDK / connection errors to RuntimeFailure naming the daemon and a fix."""
    import docker.errors
    import requests.exceptions

    try:
        yield
    except docker.errors.NotFound:
        raise
    except docker.errors.APIError as exc:
        msg = redact(str(exc.explanation or exc))
        raise RuntimeFailure(f"{what}: Docker said: {msg}", where=f"docker {url}") from None
    except (docker.errors.DockerException, requests.exceptions.ConnectionError, OSError) as exc:
        raise RuntimeFailure(
            f"{what}: cannot reach the Docker daemon ({redact(str(exc))[:300]})", where=f"docker {url}",
            fix="start Docker on that host (`systemctl start docker`), check the inventory's `docker:` URL "
                "(rootless Docker, Docker Desktop, Colima: set it, or DOCKER_HOST, to `docker context inspect` "
                "'s Endpoints.docker.Host), and that your user may use it (the docker group; for ssh:// a "
                "working `ssh` login)") from None


class Clients:
    """One DockerClient per daemon URL (thread-safe, created on first use)."""

    def __init__(self, factory: Callable[[str], object] | None = None):
        self._factory = factory or make_client
        self._clients: dict[str, object] = {}
        self._lock = threading.Lock()

    def get(self, url: str | None):
        url = url or LOCAL_URL
        with self._lock:
            if url not in self._clients:
                with daemon_errors(url, "connecting"):
                    self._clients[url] = self._factory(url)
                if len(self._clients) == 1:
                    import atexit

                    atexit.register(self.close)  # pooled ssh:// connections end with launch
            return self._clients[url]

    def close(self) -> None:
        """Close every client (for ssh:// daemons: end their `ssh … dial-stdio` processes)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing what may already be broken
                pass


def make_client(url: str, ssh_argv: list[str] | None = None):
    """A DockerClient for a daemon URL. ssh:// goes through the system ssh client running
    `docker system dial-stdio` on the host (~/.ssh/config, agents and ProxyJump work); ssh_argv
    (`ssh [options] DEST`, from the inventory's ssh user/port/identity/options) replaces the bare
    `ssh -l USER -p PORT HOST` the SDK would run, and connections are pooled (the SDK's own ssh
    transport opens a new ssh per request)."""
    import docker

    if url == "local":
        url = LOCAL_URL
    if url.startswith("ssh://"):
        from docker.constants import DEFAULT_DOCKER_API_VERSION

        argv = ssh_argv or ssh_argv_for_url(url)
        client = docker.DockerClient(base_url=url, use_ssh_client=True, timeout=120,
                                     version=DEFAULT_DOCKER_API_VERSION)  # no request before the swap
        api = client.api
        adapter = ssh_adapter(argv, timeout=120)
        api._custom_adapter = adapter
        api.mount("http+docker://ssh", adapter)
        api._version = api._retrieve_server_version()
        return client
    return docker.DockerClient(base_url=url, timeout=120)


DIAL = "docker system dial-stdio"


def ssh_argv_for_url(url: str) -> list[str]:
    """`ssh [-l USER] [-p PORT] HOST` from an ssh:// URL alone (a daemon no inventory host names)."""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    argv = ["ssh", "-o", "BatchMode=yes"]
    if u.port:
        argv += ["-p", str(u.port)]
    if u.username:
        argv += ["-l", u.username]
    return argv + [u.hostname or ""]


def dial_argv(ssh_argv: list[str]) -> list[str]:
    """The command line that connects to a remote daemon: ssh's own, then dial-stdio on the host."""
    return [*ssh_argv, DIAL]


def ssh_adapter(ssh_argv: list[str], timeout: float = 120):
    """A requests adapter whose connections are `ssh … docker system dial-stdio` pipes (built on the
    SDK's shell-out ssh transport, which otherwise takes no ssh options)."""
    import io
    import os
    import subprocess

    from docker.transport import sshconn

    argv = dial_argv(ssh_argv)

    class ResponseFile(io.BufferedReader):
        """What makefile() hands http.client: its own fd (a dup of ssh's stdout), counted like a
        socket's makefile() references, so closing the connection with a response still being read
        (Connection: close streams) ends ssh only once that response is closed too."""

        owner = None

        def close(self):
            if not self.closed:
                super().close()
                owner, self.owner = self.owner, None
                if owner is not None:
                    owner.unref()

    class DialSocket(sshconn.SSHSocket):
        def __init__(self):
            super().__init__("launcher-ssh")
            self._refs = 0
            self._closing = False
            self._lock = threading.Lock()

        def connect(self, **kwargs):
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, start_new_session=True)

        def makefile(self, mode="rb", *args, **kwargs):
            # a file of its own per response, as a socket's makefile() gives: closing one response
            # must not close the pipe the next request on this pooled connection reads
            if self.proc is None:
                self.connect()
            f = ResponseFile(io.FileIO(os.dup(self.proc.stdout.fileno()), "rb"))
            with self._lock:
                self._refs += 1
            f.owner = self
            f.channel = self
            return f

        def unref(self):
            with self._lock:
                self._refs -= 1
                end = self._closing and self._refs <= 0
            if end:
                self._end()

        def fileno(self):  # urllib3 polls this to tell a dropped connection: the pipe, not the dummy socket
            return self.proc.stdout.fileno() if self.proc is not None else super().fileno()

        def terminate(self):
            """End ssh now (a reader blocked on the stream gets EOF)."""
            proc = self.proc
            if proc is not None and proc.poll() is None:
                proc.terminate()

        def close(self):
            with self._lock:
                self._closing = True
                end = self._refs <= 0
            if end:
                self._end()

        def _end(self):
            proc, self.proc = self.proc, None
            if proc is None:
                return
            for f in (proc.stdin, proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            super(sshconn.SSHSocket, self).close()

    class DialConnection(sshconn.SSHConnection):
        def connect(self):
            sock = DialSocket()
            sock.settimeout(self.timeout)
            sock.connect()
            self.sock = sock

    class DialPool(sshconn.SSHConnectionPool):
        def _new_conn(self):
            return DialConnection(None, self.timeout, "launcher-ssh")

    class DialAdapter(sshconn.SSHHTTPAdapter):
        def __init__(self):
            super().__init__("ssh://launcher-ssh", timeout=timeout, shell_out=True)
            self.pool = DialPool(timeout=timeout, maxsize=self.max_pool_size)

        def get_connection(self, url, proxies=None):
            return self.pool

        def close(self):
            super().close()
            self.pool.close()

    return DialAdapter()


def ensure_image(client, url: str, image: str, on_pull: Callable[[PullProgress], None] | None) -> bool:
    """Pull the image when the daemon lacks it. Returns True when it pulled."""
    import docker.errors
    from docker.utils import parse_repository_tag

    with daemon_errors(url, f"checking image {image}"):
        try:
            client.images.get(image)
            return False
        except docker.errors.ImageNotFound:
            pass
    repo, tag = parse_repository_tag(image)
    with daemon_errors(url, f"pulling {image}"):
        for ev in client.api.pull(repo, tag=tag or "latest", stream=True, decode=True):
            if ev.get("error"):
                raise RuntimeFailure(f"pulling {image} failed: {redact(ev['error'])}", where=f"docker {url}",
                                     fix="check the image name and tag; private registries need "
                                         "`docker login` on that host (nvcr.io: an NGC API key)")
            if on_pull:
                detail = ev.get("progressDetail") or {}
                on_pull(PullProgress(image=image, layer=ev.get("id"), status=ev.get("status", ""),
                                     current=detail.get("current"), total=detail.get("total")))
    return True


def shutdown_response(res) -> None:
    """End a streaming response from another thread: a reader blocked on it gets EOF at once.

    The socket under a unix/tcp connection is shut down (a blocked recv returns); over ssh:// (an
    `ssh … docker system dial-stdio` pipe) the ssh process is ended. Safe to call twice."""
    import socket

    raw = getattr(res, "raw", res)
    conn = getattr(raw, "_connection", None) or getattr(raw, "connection", None)
    sock = getattr(conn, "sock", None)
    if sock is None:  # older urllib3: through the file object http.client reads from
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(fp, "channel", None) or getattr(getattr(fp, "raw", None), "_sock", None)
    if sock is None:
        return
    try:
        if hasattr(sock, "terminate"):  # ssh dial-stdio socket
            sock.terminate()
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class ExecStream:
    """An attached exec's output (stdout and stderr, in order), closable from another thread.

    Real Docker answers POST /exec/{id}/start without an Upgrade header with `200 OK` and a raw
    stream on the hijacked connection, closed when the command ends; reading it as a plain HTTP body
    avoids the SDK's raw-socket path (which can lose bytes buffered with the headers)."""

    def __init__(self, client, exec_id: str):
        self.client, self.exec_id = client, exec_id
        self._res = None
        self._closed = False
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[bytes]:
        api = self.client.api
        res = api.post(api._url("/exec/{0}/start", self.exec_id), data=json.dumps({"Detach": False, "Tty": False}),
                       headers={"Content-Type": "application/json"}, stream=True, timeout=None)
        with self._lock:
            self._res = res
            closed = self._closed
        try:
            if closed:
                return
            api._raise_for_status(res)
            raw = res.raw
            while True:
                header = raw.read(8)
                if len(header) < 8:
                    return
                size = int.from_bytes(header[4:8], "big")
                data = raw.read(size) if size else b""
                if data:
                    yield data
        finally:
            res.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            res = self._res
        if res is not None:
            shutdown_response(res)


def exec_stream(client, exec_id: str) -> Iterator[bytes]:
    """Start an exec attached and yield its output (see ExecStream)."""
    return iter(ExecStream(client, exec_id))
