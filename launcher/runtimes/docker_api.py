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
            fix="start Docker on that host (`systemctl start docker`), check the inventory's `docker:` URL, "
                "and that your user may use it (the docker group; for ssh:// a working `ssh` login)") from None


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
            return self._clients[url]


def make_client(url: str):
    import docker

    if url == "local":
        url = LOCAL_URL
    if url.startswith("ssh://"):  # the system ssh client: ~/.ssh/config, agents, ProxyJump
        return docker.DockerClient(base_url=url, use_ssh_client=True, timeout=120)
    return docker.DockerClient(base_url=url, timeout=120)


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


def exec_stream(client, exec_id: str) -> Iterator[bytes]:
    """Start an exec attached and yield its output (stdout and stderr, in order).

    Real Docker answers POST /exec/{id}/start without an Upgrade header with `200 OK` and a raw
    stream on the hijacked connection, closed when the command ends; reading it as a plain HTTP body
    avoids the SDK's raw-socket path (which can lose bytes buffered with the headers)."""
    api = client.api
    res = api.post(api._url("/exec/{0}/start", exec_id), data=json.dumps({"Detach": False, "Tty": False}),
                   headers={"Content-Type": "application/json"}, stream=True, timeout=None)
    try:
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
