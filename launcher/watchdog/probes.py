"""Probes, per node and concurrently, each under its own timeout (../shared/reference/watchdog.md).

- HTTP `/health` (200 = the API server answers; it can stay 200 while the engine is deadlocked), plus
- a heartbeat: while requests run or wait, *something* in `/metrics` must move within the stall window
  (default 10 min): a token counter (`vllm:generation_tokens_total`, `vllm:prompt_tokens_total`), the
  KV-cache usage (`vllm:kv_cache_usage_perc`, older `vllm:gpu_cache_usage_perc`) or the running/waiting
  counts. vLLM V1 adds prompt tokens only when a prefill completes, so a 100k-token prefill keeps both
  token counters still for minutes: that is a busy engine, not a wedge. When nothing runs, a tiny
  generation (max_tokens 1) must be answered in time. Servers without /metrics get the tiny generation only.
- With an API key configured, a 401 is a probe failure of kind "auth": reported (journal, alert), never
  counted as the service failing (the server answered), so never a reason to restart or cycle.
- SSH: the `SSH-2.0-` banner read over raw TCP within the timeout.
- ICMP (optional): one `ping`.
"""
from __future__ import annotations

import asyncio
import re
import shutil
import time
from dataclasses import asdict, dataclass, field

METRIC_RE = re.compile(r"^(vllm:[a-z_]+)(?:\{[^}]*\})?\s+([0-9.eE+-]+|NaN)\s*$", re.M)
# Only the three heartbeat series, over the raw bytes: a literal "\nvllm:" prefix lets the regex engine
# skip the (on a real vLLM, ~100 KB of) histogram lines instead of trying every position.
HEARTBEAT_RE = re.compile(rb"\nvllm:(generation_tokens_total|prompt_tokens_total|num_requests_running|"
                          rb"num_requests_waiting|kv_cache_usage_perc|gpu_cache_usage_perc)"
                          rb"(?:\{[^}\n]*\})?[ \t]+([0-9.eE+-]+|NaN)")
HEARTBEAT_SERIES = (b"generation_tokens_total", b"prompt_tokens_total", b"num_requests_running",
                    b"num_requests_waiting", b"kv_cache_usage_perc", b"gpu_cache_usage_perc")
DEFAULT_STALL = 600.0  # seconds of no progress at all, with requests running, before it is a failure
_timeout_cm = getattr(asyncio, "timeout", None)  # Python 3.11+: no extra task per probe


@dataclass
class Check:
    name: str  # health | heartbeat | ssh | icmp | reference
    ok: bool
    detail: str = ""
    elapsed: float = 0.0
    target: str = ""
    kind: str = ""  # "auth": refused with the configured API key (reported, never a reason to act)


@dataclass
class Target:
    """What to probe for one node."""

    name: str
    urls: list[str] = field(default_factory=list)
    ssh_host: str | None = None
    ssh_port: int = 22
    icmp_host: str | None = None
    model: str | None = None  # for the tiny generation (discovered from /v1/models when absent)
    # the other hosts of a multi-host deployment served here: (name, ssh host, ssh port), SSH-probed too
    members: list[tuple[str, str, int]] = field(default_factory=list)


@dataclass
class Observation:
    node: str
    service_ok: bool
    checks: list[Check]
    reason: str = ""
    elapsed: float = 0.0  # the whole node's probe, wall seconds

    @property
    def members_down(self) -> list[str]:
        return [c.target for c in self.checks if c.name == "member" and not c.ok]

    @property
    def auth_failed(self) -> list[Check]:
        return [c for c in self.checks if c.kind == "auth" and not c.ok]

    @property
    def ssh_ok(self) -> bool | None:
        for c in self.checks:
            if c.name == "ssh":
                return c.ok
        return None

    def to_json(self) -> dict:
        out = {"node": self.node, "service_ok": self.service_ok, "ssh_ok": self.ssh_ok, "reason": self.reason,
               "elapsed": self.elapsed, "checks": [asdict(c) for c in self.checks]}
        if self.members_down:
            out["members_down"] = self.members_down
        return out


def parse_metrics(text: str) -> dict[str, float]:
    """Sum each vllm:* sample over its labels."""
    out: dict[str, float] = {}
    for name, value in METRIC_RE.findall(text):
        try:
            out[name] = out.get(name, 0.0) + float(value)
        except ValueError:
            pass
    return out


def heartbeat_sample(body: bytes) -> dict[bytes, float]:
    """The heartbeat series (HEARTBEAT_SERIES), each summed over its labels (0.0 when absent)."""
    sums = dict.fromkeys(HEARTBEAT_SERIES, 0.0)
    for name, value in HEARTBEAT_RE.findall(b"\n" + body):
        try:
            sums[name] += float(value)
        except ValueError:
            pass
    return sums


def heartbeat_counters(body: bytes) -> tuple[float, float, float]:
    """(generation_tokens_total, prompt_tokens_total, num_requests_running), each summed over its labels."""
    s = heartbeat_sample(body)
    return s[b"generation_tokens_total"], s[b"prompt_tokens_total"], s[b"num_requests_running"]


_SHOWN = ((b"generation_tokens_total", "generated tokens"), (b"prompt_tokens_total", "prompt tokens"),
          (b"kv_cache_usage_perc", "KV usage"), (b"gpu_cache_usage_perc", "KV usage"),
          (b"num_requests_running", "running"), (b"num_requests_waiting", "waiting"))


def _moved(before: tuple, after: tuple) -> str:
    """What changed between two samples (in HEARTBEAT_SERIES order), for the journal."""
    idx = {k: i for i, k in enumerate(HEARTBEAT_SERIES)}
    out = []
    for key, label in _SHOWN:
        a, b = before[idx[key]], after[idx[key]]
        if a != b:
            out.append(f"{label} {b - a:+g}" if "tokens" in label else f"{label} {a:g}→{b:g}")
    return ", ".join(out)


def _err(exc: BaseException) -> str:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed mid-answer"
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
        return f"cannot connect: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


class Prober:
    """Runs the probes. Keeps the last counters per URL so progress can be judged across rounds.

    HTTP goes over one keep-alive connection per origin (launcher.http.KeepAlive), reused round after
    round: per node and round, /health, then /metrics only when /health said 200 (a failed /health
    already fails the node). `now` is the clock for the tiny-generation interval (the watchdog's)."""

    def __init__(self, *, timeout: float = 10.0, icmp: bool = False, generate: bool = True,
                 generate_every: float = 60.0, api_key: str | None = None, now=None, stall: float | None = None,
                 keys: dict[str, str] | None = None):
        self.timeout = timeout
        self.icmp = icmp
        self.generate = generate
        # An idle engine is asked for a tiny generation at most this often (0: every probe); a busy
        # one is judged by its counters. A generation left hanging shows as running with no progress.
        self.generate_every = generate_every
        self.now = now
        self._generated: dict[str, float] = {}
        self._ssl = None
        self.api_key = api_key  # for every URL without its own entry in `keys`
        self.keys = dict(keys or {})  # origin or URL prefix -> API key (never logged)
        # Seconds of no movement at all in the heartbeat series, with requests running or waiting, before
        # the heartbeat fails (None: the watchdog sets it from its policy; else DEFAULT_STALL).
        self.stall = stall
        self._conns: dict = {}
        self._progress: dict[str, tuple[tuple, float]] = {}  # base -> (last sample, when it last changed)
        self._models: dict[str, str] = {}

    def conn(self, url: str):
        """The keep-alive connection for url's origin, and the path prefix of url."""
        from urllib.parse import urlsplit

        u = urlsplit(url)
        key = (u.scheme, u.netloc)
        c = self._conns.get(key)
        if c is None:
            from launcher.http import KeepAlive, bearer

            if u.scheme == "https" and self._ssl is None:  # one TLS context for all connections
                import ssl

                self._ssl = ssl.create_default_context()
            c = self._conns[key] = KeepAlive(url, headers=bearer(self.key_for(url)), ssl_context=self._ssl)
        return c, u.path.rstrip("/")

    def key_for(self, url: str) -> str | None:
        """The API key for url: the longest matching prefix in `keys`, else `api_key`."""
        best = None
        u = url.rstrip("/")
        for prefix in self.keys:
            p = prefix.rstrip("/")
            if (u == p or u.startswith(p + "/")) and (best is None or len(prefix) > len(best)):
                best = prefix
        return self.keys[best] if best is not None else self.api_key

    async def aclose(self) -> None:
        conns, self._conns = list(self._conns.values()), {}
        for c in conns:
            await c.aclose()

    async def _timed(self, name: str, target: str, coro) -> Check:
        t0 = time.monotonic()
        kind = ""
        try:
            if _timeout_cm is not None:
                async with _timeout_cm(self.timeout):
                    res = await coro
            else:  # Python 3.10
                res = await asyncio.wait_for(coro, self.timeout)
            ok, detail = res[0], res[1]
            if len(res) > 2:
                kind = res[2]
        except Exception as exc:  # noqa: BLE001 - every failure is a probe result
            ok, detail = False, _err(exc)
        return Check(name, ok, detail, round(time.monotonic() - t0, 4), target, kind)

    # -- HTTP ----------------------------------------------------------------------------------
    async def _health(self, url: str):
        c, path = self.conn(url)
        r = await c.request("GET", path + "/health")
        if r.status_code == 200:
            return True, "200"
        return False, f"HTTP {r.status_code}"

    async def _generate(self, url: str, model: str | None):
        c, path = self.conn(url)
        base = url.rstrip("/")
        if not model:
            model = self._models.get(base)
        keyed = bool(self.key_for(url))
        if not model:
            r = await c.request("GET", path + "/v1/models")
            if r.status_code in (401, 403):
                return self._unauthorized(keyed, r.status_code, "/v1/models")
            data = r.json().get("data") or []
            if not data:
                return False, "/v1/models lists no model"
            model = self._models[base] = data[0]["id"]
        r = await c.request("POST", path + "/v1/chat/completions",
                            json={"model": model, "messages": [{"role": "user", "content": "ping"}],
                                  "max_tokens": 1, "temperature": 0})
        if r.status_code == 200:  # kind "answered": the key (if any) was accepted, for the auth report
            return True, "tiny generation answered", "answered"
        if r.status_code in (401, 403):
            return self._unauthorized(keyed, r.status_code, "/v1/chat/completions")
        return False, f"tiny generation: HTTP {r.status_code}"

    @staticmethod
    def _unauthorized(keyed: bool, status: int, path: str):
        if keyed:  # the server answered, but not to our key: a configuration problem, not a wedge
            return False, f"HTTP {status} on {path} with the configured API key: the key is refused " \
                          "(the idle heartbeat cannot run; fix the key, this never triggers a restart or cycle)", "auth"
        return True, "tiny generation skipped: /v1 needs an API key (give the recipe's api_key to the watchdog)"

    async def _heartbeat(self, url: str, model: str | None):
        base = url.rstrip("/")
        c, path = self.conn(url)
        r = await c.request("GET", path + "/metrics")
        if r.status_code != 200:
            if self.generate:
                return await self._generate(url, model)
            return True, f"no /metrics (HTTP {r.status_code}); heartbeat off"
        sample = heartbeat_sample(r.content)
        sig = tuple(sample[k] for k in HEARTBEAT_SERIES)
        now = (self.now or time.monotonic)()
        last = self._progress.get(base)
        if last is None or sig != last[0]:
            self._progress[base] = (sig, now)
        running, waiting = sample[b"num_requests_running"], sample[b"num_requests_waiting"]
        if running > 0 or waiting > 0:
            busy = f"{running:g} running, {waiting:g} waiting"
            if last is None:
                return True, f"{busy}; first reading"
            if sig != last[0]:
                return True, f"{busy}; moved: {_moved(last[0], sig)}"
            still = now - last[1]
            stall = DEFAULT_STALL if self.stall is None else self.stall
            if still < stall:
                return True, (f"{busy}; nothing moved for {still:.0f} s (a long prefill looks like this); "
                              f"a failure after {stall:g} s")
            kv = sample[b"kv_cache_usage_perc"] or sample[b"gpu_cache_usage_perc"]
            return False, (f"no progress for {still:.0f} s with {busy} (generation_tokens_total stuck at "
                           f"{sample[b'generation_tokens_total']:g}, prompt_tokens_total at "
                           f"{sample[b'prompt_tokens_total']:g}, KV usage at {kv:g})")
        if self.generate:
            now = (self.now or time.monotonic)()
            last_gen = self._generated.get(base)
            if last_gen is None or now - last_gen >= self.generate_every:
                self._generated[base] = now
                return await self._generate(url, model)
            return True, f"idle; last tiny generation {now - last_gen:.0f} s ago"
        return True, "idle"

    async def _service(self, url: str, model: str | None) -> list[Check]:
        """/health, then the heartbeat only when /health answered 200; each under its own timeout."""
        health = await self._timed("health", url, self._health(url))
        if not health.ok:
            return [health]
        return [health, await self._timed("heartbeat", url, self._heartbeat(url, model))]

    # -- SSH / ICMP / reference --------------------------------------------------------------------
    async def _ssh(self, host: str, port: int):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            line = await reader.readline()
        finally:
            writer.close()
        text = line.decode("ascii", "replace").strip()
        if text.startswith("SSH-"):
            return True, text[:60]
        return False, f"no SSH banner (got {text[:40]!r})"

    async def _ping(self, host: str):
        ping = shutil.which("ping")
        if not ping:
            return False, "ping is not installed"
        proc = await asyncio.create_subprocess_exec(ping, "-c", "1", "-W", str(max(1, int(self.timeout))), host,
                                                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            code = await proc.wait()
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise
        return code == 0, "echo reply" if code == 0 else f"no echo reply (exit {code})"

    async def _tcp(self, host: str, port: int):
        _r, writer = await asyncio.open_connection(host, port)
        writer.close()
        return True, f"TCP {port} open"

    async def _any_http(self, url: str):
        c, path = self.conn(url)
        r = await c.request("GET", path or "/")
        return True, f"HTTP {r.status_code}"

    async def ssh_check(self, name: str, target: str, host: str, port: int) -> Check:
        """One SSH banner check under the timeout (e.g. re-checking a deployment member before acting)."""
        return await self._timed(name, target, self._ssh(host, port))

    async def reachable(self, reference: str) -> Check:
        """Can the watchdog itself reach `reference`? URL → any HTTP answer; host:port → TCP; host → ping."""
        if "://" in reference:
            return await self._timed("reference", reference, self._any_http(reference))
        host, sep, port = reference.rpartition(":")
        if sep and port.isdigit():
            return await self._timed("reference", reference, self._tcp(host, int(port)))
        return await self._timed("reference", reference, self._ping(reference))

    # -- one node -----------------------------------------------------------------------------------
    async def probe(self, t: Target) -> Observation:
        t0 = time.monotonic()
        parts = [self._service(url, t.model) for url in t.urls]
        if t.ssh_host:
            parts.append(self._one(self._timed("ssh", f"{t.ssh_host}:{t.ssh_port}", self._ssh(t.ssh_host, t.ssh_port))))
        for name, host, port in t.members:
            parts.append(self._one(self._timed("member", name, self._ssh(host, port))))
        if self.icmp and t.icmp_host:
            parts.append(self._one(self._timed("icmp", t.icmp_host, self._ping(t.icmp_host))))
        if len(parts) == 1:  # the common case: no extra tasks
            groups = [await parts[0]]
        else:
            groups = await asyncio.gather(*parts)
        checks = [c for g in groups for c in g]
        failed = [c for c in checks if c.name in ("health", "heartbeat") and not c.ok]
        bad = [c for c in failed if c.kind != "auth"]  # a refused key is reported, never a service failure
        reason = "; ".join(f"{c.name} {c.target}: {c.detail}" for c in failed)
        return Observation(t.name, not bad and bool(t.urls), checks, reason or ("" if t.urls else "nothing to probe"),
                           round(time.monotonic() - t0, 4))

    @staticmethod
    async def _one(coro) -> list[Check]:
        return [await coro]

    async def probe_all(self, targets: list[Target]) -> list[Observation]:
        return list(await asyncio.gather(*(self.probe(t) for t in targets)))
