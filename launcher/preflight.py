"""Preflight: every host of a plan checked concurrently; every problem listed at once, each with a fix.

Checks (../shared/reference/vllm.md and DESIGN.md "preflight"): host reachable (ssh), Docker daemon
answers (docker), GPUs and memory (launcher.probe: NVML locally, nvidia-smi over ssh, MemAvailable
on unified memory), the server's and Ray's ports free, the image present (docker) or the program on
PATH (local / ssh), the weights in the HF cache (a warning only: vLLM downloads them).
"""
from __future__ import annotations

import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from launcher.errors import EXIT_INPUT, EXIT_RUNTIME, LauncherError

HOST_TIMEOUT = 15.0


@dataclass
class Problem:
    host: str
    what: str
    fix: str
    kind: str = "config"  # config | unreachable | warning

    def render(self) -> str:
        return f"{self.host}: {self.what} (fix: {self.fix})"


class PreflightFailed(LauncherError):
    """Several hosts, several problems, one error. Exit 1 when a host or daemon cannot be reached
    (try again later), 2 when the setup itself is wrong (fix, then retry)."""

    def __init__(self, problems: list[Problem], recipe: str):
        self.problems = problems
        n = len(problems)
        super().__init__(f"preflight found {n} problem{'s' if n != 1 else ''} before starting {recipe}",
                         details=[p.render() for p in problems],
                         fix="fix the problems listed above, then run the same command again")
        self.exit_code = EXIT_RUNTIME if any(p.kind == "unreachable" for p in problems) else EXIT_INPUT


def _host_dict(plan, name: str) -> dict:
    return {**plan.hosts.get(name, {}), "name": name}


def ssh_command(host: dict) -> str:
    """The ssh command a person types to reach an inventory host as launch does (user, port, key)."""
    spec = host.get("ssh") or {}
    dest = f"{spec['user']}@{host.get('address')}" if spec.get("user") else str(host.get("address"))
    argv = ["ssh", dest]
    if spec.get("port") and int(spec["port"]) != 22:
        argv += ["-p", str(spec["port"])]
    if spec.get("identity_file"):
        argv += ["-i", str(spec["identity_file"])]
    return shlex.join(argv)


def _ports_for(plan, host: str) -> list[int]:
    """Ports the host's processes listen on (a server exec'd into the Ray head's container included)."""
    return sorted({p.port for p in plan.processes if p.host == host and p.port})


def _port_busy_local(port: int) -> bool:
    """Would a server fail to bind the port? Binds like uvicorn/vLLM do (SO_REUSEADDR), so a port
    left in TIME_WAIT by a closed connection is free, as it is for the server."""
    import socket

    for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET, "127.0.0.1")):
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((addr, port))
            except OSError:
                return True
    return False


def _port_busy(rt, host: dict, port: int, local: bool) -> bool | None:
    if local:
        return _port_busy_local(port)
    res = rt.run(host, ["sh", "-c", f"ss -Hltn 'sport = :{int(port)}' 2>/dev/null | head -1"], timeout=HOST_TIMEOUT)
    if res.code != 0:
        return None
    return bool(res.stdout.strip())


SIM_ENV = "LAUNCHER_SIM_HOSTS"  # set by `launch demo` and tests: the hosts are simulated, no GPU to check


def _gpu_problems(plan, rt, name: str, host: dict, local: bool) -> list[Problem]:
    """GPUs and memory through launcher.probe (NVML here, nvidia-smi over ssh, MemAvailable on
    unified memory): fewer GPUs than the inventory says, or less free memory than
    gpu_memory_utilization asks for (vLLM refuses to start then, after the image pull)."""
    import os

    want = int((host.get("gpus") or {}).get("count", 0) or 0)
    if want == 0 or os.environ.get(SIM_ENV) == "1":
        return []
    from launcher import probe

    try:
        if local:
            facts = probe.probe_local(name, need_gpu=True)
        else:
            facts = probe.probe_remote(name, host, rt.run, need_gpu=True, timeout=HOST_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - a probe failure is a warning, not a stop
        return [Problem(name, f"could not read the GPUs ({exc})", "check that nvidia-smi works there", "warning")]
    out = [Problem(name, e.what, e.fix, "unreachable" if not facts.reachable else "config") for e in facts.errors]
    if facts.errors:
        return out
    if len(facts.gpus) < want:
        out.append(Problem(name, f"the inventory says {want} GPU(s), the host shows {len(facts.gpus)}",
                           "check the driver (nvidia-smi), or correct gpus.count in the inventory"))
    util = _gpu_util(plan)
    for g in facts.gpus:
        if g.memory_total_mib and g.memory_free_mib is not None and g.memory_free_mib < g.memory_total_mib * util:
            free, total = g.memory_free_mib / 1024, g.memory_total_mib / 1024
            out.append(Problem(
                name, f"GPU {g.index} has {free:.1f} of {total:.1f} GiB free, less than gpu_memory_utilization "
                f"{util:g} asks for ({total * util:.1f} GiB): vLLM would refuse to start",
                ("drop the page cache (sync; echo 3 | sudo tee /proc/sys/vm/drop_caches) or " if g.unified else
                 "stop the other GPU processes (nvidia-smi) or ") + "lower vllm.gpu_memory_utilization",
                "warning" if g.unified else "config"))
    return out


def _gpu_util(plan) -> float:
    for p in plan.processes:
        if "--gpu-memory-utilization" in p.argv:
            try:
                return float(p.argv[p.argv.index("--gpu-memory-utilization") + 1])
            except (IndexError, ValueError):
                break
    return 0.9  # vLLM's default


def _over_ssh(plan, name: str) -> bool:
    """Is this host reached over ssh (the ssh runtime, or a Docker daemon at an ssh:// URL)?"""
    procs = [p for p in plan.processes if p.host == name]
    return plan.runtime == "ssh" or (plan.runtime == "docker" and
                                     any((p.docker_url or "").startswith("ssh://") for p in procs))


def _ssh_error(plan, rt, name: str, host: dict) -> str | None:
    if plan.runtime == "ssh" and getattr(rt, "check", None) is not None:
        return rt.check(host, timeout=HOST_TIMEOUT)
    if plan.runtime == "docker":  # an ssh:// daemon is only as reachable as the ssh login: say which failed
        from launcher import runtimes

        return runtimes.get("ssh").check(host, timeout=HOST_TIMEOUT)
    res = rt.run(host, ["true"], timeout=HOST_TIMEOUT)
    return None if res.code == 0 else ((res.stderr or res.stdout).strip() or f"exit {res.code}")


def reachability(plan, rt) -> dict[str, str | None]:
    """Every host the plan reaches over ssh, checked concurrently: name -> None (answers) or the error.
    `launch up` asks once, before looking for a deployment to attach to, and hands the answers to
    preflight, so an unreachable host costs one ssh timeout, not one per look."""
    names = [n for n in dict.fromkeys(p.host for p in plan.processes) if _over_ssh(plan, n)]
    if not names:
        return {}

    def one(n: str) -> str | None:
        try:
            return _ssh_error(plan, rt, n, _host_dict(plan, n))
        except Exception as exc:  # noqa: BLE001 - an error is an answer here
            return f"{type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max_workers=min(8, len(names)), thread_name_prefix="reach") as ex:
        return dict(zip(names, ex.map(one, names)))


def check_host(plan, rt, name: str, reach: dict[str, str | None] | None = None) -> list[Problem]:
    host = _host_dict(plan, name)
    local = plan.runtime == "local" or host.get("address") in ("127.0.0.1", "localhost", "::1", "local")
    problems: list[Problem] = []
    procs = [p for p in plan.processes if p.host == name]
    if _over_ssh(plan, name):
        err = reach[name] if reach is not None and name in reach else _ssh_error(plan, rt, name, host)
        if err:
            return [Problem(name, f"not reachable over ssh ({err.splitlines()[0]})",
                            f"check `{ssh_command(host)}` works without a password prompt "
                            "(keys, ~/.ssh/config, the inventory's ssh.user/port)", "unreachable")]
    if plan.runtime == "docker":
        urls = sorted({p.docker_url for p in procs if p.docker_url})
        for url in urls:
            err = rt.check(url) if hasattr(rt, "check") else None
            if err:
                return [Problem(name, f"the Docker daemon at {url} does not answer ({err.splitlines()[0]})",
                                "start Docker on the host (systemctl start docker) and check the inventory's "
                                "docker: URL / ssh access (rootless Docker, Docker Desktop, Colima: set docker:, "
                                "or DOCKER_HOST, to the socket `docker context inspect` shows)", "unreachable")]
        for image in sorted({p.container.image for p in procs if p.container}):
            for url in urls:
                try:
                    present = rt.has_image(url, image) if hasattr(rt, "has_image") else True
                except Exception:  # noqa: BLE001 - the pull will tell
                    present = True
                if not present:
                    problems.append(Problem(name, f"image {image} is not on the host yet; launch pulls it "
                                            "(can take a while)", f"docker pull {image} ahead of time", "warning"))
    else:
        for exe, path in sorted({(p.argv[0], p.env.get("PATH")) for p in procs if p.exec_in is None},
                                key=lambda t: (t[0], t[1] or "")):
            # the recipe's env may set PATH: the runtime exports it before starting, so look there too
            prefix = ["env", f"PATH={path}"] if path else []
            res = rt.run(host, [*prefix, "sh", "-c", f"command -v {shlex.quote(exe)}"], timeout=HOST_TIMEOUT)
            if res.code != 0:
                fix = ("pip install vllm (in the environment launch's processes see)" if exe == "vllm" else
                       "pip install 'ray[default]'" if exe == "ray" else f"install {exe}")
                problems.append(Problem(name, f"`{exe}` is not on PATH", fix + ", or use runtime: docker"))
    for port in _ports_for(plan, name):
        busy = _port_busy(rt, host, port, local)
        if busy:
            problems.append(_port_problem(plan, name, host, port))
    problems += _gpu_problems(plan, rt, name, host, local)
    problems += _weights_warning(plan, rt, name, host)
    return problems


def _port_problem(plan, name: str, host: dict, port: int) -> Problem:
    """A busy port; when one of launch's own deployments holds it, name it and how to free it."""
    from launcher.deploy import port_holders

    try:
        holders = port_holders(host.get("address") or "local", port, exclude=plan.recipe)
    except Exception:  # noqa: BLE001 - the state dir is a hint here, not a requirement
        holders = []
    if holders:
        names = ", ".join(holders)
        downs = " and ".join(f"`launch down {h}`" for h in holders)
        return Problem(name, f"port {port} is already in use, held by launch deployment "
                       f"{names}", f"run {downs} or pass --replace")
    return Problem(name, f"port {port} is already in use",
                   f"stop what listens there (ss -ltnp 'sport = :{port}'), or set another port in the recipe (port:)")


def _weights_warning(plan, rt, name: str, host: dict) -> list[Problem]:
    if "/" not in plan.model or plan.model.startswith(("/", ".")):
        return []
    cache = host.get("hf_cache") or "~/.cache/huggingface"
    d = f"{cache.rstrip('/')}/hub/models--{plan.model.replace('/', '--')}"
    res = rt.run(host, ["sh", "-c", f"test -d {d.replace('~', '$HOME', 1) if d.startswith('~') else shlex.quote(d)}"],
                 timeout=HOST_TIMEOUT)
    if res.code == 1:
        return [Problem(name, f"the weights of {plan.model} are not in the HF cache ({d}); vLLM downloads them "
                        "on the first start (can take long)", f"huggingface-cli download {plan.model}", "warning")]
    return []


def key_problem(plan, exc: LauncherError) -> Problem:
    """An unreadable API key source as a preflight problem, listed with the hosts' problems (so a
    missing key and an unreachable host show up in one run). It names the source, never a value."""
    where = getattr(plan, "api_key_where", None)
    return Problem(f"{where + ': ' if where else ''}api_key ({plan.api_key.describe()})", exc.what,
                   exc.fix or "fix api_key in the recipe")


def merge(problems: list[Problem]) -> list[Problem]:
    """One entry per distinct cause: the same problem on several hosts (the weights missing from every
    host's HF cache) is listed once, naming the hosts."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for p in problems:
        hosts = groups.setdefault((p.what, p.fix, p.kind), [])
        if p.host not in hosts:
            hosts.append(p.host)
    return [Problem(", ".join(hosts), what, fix, kind) for (what, fix, kind), hosts in groups.items()]


def preflight(plan, rt, *, hosts: list[str] | None = None, extra: list[Problem] | None = None,
              reach: dict[str, str | None] | None = None) -> list[str]:
    """Check every host concurrently. Returns warnings; raises PreflightFailed listing every problem
    (extra: problems found before, such as an unreadable API key source, listed with the rest;
    reach: reachability() answers already had, so no host is tried twice)."""
    names = hosts or list(dict.fromkeys(p.host for p in plan.processes))
    know = getattr(rt, "know_hosts", None)
    if know is not None:
        know(plan)  # the docker runtime: each ssh:// daemon is reached with its host's ssh settings
    results: list[list[Problem]] = []
    if names:
        with ThreadPoolExecutor(max_workers=min(8, len(names)), thread_name_prefix="preflight") as ex:
            results = list(ex.map(lambda n: _safe_check(plan, rt, n, reach), names))
    problems = merge(list(extra or []) + [p for group in results for p in group])
    errors = [p for p in problems if p.kind != "warning"]
    if errors:
        raise PreflightFailed(errors, plan.recipe)
    return [p.render() for p in problems if p.kind == "warning"]


def _safe_check(plan, rt, name: str, reach: dict[str, str | None] | None = None) -> list[Problem]:
    try:
        return check_host(plan, rt, name, reach)
    except LauncherError as exc:
        return [Problem(name, exc.what, exc.fix or "see the message", "unreachable")]
    except Exception as exc:  # noqa: BLE001 - one host's surprise must not hide the others' problems
        return [Problem(name, f"preflight failed: {type(exc).__name__}: {exc}", "run with --debug", "unreachable")]
