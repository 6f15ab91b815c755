"""Deploy: start or attach (per engine, launcher.bringup), stop, and find what launch started.

Deployments are found, not remembered (DESIGN.md "State"): local and ssh processes through their
records in the state dir (checked by the runtime before being trusted), containers by their labels.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from launcher.deployment import Deployment
from launcher.runtimes.base import Handle

RUNTIME_NAMES = ("local", "ssh", "docker")


def up(plan, recipe=None, *, replace: bool = False, timeout: float | None = None, progress=None,
       **kw) -> Deployment:
    """Start (or attach to) the plan's server, wait until it is ready, measure it."""
    from launcher.bringup import module_for

    return module_for(plan.engine).up(plan, recipe, replace=replace, timeout=timeout, progress=progress, **kw)


@dataclass
class Found:
    """One recipe's processes launch started, as the runtimes see them now."""

    recipe: str
    runtime: str
    plan_hashes: list[str]
    handles: list[Handle] = field(default_factory=list)
    alive: dict[str, bool] = field(default_factory=dict)  # "process@host" -> running

    @property
    def running(self) -> bool:
        return any(self.alive.values())

    def to_json(self) -> dict:
        return {"recipe": self.recipe, "runtime": self.runtime, "plan_hashes": self.plan_hashes,
                "processes": [{"process": h.process, "role": h.role, "host": h.host, "address": h.address,
                               "alive": self.alive.get(f"{h.process}@{h.host}", False)} for h in self.handles]}


def _runtimes(names=RUNTIME_NAMES):
    from launcher import runtimes

    out = []
    for n in names:
        try:
            out.append(runtimes.get(n))
        except Exception:  # noqa: BLE001 - a runtime whose library is missing finds nothing
            continue
    return out


def _alive(rt, h: Handle) -> bool:
    try:
        return rt.alive(h)
    except Exception:  # noqa: BLE001 - unreachable host: not known to be running
        return False


def known_docker_urls(recipe: str | None = None) -> list[str]:
    """Docker daemons launch started containers on (from the deployment notes)."""
    import json

    from launcher import paths

    urls: set[str] = set()
    d = paths.state_dir() / "deployments"
    for f in (d.glob("*.json") if d.is_dir() else []):
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if recipe is None or data.get("recipe") == recipe:
            urls.update(data.get("docker_urls") or [])
    return sorted(urls)


def docker_ssh_host(url: str) -> dict | None:
    """The inventory host (its ssh settings) behind an ssh:// Docker daemon, from the deployment
    notes; lets `down`, `status` and `logs` reach the daemon as `up` did."""
    import json

    from launcher import paths

    d = paths.state_dir() / "deployments"
    for f in (sorted(d.glob("*.json")) if d.is_dir() else []):
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for name, host in (data.get("docker_hosts") or {}).items():
            if host.get("docker_url") == url:
                return {**(data.get("hosts") or {}).get(name, {}), "name": name}
    return None


def find_handles(rt, recipe: str | None, docker_urls: list[str] | None = None) -> list[Handle]:
    """rt.find(), with the Docker daemons this recipe (or any) used when rt is the docker runtime."""
    if rt.name == "docker":
        urls = sorted(set(docker_urls or []) | set(known_docker_urls(recipe)))
        return rt.find(recipe, docker_urls=urls) if urls else rt.find(recipe)
    return rt.find(recipe)


def _handles_at(rt, recipe: str | None, *, docker_urls: list[str] | None = None,
                ssh_hosts: dict[str, dict] | None = None, quiet_urls: frozenset[str] = frozenset()) -> list[Handle]:
    """rt.find(), widened to the places given (another machine's deployments, no notes needed): Docker
    daemons asked one by one for launch's labels, ssh hosts' launch log directories."""
    if rt.name == "docker" and docker_urls:
        return _docker_handles(rt, recipe, docker_urls, quiet_urls=quiet_urls)
    if rt.name == "ssh" and ssh_hosts:
        return rt.find(recipe, hosts=ssh_hosts)
    return find_handles(rt, recipe)


def places(plan) -> tuple[list[str], dict[str, dict]]:
    """Where a plan runs, for finding it later without notes: its Docker daemons (the shared docker
    runtime learns the ssh settings of the ssh:// ones) and the hosts it reaches over ssh."""
    if plan.runtime == "docker":
        from launcher import runtimes

        runtimes.get("docker").know_hosts(plan)
        return sorted({p.docker_url for p in plan.processes if p.docker_url}), {}
    if plan.runtime == "ssh":
        return [], {p.host: {"address": p.address, **(plan.hosts.get(p.host) or {})} for p in plan.processes}
    return [], {}


def find_deployments(recipe: str | None = None, *, runtimes=None, docker_urls: list[str] | None = None,
                     quiet_urls: frozenset[str] = frozenset(), ssh_hosts: dict[str, dict] | None = None) -> list[Found]:
    """Every deployment launch started (optionally one recipe's), grouped by recipe and runtime.
    docker_urls: more Docker daemons to ask for launch's labels (an inventory's), besides the notes';
    a daemon in quiet_urls that does not answer is skipped without a warning. ssh_hosts: hosts (name ->
    inventory host) whose launch log directory is read for processes started over ssh."""
    groups: dict[tuple[str, str], Found] = {}
    for rt in runtimes if runtimes is not None else _runtimes():
        try:
            handles = _handles_at(rt, recipe, docker_urls=docker_urls, ssh_hosts=ssh_hosts, quiet_urls=quiet_urls)
        except Exception:  # noqa: BLE001 - e.g. no Docker daemon: nothing found there
            continue
        for h in handles:
            if recipe and h.recipe != recipe:
                continue
            g = groups.setdefault((h.recipe, rt.name), Found(h.recipe, rt.name, []))
            g.handles.append(h)
            if h.plan_hash not in g.plan_hashes:
                g.plan_hashes.append(h.plan_hash)
            g.alive[f"{h.process}@{h.host}"] = _alive(rt, h)
    return sorted(groups.values(), key=lambda f: (f.recipe, f.runtime))


def _meta_path(recipe: str):
    from launcher import paths, state

    return paths.state_dir() / "deployments" / f"{state.safe_name(recipe)}.json"


def remember(plan) -> None:
    """Note how to reach a deployment (endpoint, served name, key source — never a key value) next to
    its process records, so `status` can probe it even when the recipe was given as a path."""
    import json
    import os

    path = _meta_path(plan.recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"recipe": plan.recipe, "recipe_path": plan.recipe_path, "endpoint": plan.endpoint,
            "served": plan.served_name, "plan_hash": plan.hash, "runtime": plan.runtime,
            "api_key": plan.api_key.model_dump(exclude_none=True) if plan.api_key else None,
            "hosts": plan.hosts,
            "docker_urls": sorted({p.docker_url for p in plan.processes if p.docker_url}),
            "docker_hosts": {p.host: {"docker_url": p.docker_url} for p in plan.processes
                             if p.docker_url and p.docker_url.startswith("ssh://")},
            "ports": sorted({(p.address, p.port) for p in plan.processes if p.port})}
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def _local_names() -> frozenset[str]:
    from launcher.spec.inventory import LOCAL_ADDRESSES

    return frozenset(LOCAL_ADDRESSES) | {"0.0.0.0", "[::1]", ""}  # also what listens on every address


def _same_host(a: str | None, b: str | None) -> bool:
    a, b = (a or "").strip("[]").lower(), (b or "").strip("[]").lower()
    local = _local_names()
    return a == b or (a in local and b in local)


def port_holders(address: str, port: int, *, exclude: str | None = None) -> list[str]:
    """Launch's own deployments (their recipe names) that serve or listen on this host and port, from
    the deployment notes in the state dir: their endpoint, and every process port they planned."""
    import json
    from urllib.parse import urlsplit

    from launcher import paths

    d = paths.state_dir() / "deployments"
    out: list[str] = []
    for f in (sorted(d.glob("*.json")) if d.is_dir() else []):
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        recipe = data.get("recipe")
        if not recipe or recipe == exclude:
            continue
        held = [(a, int(p)) for a, p in (data.get("ports") or []) if p]
        try:
            u = urlsplit(data.get("endpoint") or "")
            if u.port:
                held.append((u.hostname or "", u.port))
        except ValueError:
            pass
        if any(p == int(port) and _same_host(a, address) for a, p in held) and recipe not in out:
            out.append(recipe)
    return out


def forget_deployment(recipe: str) -> None:
    _meta_path(recipe).unlink(missing_ok=True)


def recall(recipe: str) -> dict | None:
    import json

    try:
        return json.loads(_meta_path(recipe).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _docker_handles(rt, recipe: str | None, docker_urls: list[str], *,
                    quiet_urls: frozenset[str] = frozenset()) -> list[Handle]:
    """The recipe's (or every recipe's) labelled containers on each daemon, asked concurrently (found,
    not remembered: another machine, or lost state, still finds them through the recipe's inventory).
    A daemon that does not answer is said, unless it is in quiet_urls."""
    from concurrent.futures import ThreadPoolExecutor

    from launcher import ui

    def ask(url: str):
        try:
            return rt.find(recipe, docker_urls=[url]), None
        except Exception as exc:  # noqa: BLE001 - one unreachable daemon must not hide the others
            return [], getattr(exc, "what", None) or str(exc)

    urls = sorted(set(docker_urls) | set(known_docker_urls(recipe)))
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(urls)))) as pool:
        answers = list(pool.map(ask, urls))
    out: list[Handle] = []
    seen: set[str] = set()
    for url, (found, error) in zip(urls, answers):
        if error is not None:
            if url not in quiet_urls:
                whose = f"{recipe}'s containers" if recipe else "launch's containers"
                ui.warn(f"could not list {whose} on the Docker daemon at {url} ({error}); any there are still "
                        "running")
            continue
        for h in found:
            key = h.ref.get("container_id") or h.ref.get("exec_id") or f"{h.process}@{h.host}"
            if key not in seen:
                seen.add(key)
                out.append(h)
    return out


def down(recipe: str, *, runtimes=None, docker_urls: list[str] | None = None,
         ssh_hosts: dict[str, dict] | None = None) -> list[str]:
    """Stop every process launch started for a recipe (workers first, then the server / Ray head).
    docker_urls: the daemons the recipe's plan uses (besides those in the deployment notes); ssh_hosts:
    the hosts its plan starts processes on over ssh (their launch log directories say what runs).
    Returns "process@host" for each one stopped; processes launch did not start are never touched."""
    from launcher import state

    stopped: list[str] = []
    order = {"server": 0, "ray-worker": 1, "worker": 1, "ray-head": 2}
    for rt in runtimes if runtimes is not None else _runtimes():
        try:
            handles = [h for h in _handles_at(rt, recipe, docker_urls=docker_urls, ssh_hosts=ssh_hosts)
                       if h.recipe == recipe]
        except Exception:  # noqa: BLE001
            continue
        # the server first (it holds the GPUs and the port), then workers, the Ray head last
        for h in sorted(handles, key=lambda h: order.get(h.role, 1)):
            was_running = _alive(rt, h)
            rt.stop(h)
            state.forget(h)
            if was_running:
                stopped.append(f"{h.process}@{h.host}")
    _meta_path(recipe).unlink(missing_ok=True)
    return stopped
