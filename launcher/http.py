"""The one HTTP client factory: timeouts, retries with exponential backoff and full jitter,
Retry-After honoured on 429/503, every retry visible with -v.
"""
from __future__ import annotations

import logging
import random
import time
from email.utils import parsedate_to_datetime
from typing import Callable

import httpx

log = logging.getLogger("launcher.http")

DEFAULT_RETRIES = 4
DEFAULT_BACKOFF = 0.5
RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def backoff_delay(attempt: int, initial: float = DEFAULT_BACKOFF, cap: float = 30.0,
                  rng: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(cap, initial * 2**attempt))."""
    return rng() * min(cap, initial * (2 ** attempt))


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def _timeout(connect: float, read: float) -> httpx.Timeout:
    return httpx.Timeout(read, connect=connect)


class RetryTransport(httpx.BaseTransport):
    """Wraps an httpx transport: retries connect errors and 429/502/503/504 (idempotent requests,
    or any request when the error is a refused connection)."""

    def __init__(self, inner, retries: int, initial: float, sleep: Callable[[float], None],
                 rng: Callable[[], float]):
        self.inner, self.retries, self.initial, self.sleep, self.rng = inner, retries, initial, sleep, rng

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self.inner.handle_request(request)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt >= self.retries:
                    raise
                delay = backoff_delay(attempt, self.initial, rng=self.rng)
                log.info("retry %d/%d %s %s after %s in %.2fs", attempt + 1, self.retries,
                         request.method, request.url, type(exc).__name__, delay)
            else:
                if (response.status_code not in RETRY_STATUSES or attempt >= self.retries
                        or request.method not in IDEMPOTENT):
                    return response
                delay = backoff_delay(attempt, self.initial, rng=self.rng)
                if response.status_code in (429, 503):
                    ra = retry_after(response.headers.get("retry-after"))
                    if ra is not None:
                        delay = min(ra, 120.0)
                log.info("retry %d/%d %s %s after HTTP %d in %.2fs", attempt + 1, self.retries,
                         request.method, request.url, response.status_code, delay)
                response.close()
            self.sleep(delay)
            attempt += 1

    def close(self):
        self.inner.close()


def client(*, base_url: str = "", connect: float = 5.0, read: float = 30.0,
           retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_BACKOFF,
           headers: dict[str, str] | None = None, sleep: Callable[[float], None] = time.sleep,
           rng: Callable[[], float] = random.random, **kwargs):
    """A configured httpx.Client. retries=0 turns retrying off (probes that must be quick)."""
    # TLS settings belong to the transport: httpx ignores a client's `verify` when a transport is given.
    transport: httpx.BaseTransport = httpx.HTTPTransport(verify=kwargs.pop("verify", True))
    if retries > 0:
        transport = RetryTransport(transport, retries, backoff, sleep, rng)
    return httpx.Client(base_url=base_url, timeout=_timeout(connect, read), headers=headers or {},
                        transport=transport, trust_env=False, **kwargs)


def async_client(*, base_url: str = "", connect: float = 5.0, read: float = 30.0,
                 headers: dict[str, str] | None = None, **kwargs):
    """An httpx.AsyncClient for concurrent probes (no retries: probes have their own policy)."""
    return httpx.AsyncClient(base_url=base_url, timeout=_timeout(connect, read), headers=headers or {},
                             trust_env=False, **kwargs)


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


# -- a keep-alive connection for frequent small probes ------------------------------------------------
class ProbeResponse:
    """What KeepAlive.request returns: status_code, headers (lower-case names), content, text, json()."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes):
        self.status_code, self.headers, self.content = status_code, headers, content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self):
        import json

        return json.loads(self.content)


class KeepAlive:
    """One persistent HTTP/1.1 connection to one origin, for small requests repeated forever (the
    watchdog probes every node each period). Much cheaper per request than httpx over anyio (see
    scripts/bench_watchdog.py). No retries, redirects, proxies, cookies or compression; requests on
    one connection are serialized. The caller bounds each request (asyncio.wait_for): one cancelled
    midway closes the connection and the next request reconnects. A connection the server closed
    while idle (uvicorn's keep-alive is 5 s) is reopened, and a request that finds it closed at the
    first byte is sent once more on a fresh one."""

    def __init__(self, url: str, *, headers: dict[str, str] | None = None, ssl_context=None,
                 max_body: int = 16 << 20):
        from urllib.parse import urlsplit

        u = urlsplit(url)
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname or "localhost", u.port or (443 if self.https else 80)
        self.ssl = (ssl_context or True) if self.https else None
        netloc = u.netloc.rpartition("@")[2]
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._head = f"Host: {netloc}\r\nUser-Agent: launcher-probe\r\nAccept: */*\r\n{extra}"
        self.max_body = max_body
        self.connects = 0
        self._r = self._w = None
        self._lock = None

    async def _open(self) -> None:
        import asyncio

        self._r, self._w = await asyncio.open_connection(
            self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.https else None)
        self.connects += 1

    def close(self) -> None:
        if self._w is not None:
            self._w.close()
        self._r = self._w = None

    async def aclose(self) -> None:
        self.close()

    async def request(self, method: str, path: str, *, json=None) -> ProbeResponse:
        import asyncio

        if self._lock is None:
            self._lock = asyncio.Lock()
        body = b""
        head = f"{method} {path} HTTP/1.1\r\n{self._head}"
        if json is not None:
            import json as _json

            body = _json.dumps(json).encode()
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        data = (head + "\r\n").encode("latin-1") + body
        async with self._lock:
            try:
                for attempt in (0, 1):
                    reused = self._w is not None and not self._r.at_eof() and not self._w.is_closing()
                    if not reused:
                        self.close()
                        await self._open()
                    self._w.write(data)
                    status = await self._r.readline()
                    if status:
                        return await self._response(method, status)
                    self.close()  # closed under us before any answer
                    if not reused or attempt:
                        raise ConnectionResetError("the server closed the connection without answering")
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _response(self, method: str, status_line: bytes) -> ProbeResponse:
        r = self._r
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ConnectionError(f"not an HTTP answer: {status_line[:40]!r}")
        code = int(parts[1])
        headers: dict[str, str] = {}
        while True:
            line = await r.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        keep = parts[0] == b"HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if method == "HEAD" or code in (204, 304) or 100 <= code < 200:
            content = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int((await r.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await r.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(await r.readexactly(size))
                await r.readline()
            content = b"".join(chunks)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            keep = keep and length <= self.max_body  # a body cut short leaves the connection unusable
            content = await r.readexactly(min(length, self.max_body))
        else:
            content, keep = await r.read(self.max_body), False
        if not keep:
            self.close()
        return ProbeResponse(code, headers, content)
