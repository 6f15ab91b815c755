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
    transport: httpx.BaseTransport = httpx.HTTPTransport()
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
