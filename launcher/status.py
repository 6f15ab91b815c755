"""`launch status` data: every deployment probed concurrently (health, model, KV usage, requests,
tokens/s from two /metrics samples, GPU memory).

Metric names: ../shared/reference/vllm.md ("/metrics"): vllm:kv_cache_usage_perc (older
vllm:gpu_cache_usage_perc), vllm:num_requests_running / _waiting, vllm:generation_tokens_total.
"""
from __future__ import annotations

import asyncio
import re
import time
from dataclasses import asdict, dataclass, field

_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+([-+]?[\d.eE+-]+|NaN|[+-]?Inf)\s*$", re.M)


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text → {metric name: value summed over label sets} (engines and models add up)."""
    out: dict[str, float] = {}
    for m in _SAMPLE.finditer(text or ""):
        try:
            v = float(m.group(3))
        except ValueError:
            continue
        out[m.group(1)] = out.get(m.group(1), 0.0) + v
    return out


def kv_usage_percent(metrics: dict[str, float]) -> float | None:
    for name in ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"):
        if name in metrics:
            v = metrics[name]
            return round(v * 100 if v <= 1.0 else v, 1)
    return None


def tokens_per_second(a: dict[str, float], b: dict[str, float], dt: float) -> float | None:
    name = "vllm:generation_tokens_total"
    if name not in a or name not in b or dt <= 0:
        return None
    return round(max(0.0, b[name] - a[name]) / dt, 1)


@dataclass
class EndpointStatus:
    name: str  # recipe name or the inventory host
    endpoint: str
    served: str | None = None
    source: str = "launch"  # launch | inventory
    runtime: str = ""
    plan_hash: str = ""
    processes: list[dict] = field(default_factory=list)
    healthy: bool = False
    health: str = "unknown"  # ok | down | unhealthy (503) | refused | …
    models: list[str] = field(default_factory=list)
    kv_usage_pct: float | None = None
    running: int | None = None
    waiting: int | None = None
    tokens_per_s: float | None = None
    gpus: list[dict] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def _server_exited(st: EndpointStatus) -> bool:
    """launch started a server for this deployment and the runtime says it is not running."""
    servers = [p for p in st.processes if p.get("role") == "server"]
    return bool(servers) and not any(p.get("alive") for p in servers)


async def _probe_one(st: EndpointStatus, key: str | None, sample_s: float) -> None:
    import httpx

    from launcher.http import async_client, bearer

    async with async_client(connect=2.0, read=5.0, headers=bearer(key)) as c:
        try:
            r = await c.get(st.endpoint + "/health")
        except httpx.ConnectError:
            if _server_exited(st):
                st.health = "server exited"
                st.note = st.note or (f"its server process is not running; `launch up {st.name}` cleans up "
                                      "what is left and starts it again")
            else:
                st.health = "refused (not running, or still loading)"
            return
        except httpx.HTTPError as exc:
            st.health = f"no answer ({type(exc).__name__})"
            return
        st.healthy = r.status_code == 200
        st.health = "ok" if st.healthy else f"HTTP {r.status_code}"
        try:
            r = await c.get(st.endpoint + "/v1/models")
            if r.status_code == 200:
                st.models = [m.get("id") for m in r.json().get("data", [])]
            elif r.status_code == 401:
                st.note = "; ".join(filter(None, [st.note, "/v1/models needs the API key"]))
        except (httpx.HTTPError, ValueError):
            pass
        try:
            t0 = time.monotonic()
            a = parse_metrics((await c.get(st.endpoint + "/metrics")).text)
            await asyncio.sleep(sample_s)
            b = parse_metrics((await c.get(st.endpoint + "/metrics")).text)
            dt = time.monotonic() - t0
        except httpx.HTTPError:
            return
        st.kv_usage_pct = kv_usage_percent(b)
        if "vllm:num_requests_running" in b:
            st.running = int(b["vllm:num_requests_running"])
        if "vllm:num_requests_waiting" in b:
            st.waiting = int(b["vllm:num_requests_waiting"])
        st.tokens_per_s = tokens_per_second(a, b, dt)


def _inventory_daemons(inv) -> dict[str, str]:
    """{Docker daemon URL: host name} for every host of an inventory; ssh:// daemons learn their host's
    ssh settings (user, port, identity file), as `launch up` would use them."""
    from launcher import runtimes

    out: dict[str, str] = {}
    try:
        rt = runtimes.get("docker")
    except Exception:  # noqa: BLE001 - no docker library: nothing to ask
        return out
    for name, host in inv.hosts.items():
        url = host.docker_url(name)
        out.setdefault(url, name)
        rt.know_host(url, name, host.model_dump(mode="json"))
    return out


def _recipe_key_source(recipe: str) -> dict | None:
    """The key source of a recipe found only on its host, when that recipe loads here (else None: /v1
    checks may answer 401), in the form the deployment notes keep it."""
    from launcher.errors import LauncherError

    try:
        from launcher.spec.load import load_recipe

        src = load_recipe(recipe).spec.api_key
    except (LauncherError, OSError):
        return None
    return src.model_dump(exclude_none=True) if src is not None else None


def _gpus(runtime_name: str, host: dict) -> list[dict]:
    """GPU memory via launcher.probe (NVML here, nvidia-smi over ssh, MemAvailable on unified memory).
    Best effort: status never fails on a GPU query."""
    import os

    if os.environ.get("LAUNCHER_SIM_HOSTS") == "1":
        return []
    try:
        from launcher import probe
        from launcher.spec.inventory import LOCAL_ADDRESSES

        if host.get("address", "local") in LOCAL_ADDRESSES:
            facts = probe.probe_local(host.get("name", "local"), need_gpu=True)
        else:
            from launcher import runtimes

            facts = probe.probe_remote(host.get("name", "?"), host, runtimes.get("ssh").run, need_gpu=True, timeout=10)
        return [{"index": g.index, "name": g.name, "memory_used_mib": g.memory_used_mib,
                 "memory_total_mib": g.memory_total_mib, "unified": g.unified} for g in facts.gpus]
    except Exception:  # noqa: BLE001
        return []


def collect(inventory: str | None = None, *, sample_s: float = 1.0, with_gpus: bool = True) -> list[EndpointStatus]:
    """Find launch's deployments (and, with an inventory, its hosts' watch URLs) and probe them all at once."""
    from launcher.deploy import find_deployments, recall
    from launcher.errors import LauncherError

    rows: list[EndpointStatus] = []
    keys: list[str | None] = []
    gpu_jobs: list[tuple[EndpointStatus, str, str, dict]] = []  # probed with the endpoints, concurrently
    inv_hosts: dict[str, dict] = {}
    docker_urls: dict[str, str] = {}  # daemon URL -> inventory host
    ssh_hosts: dict[str, dict] = {}
    if inventory:
        from launcher.spec.load import load_inventory

        inv = load_inventory(inventory).spec
        inv_hosts = {n: h.model_dump(mode="json") for n, h in inv.hosts.items()}
        docker_urls = _inventory_daemons(inv)
        # hosts reached over ssh: their launch log directories describe what launch started there
        ssh_hosts = {n: inv_hosts[n] for n, h in inv.hosts.items() if not h.is_local or "ssh" in h.model_fields_set}
    # the inventory's Docker daemons are asked for launch's labels too: deployments another machine
    # started show up without this machine's notes. A host that runs no Docker is skipped quietly; one
    # whose inventory entry names a daemon that does not answer is warned about.
    quiet = frozenset(u for u, n in docker_urls.items() if not inv.hosts[n].docker) if docker_urls else frozenset()
    for f in find_deployments(docker_urls=sorted(docker_urls) or None, quiet_urls=quiet, ssh_hosts=ssh_hosts or None):
        procs = f.to_json()["processes"]
        if inv_hosts and not any(p["host"] in inv_hosts for p in procs):
            continue
        st = EndpointStatus(name=f.recipe, endpoint="", runtime=f.runtime, plan_hash=",".join(f.plan_hashes),
                            processes=procs)
        key = None
        meta = recall(f.recipe)
        labelled = next((h.ref for h in f.handles if h.ref.get("endpoint")), None)
        if meta is None and labelled is not None:  # started elsewhere: what the host itself says
            meta = {"endpoint": labelled["endpoint"], "served": labelled.get("served") or None,
                    "api_key": _recipe_key_source(f.recipe), "hosts": inv_hosts}
            st.note = (f"found by its container labels on {labelled.get('docker_url')} (started from another "
                       "machine?)" if f.runtime == "docker" else
                       f"found in launch's log directory on {labelled['ssh']['address']} (started from another "
                       "machine?)")
        if meta is None:
            st.note = "no endpoint recorded (started by an older launch?)"
        else:
            st.endpoint, st.served = meta["endpoint"], meta.get("served")
            if meta.get("api_key"):
                from launcher.auth import resolve
                from launcher.spec.keysource import KeySource

                try:
                    key = resolve(KeySource(**meta["api_key"]))
                except LauncherError:
                    st.note = "; ".join(filter(None, [st.note, "the API key source is not readable here: /v1 "
                                                                "checks may answer 401"]))
            if with_gpus:
                for h in sorted({p["host"] for p in procs}):
                    gpu_jobs.append((st, h, f.runtime, {**(meta.get("hosts") or {}).get(h, {}), "name": h}))
        rows.append(st)
        keys.append(key)
    known = {r.endpoint for r in rows}
    for name, h in inv_hosts.items():
        for url in ((h.get("watch") or {}).get("url") or []) if isinstance((h.get("watch") or {}).get("url"), list) \
                else [((h.get("watch") or {}).get("url"))]:
            if url and url.rstrip("/") not in known:
                rows.append(EndpointStatus(name=name, endpoint=url.rstrip("/"), source="inventory"))
                keys.append(None)

    async def _gpu(st: EndpointStatus, h: str, runtime: str, host: dict) -> None:
        st.gpus += [{"host": h, **g} for g in await asyncio.to_thread(_gpus, runtime, host)]

    async def _all():
        await asyncio.gather(*[_probe_one(r, k, sample_s) for r, k in zip(rows, keys) if r.endpoint],
                             *[_gpu(*job) for job in gpu_jobs])

    if rows:
        asyncio.run(_all())
    return rows
