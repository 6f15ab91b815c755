"""vLLM bring-up: attach to a matching deployment, or preflight, start (single node, Ray, mp), watch
the start-up, diagnose failures and measure capacity.

What this launch starts it also cleans up when the start fails; what it attached to it never touches.
Facts: ../shared/reference/vllm.md. The runtime contract: launcher/runtimes/base.py.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable

from launcher.bringup.vllm_follow import Follower
from launcher.bringup.vllm_ray import head_run, wait_ray
from launcher.deployment import Deployment
from launcher.engines.vllm_logs import Failure, exit_failure
from launcher.errors import LauncherError, RuntimeFailure, ServerFailed
from launcher.runtimes.base import ExitInfo, Handle
from launcher.watch import AuthRejected, Progress, PullTracker, ReadyProbe, default_progress, watch_startup

__all__ = ["up", "head_run", "host_facts", "measure", "api_key_for", "server_failed", "stop_all"]


def host_facts(plan, name: str) -> dict:
    """What a runtime's run() gets for an inventory host: its inventory facts plus its name."""
    return {**plan.hosts.get(name, {}), "name": name}


def api_key_for(plan) -> str | None:
    if plan.api_key is None:
        return None
    from launcher.auth import resolve

    return resolve(plan.api_key, where=plan.api_key_where or f"{plan.recipe_path}: api_key")


def key_source(plan) -> str | None:
    """Where launch's API key comes from, for messages ("env:MYKEY"); never the value."""
    return plan.api_key.describe() if getattr(plan, "api_key", None) is not None else None


def ready_probe(plan, key: str | None) -> ReadyProbe:
    return ReadyProbe(plan.endpoint, plan.served_name, key, key_source=key_source(plan), recipe=plan.recipe)


def server_failed(plan, failure: Failure, tail: list[str], *, cleaned: list[str] | None = None) -> ServerFailed:
    head = plan.head()
    where = f"{plan.recipe} ({head.name} on {head.host})" if head else plan.recipe
    details = list(failure.details)
    if cleaned:
        details.append("stopped what this launch started: " + ", ".join(cleaned))
    exc = ServerFailed(failure.cause, where=where, fix=failure.fix, log_tail=tail[-30:], details=details)
    exc.kind = failure.kind  # type: ignore[attr-defined]
    exc.failure = failure  # type: ignore[attr-defined]
    return exc


def stop_all(rt, handles: list[Handle]) -> list[str]:
    """Stop handles in reverse start order; never raises (a clean-up must finish)."""
    from launcher import state

    done = []
    for h in reversed(handles):
        try:
            rt.stop(h)
        except Exception:  # noqa: BLE001 - keep cleaning the rest
            pass
        try:
            state.forget(h)
        except Exception:  # noqa: BLE001
            pass
        done.append(f"{h.process}@{h.host}")
    return done


def measure(plan, lines: list[str], key: str | None, models: dict | None = None):
    """Capacity from the log, /metrics and /v1/models (launcher.capacity_read does the parsing)."""
    from launcher.capacity_read import capacity_from_vllm
    from launcher.http import bearer, client

    metrics = None
    with client(connect=2.0, read=5.0, retries=1, headers=bearer(key)) as c:
        try:
            r = c.get(plan.endpoint + "/metrics")
            metrics = r.text if r.status_code == 200 else None
        except Exception:  # noqa: BLE001 - capacity is best effort; the log usually has it
            metrics = None
        if models is None:
            try:
                r = c.get(plan.endpoint + "/v1/models")
                models = r.json() if r.status_code == 200 else None
            except Exception:  # noqa: BLE001
                models = None
    return capacity_from_vllm(lines, metrics, models, model=plan.served_name)


def _version(plan) -> str | None:
    from launcher.http import client

    try:
        with client(connect=2.0, read=3.0, retries=0) as c:
            return c.get(plan.endpoint + "/version").json().get("version")
    except Exception:  # noqa: BLE001
        return None


def _deployment(plan, capacity, version, attached: bool) -> Deployment:
    return Deployment(recipe=plan.recipe, engine=plan.engine, base_url=plan.base_url, model=plan.served_name,
                      plan_hash=plan.hash, attached=attached, capacity=capacity, version=version,
                      api_key_env=plan.api_key_env)


# ------------------------------------------------------------------------------------------ attach
def _attach_or_clear(plan, rt, key, replace: bool, progress: Progress, timeout: float) -> Deployment | None:
    """Attach to this recipe's running deployment when its plan hash matches; otherwise stop it
    (--replace) or refuse. Returns the Deployment when attached."""
    from launcher.deploy import find_handles

    urls = [p.docker_url for p in plan.processes if p.docker_url]
    try:
        recorded = [h for h in find_handles(rt, plan.recipe, urls) if h.recipe == plan.recipe]
    except LauncherError:
        # a host or daemon that cannot be reached holds nothing to attach to; preflight lists
        # every such problem at once, each with its fix
        progress.note(f"could not look for a running {plan.recipe} (a host or its Docker daemon did not answer); checking the hosts")
        return None
    alive = [h for h in recorded if rt.alive(h)]
    dead = [h for h in recorded if h not in alive]
    hashes = {h.plan_hash for h in alive}
    server = next((h for h in alive if h.role == "server"), None)
    if alive and server is None and hashes == {plan.hash}:
        # the same plan, but no server process among them: vLLM died while the Ray head and workers (or
        # mp's headless workers) kept running -- unless its endpoint answers, which means a server this
        # machine has no record of (a `docker exec` started from another machine): never stop that one
        # without --replace
        if _endpoint_answers(plan, key) and not replace:
            raise RuntimeFailure(f"{plan.recipe}'s server answers at {plan.endpoint}, but this machine has no "
                                 "record of it (started from another machine?)",
                                 where=", ".join(f"{h.process}@{h.host}" for h in alive),
                                 fix="use it from the machine that started it, add --replace to restart it "
                                     f"from here, or `launch down {plan.recipe}` first")
        _restart_leftovers(plan, rt, alive, dead, progress)
        return None
    if dead:
        from launcher import state

        for h in dead:
            state.forget(h)
    if not alive:
        return None
    if hashes == {plan.hash} and server is not None:
        probe = ready_probe(plan, key)
        try:
            ready = probe()
            if not ready:  # same plan, still starting (an interrupted `launch up`): watch it, do not own it
                progress.note(f"attaching to {plan.recipe}, which is still starting")
                follower = Follower(rt, server)
                try:
                    res = watch_startup(follower, exited=lambda: rt.exit_info(server), probe=probe,
                                        timeout=timeout, progress=progress)
                finally:
                    follower.close()
                if not res.ready:
                    raise server_failed(plan, res.failure or exit_failure(None, None, False), res.tail)
            lines = _first_lines(rt, server)
            capacity = measure(plan, lines, key, probe.models)
        finally:
            probe.close()
        progress.note(f"attached to the running {plan.recipe} (plan {plan.hash}); nothing restarted")
        return _deployment(plan, capacity, _version(plan), attached=True)
    what = (f"recipe {plan.recipe} is already running with a different plan "
            f"(running {', '.join(sorted(hashes))}, now {plan.hash})")
    if not replace:
        raise RuntimeFailure(what, where=", ".join(f"{h.process}@{h.host}" for h in alive),
                             fix="add --replace to stop it and start the new plan, or `launch down "
                                 f"{plan.recipe}` first")
    progress.note(what + "; --replace: stopping it")
    stop_all(rt, alive)
    return None


def _endpoint_answers(plan, key: str | None) -> bool:
    """Does a server answer at the plan's endpoint (ready, or refusing our key)?"""
    probe = ready_probe(plan, key)
    try:
        return bool(probe())
    except LauncherError:
        return True  # e.g. 401: something is serving there
    finally:
        probe.close()


def _restart_leftovers(plan, rt, alive: list[Handle], dead: list[Handle], progress: Progress) -> None:
    """Stop what is left of a deployment whose server exited (its own records only), so it starts again."""
    why = ""
    for h in dead:
        if h.role == "server":
            try:
                info = rt.exit_info(h)
            except Exception:  # noqa: BLE001 - the reason is a nicety
                info = None
            why = f" ({info.reason})" if info is not None and getattr(info, "reason", "") else ""
    left = ", ".join(f"{h.process}@{h.host}" for h in alive)
    progress.note(f"found {plan.recipe} (plan {plan.hash}) with its server exited{why} while {left} "
                  "still ran; stopping those and starting it again")
    stop_all(rt, alive + dead)


def _stop_port_holders(plan, progress: Progress) -> None:
    """--replace: stop launch's other deployments that hold this plan's ports on its hosts (found
    through launch's own state, so nothing launch did not start is touched)."""
    from launcher.deploy import down, port_holders

    seen: set[str] = set()
    for p in plan.processes:
        if not p.port:
            continue
        for other in port_holders(p.address, p.port, exclude=plan.recipe):
            if other in seen:
                continue
            seen.add(other)
            progress.note(f"--replace: stopping launch deployment {other}, which holds port {p.port} on {p.host}")
            stopped = down(other)
            if stopped:
                progress.note(f"stopped {', '.join(stopped)}")


def _reach_first(plan, rt) -> dict[str, str | None] | None:
    """When looking for a running deployment goes over ssh (ssh:// Docker daemons; ssh processes on
    record), ask every such host once, concurrently, first: an unreachable host then costs one ssh
    timeout, and preflight reuses the answers. None when the look-up stays on this machine."""
    from launcher import state
    from launcher.preflight import reachability

    ssh_docker = plan.runtime == "docker" and any((p.docker_url or "").startswith("ssh://") for p in plan.processes)
    recorded = False
    if plan.runtime == "ssh":
        try:
            recorded = bool(state.load(plan.recipe, runtime="ssh"))
        except Exception:  # noqa: BLE001
            recorded = True
    if not (ssh_docker or recorded):
        return None
    return reachability(plan, rt)


def _first_lines(rt, handle: Handle, limit: int = 4000) -> list[str]:
    out: list[str] = []
    try:
        for line in rt.logs(handle, follow=False):
            out.append(line)
            if len(out) >= limit:
                break
    except Exception:  # noqa: BLE001 - a log we cannot read leaves /metrics as the source
        pass
    return out


# ------------------------------------------------------------------------------------------- start
def _exited_any(rt, handles: list[Handle], server: Handle | None) -> Callable[[], ExitInfo | None]:
    """The watch's exit check: the server first (its exit explains most), then any other process."""
    order = ([server] if server else []) + [h for h in handles if h is not server]

    def check() -> ExitInfo | None:
        for h in order:
            try:
                info = rt.exit_info(h)
            except Exception:  # noqa: BLE001 - a dropped ssh/docker connection is not a death
                continue
            if info is not None:
                if h is not server:
                    info = ExitInfo(info.code, info.signal, info.oom_killed,
                                    f"{h.process} on {h.host}: {info.reason or 'ended'}")
                return info
        return None

    return check


def _start_all(plan, rt, secrets: dict[str, str], progress: Progress, timeout: float,
               clock) -> tuple[list[Handle], Handle | None]:
    from launcher.auth import secrets_for

    started: list[Handle] = []
    ray = any(p.role == "ray-head" for p in plan.processes)
    try:
        for proc in plan.processes:
            if proc.role == "server" and ray:
                wait_ray(plan, rt, started, progress, clock=clock, timeout=min(timeout, 300.0))
            progress.note(f"starting {proc.name} on {proc.host} ({plan.runtime})")
            started.append(rt.start(proc, plan, secrets_for(proc, secrets)))
    except BaseException:
        stop_all(rt, started)
        raise
    server = next((h for h in started if h.role == "server"), None)
    return started, server


def _refuse_without_key(plan, rt, exc, skip_preflight: bool) -> None:
    """The key source is unreadable. With this recipe running, that is the only problem (attaching
    needs just the key); otherwise it is listed together with every host's preflight problems."""
    from launcher.deploy import find_handles
    from launcher.preflight import PreflightFailed, key_problem, preflight

    urls = [p.docker_url for p in plan.processes if p.docker_url]
    try:
        running = any(h.recipe == plan.recipe and rt.alive(h) for h in find_handles(rt, plan.recipe, urls))
    except Exception:  # noqa: BLE001 - unreachable hosts: preflight says so below
        running = False
    if running:
        raise exc
    problem = key_problem(plan, exc)
    if skip_preflight:
        raise PreflightFailed([problem], plan.recipe)
    preflight(plan, rt, extra=[problem])  # raises: the key problem is an error


@contextmanager
def _pull_display(rt, progress: Progress, clock, t0: float):
    """Image pulls (docker runtime) shown as the first stage: per-layer progress -> one percent."""
    if not hasattr(rt, "on_pull"):
        yield
        return
    old = rt.on_pull
    rt.on_pull = PullTracker(progress, lambda: clock() - t0)
    try:
        yield
    finally:
        rt.on_pull = old


def up(plan, recipe=None, *, replace: bool = False, timeout: float | None = None,
       progress: Progress | None = None, runtime=None, clock: Callable[[], float] = time.monotonic,
       skip_preflight: bool = False) -> Deployment:
    """Start or attach; wait until ready; measure. Raises ServerFailed (exit 4) with the diagnosis."""
    from launcher import runtimes
    from launcher.preflight import preflight

    rt = runtime or runtimes.get(plan.runtime)
    timeout = float(timeout if timeout is not None else plan.startup_timeout)
    own_progress = progress is None
    progress = progress or default_progress(f"{plan.recipe}: ")
    try:
        know = getattr(rt, "know_hosts", None)
        if know is not None:
            know(plan)  # docker: each ssh:// daemon is reached with its inventory host's ssh settings
        try:
            key = api_key_for(plan)
            from launcher.auth import plan_secrets

            secrets = plan_secrets(plan, key)  # HF_TOKEN and other env references: missing ones stop here
        except LauncherError as exc:
            _refuse_without_key(plan, rt, exc, skip_preflight)
            raise
        reach = _reach_first(plan, rt)
        unreachable = sorted(n for n, err in (reach or {}).items() if err)
        if unreachable:  # nothing there to attach to; preflight lists it (and every other problem)
            progress.note(f"{', '.join(unreachable)} did not answer over ssh; not looking for a running {plan.recipe}")
            att = None
        else:
            att = _attach_or_clear(plan, rt, key, replace, progress, timeout)
        if att is not None:
            return att
        if replace:
            _stop_port_holders(plan, progress)
        t0 = clock()
        if not skip_preflight:
            for w in preflight(plan, rt, reach=reach):
                progress.note(f"warning: {w}")
        from launcher.deploy import forget_deployment, remember

        remember(plan)  # before anything starts: `launch down` of an interrupted launch reaches it all
        try:
            with _pull_display(rt, progress, clock, t0):
                started, server = _start_all(plan, rt, secrets, progress, timeout, clock)
        except BaseException:
            forget_deployment(plan.recipe)
            raise
        probe = ready_probe(plan, key)
        follower = Follower(rt, server)
        try:
            res = watch_startup(follower, exited=_exited_any(rt, started, server),
                                probe=probe, timeout=max(1.0, timeout - (clock() - t0)), progress=progress,
                                exit_poll=1.0 if plan.runtime == "local" else 2.0, clock=clock,
                                timeout_label=timeout, started_at=t0)
        except AuthRejected as exc:
            probe.close()
            follower.close()
            cleaned = stop_all(rt, started)
            forget_deployment(plan.recipe)
            exc.details.append("stopped what this launch started: " + ", ".join(cleaned))
            raise
        except BaseException:
            probe.close()
            follower.close()
            stop_all(rt, started)
            forget_deployment(plan.recipe)
            raise
        probe.close()
        follower.close()
        if not res.ready:
            cleaned = stop_all(rt, started)
            forget_deployment(plan.recipe)
            raise server_failed(plan, res.failure or exit_failure(None, None, False), res.tail, cleaned=cleaned)
        capacity = measure(plan, res.lines, key, res.models)
        progress.note(f"{plan.served_name} ready at {plan.base_url} after {res.elapsed:.1f}s")
        return _deployment(plan, capacity, res.version or _version(plan), attached=False)
    finally:
        if own_progress:
            progress.close()
