"""Probes, per node and concurrently, each under its own timeout (../shared/reference/watchdog.md).

- HTTP `/health` (200 = the API server answers; it can stay 200 while the engine is deadlocked), plus
- a heartbeat: `/metrics` token counters (`vllm:generation_tokens_total`, `vllm:prompt_tokens_total`)
  must move while `vllm:num_requests_running` > 0; when nothing runs, a tiny generation
  (max_tokens 1) must be answered in time. Servers without /metrics get the tiny generation only.
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


@dataclass
class Check:
    name: str  # health | heartbeat | ssh | icmp | reference
    ok: bool
    detail: str = ""
    elapsed: float = 0.0
    target: str = ""


@dataclass
class Target:
    """What to probe for one node."""

    name: str
    urls: list[str] = field(default_factory=list)
    ssh_host: str | None = None
    ssh_port: int = 22
    icmp_host: str | None = None
    model: str | None = None  # for the tiny generation (discovered from /v1/models when absent)


@dataclass
class Observation:
    node: str
    service_ok: bool
    checks: list[Check]
    reason: str = ""

    @property
    def ssh_ok(self) -> bool | None:
        for c in self.checks:
            if c.name == "ssh":
                return c.ok
        return None

    def to_json(self) -> dict:
        return {"node": self.node, "service_ok": self.service_ok, "ssh_ok": self.ssh_ok, "reason": self.reason,
                "checks": [asdict(c) for c in self.checks]}


def parse_metrics(text: str) -> dict[str, float]:
    """Sum each vllm:* sample over its labels."""
    out: dict[str, float] = {}
    for name, value in METRIC_RE.findall(text):
        try:
            out[name] = out.get(name, 0.0) + float(value)
        except ValueError:
            pass
    return out


def _err(exc: BaseException) -> str:
    import httpx

    if isinstance(exc, (asyncio.TimeoutError, httpx.TimeoutException)):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused" if "refused" in str(exc).lower() or "errno 111" in str(exc).lower() else f"cannot connect: {exc}"
    return f"{type(exc).__name__}: {exc}"


class Prober:
    """Runs the probes. Keeps the last counters per URL so progress can be judged across rounds."""

    def __init__(self, *, timeout: float = 10.0, icmp: bool = False, generate: bool = True,
                 generate_every: float = 60.0, api_key: str | None = None, client=None):
        self.timeout = timeout
        self.icmp = icmp
        self.generate = generate
        # An idle engine is asked for a tiny generation at most this often (0: every probe); a busy
        # one is judged by its counters. A generation left hanging shows as running with no progress.
        self.generate_every = generate_every
        self._generated: dict[str, float] = {}
        self._ssl = None
        self.api_key = api_key
        self._client = client  # an injected client is used for everything
        self._clients: dict = {}
        self._counters: dict[str, tuple[float, float]] = {}
        self._models: dict[str, str] = {}

    def client(self, url: str = ""):
        """One small client per node: a single pool over many hosts costs O(connections) per request
        in httpcore, which made 64 nodes CPU-bound."""
        if self._client is not None:
            return self._client
        key = url.split("/", 3)[2] if "://" in url else url
        c = self._clients.get(key)
        if c is None:
            import httpx

            from launcher.http import async_client, bearer

            if self._ssl is None:  # one TLS context for all clients (each costs ~1 MB otherwise)
                import ssl

                self._ssl = ssl.create_default_context()
            c = self._clients[key] = async_client(connect=self.timeout, read=self.timeout, headers=bearer(self.api_key),
                                                  limits=httpx.Limits(max_connections=8, max_keepalive_connections=4),
                                                  verify=self._ssl)
        return c

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            await c.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _timed(self, name: str, target: str, coro) -> Check:
        t0 = time.monotonic()
        try:
            ok, detail = await asyncio.wait_for(coro, self.timeout)
        except Exception as exc:  # noqa: BLE001 - every failure is a probe result
            ok, detail = False, _err(exc)
        return Check(name, ok, detail, round(time.monotonic() - t0, 4), target)

    # -- HTTP ----------------------------------------------------------------------------------
    async def _health(self, url: str):
        r = await self.client(url).get(url.rstrip("/") + "/health")
        if r.status_code == 200:
            return True, "200"
        return False, f"HTTP {r.status_code}"

    async def _generate(self, url: str, model: str | None):
        c = self.client(url)
        base = url.rstrip("/")
        if not model:
            model = self._models.get(base)
        if not model:
            r = await c.get(base + "/v1/models")
            if r.status_code == 401:
                return True, "tiny generation skipped: /v1 needs an API key"
            data = r.json().get("data") or []
            if not data:
                return False, "/v1/models lists no model"
            model = self._models[base] = data[0]["id"]
        r = await c.post(base + "/v1/chat/completions",
                         json={"model": model, "messages": [{"role": "user", "content": "ping"}],
                               "max_tokens": 1, "temperature": 0})
        if r.status_code == 200:
            return True, "tiny generation answered"
        if r.status_code == 401:
            return True, "tiny generation skipped: /v1 needs an API key"
        return False, f"tiny generation: HTTP {r.status_code}"

    async def _heartbeat(self, url: str, model: str | None):
        base = url.rstrip("/")
        r = await self.client(url).get(base + "/metrics")
        if r.status_code != 200:
            if self.generate:
                return await self._generate(url, model)
            return True, f"no /metrics (HTTP {r.status_code}); heartbeat off"
        m = parse_metrics(r.text)
        gen = m.get("vllm:generation_tokens_total", 0.0)
        prompt = m.get("vllm:prompt_tokens_total", 0.0)
        running = m.get("vllm:num_requests_running", 0.0)
        last = self._counters.get(base)
        self._counters[base] = (gen, prompt)
        if running > 0:
            if last is None:
                return True, f"{running:g} running; first counter reading"
            if gen > last[0] or prompt > last[1]:
                return True, f"{running:g} running; tokens +{gen - last[0]:g} generated, +{prompt - last[1]:g} prompt"
            return False, f"no token progress with {running:g} request(s) running (generation_tokens_total stuck at {gen:g})"
        if self.generate:
            now = time.monotonic()
            last_gen = self._generated.get(base)
            if last_gen is None or now - last_gen >= self.generate_every:
                self._generated[base] = now
                return await self._generate(url, model)
            return True, f"idle; last tiny generation {now - last_gen:.0f} s ago"
        return True, "idle"

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
        r = await self.client(url).get(url)
        return True, f"HTTP {r.status_code}"

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
        tasks = []
        for url in t.urls:
            tasks.append(self._timed("health", url, self._health(url)))
            tasks.append(self._timed("heartbeat", url, self._heartbeat(url, t.model)))
        if t.ssh_host:
            tasks.append(self._timed("ssh", f"{t.ssh_host}:{t.ssh_port}", self._ssh(t.ssh_host, t.ssh_port)))
        if self.icmp and t.icmp_host:
            tasks.append(self._timed("icmp", t.icmp_host, self._ping(t.icmp_host)))
        checks = list(await asyncio.gather(*tasks))
        bad = [c for c in checks if c.name in ("health", "heartbeat") and not c.ok]
        reason = "; ".join(f"{c.name} {c.target}: {c.detail}" for c in bad)
        return Observation(t.name, not bad and bool(t.urls), checks, reason or ("" if t.urls else "nothing to probe"))

    async def probe_all(self, targets: list[Target]) -> list[Observation]:
        return list(await asyncio.gather(*(self.probe(t) for t in targets)))
