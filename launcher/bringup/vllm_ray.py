"""Two-node Ray: after the head and the workers start, wait until `ray status` (run in the head)
shows every GPU of the plan, then the server may start. A worker that never joins is diagnosed.

NVIDIA's DGX Spark playbook does exactly this by hand (../shared/reference/vllm.md, "Multi-node").
"""
from __future__ import annotations

import re
import threading
import time
from typing import Callable

from launcher.engines.vllm_logs import ray_worker_missing
from launcher.runtimes.base import CommandResult, Handle

RX_GPU = re.compile(r"([\d.]+)\s*/\s*([\d.]+)\s+GPU\b")
RAY_POLL_S = 1.0


def gpus_in_status(text: str) -> float | None:
    """Total GPUs in a `ray status` report (`0.0/2.0 GPU` → 2.0), None when it shows none."""
    m = RX_GPU.search(text or "")
    return float(m.group(2)) if m else None


def expected_gpus(plan) -> int:
    hosts = {p.host for p in plan.processes if p.role in ("ray-head", "ray-worker")}
    return sum(int((plan.hosts.get(h, {}).get("gpus") or {}).get("count", 1)) for h in hosts)


def head_run(plan, rt, started: list[Handle], argv: list[str], *, timeout: float = 15.0) -> CommandResult:
    """Run a short command where the Ray head runs: inside its container (docker), else on its host."""
    head = next((h for h in started if h.role == "ray-head"), None)
    if head is not None and head.runtime == "docker":
        return docker_exec(rt, head, argv)
    host = head.host if head else plan.processes[0].host
    return rt.run({**plan.hosts.get(host, {}), "name": host}, argv, timeout=timeout)


def docker_exec(rt, handle: Handle, argv: list[str]) -> CommandResult:
    """`docker exec CONTAINER argv` with its output (the Ray head's container)."""
    try:
        client = rt.client(handle.ref["docker_url"])
        code, out = client.containers.get(handle.ref["container_id"]).exec_run(argv, stdout=True, stderr=True)
    except Exception as exc:  # noqa: BLE001 - reported like a failed command; the wait retries
        return CommandResult(1, "", f"docker exec failed: {exc}")
    text = out.decode("utf-8", "replace") if isinstance(out, bytes) else str(out or "")
    return CommandResult(int(code or 0), text, "")


def wait_ray(plan, rt, started: list[Handle], progress, *, clock: Callable[[], float] = time.monotonic,
             timeout: float = 300.0, poll: float = RAY_POLL_S, wait: Callable[[float], None] | None = None) -> float:
    """Block until the cluster shows every planned GPU; returns the GPU count seen.

    Raises ServerFailed (via bringup.vllm.server_failed) when a Ray process dies or a worker never
    joins within `timeout`; the caller stops what was started."""
    from launcher.bringup.vllm import server_failed

    want = expected_gpus(plan)
    head = next((p for p in plan.processes if p.role == "ray-head"), None)
    address = f"{head.address}:{_ray_port(head.argv)}" if head else None
    argv = ["ray", "status"] + (["--address", address] if address else [])
    ev = threading.Event()
    wait = wait or ev.wait
    t0 = clock()
    seen, last = None, ""
    progress.note(f"waiting for Ray to show {want} GPU(s)")
    while True:
        for h in started:
            info = rt.exit_info(h)
            if info is not None:
                from launcher.engines.vllm_logs import Failure

                tail = list(rt.logs(h, tail=30))
                f = Failure("ray-worker" if h.role == "ray-worker" else "exited",
                            f"{h.process} on {h.host} exited before the cluster formed ({info.reason or info.code})",
                            "read its log lines below; check that `ray` exists where it runs (some NGC images "
                            "ship without it: pip install 'ray[default]') and that the head's port is free")
                raise server_failed(plan, f, tail)
        res = head_run(plan, rt, started, argv)
        last = (res.stdout or "") + (res.stderr or "")
        seen = gpus_in_status(res.stdout) if res.code == 0 else None
        if seen is not None and seen >= want:
            progress.note(f"Ray cluster up: {seen:g}/{want} GPU(s)")
            return seen
        if clock() - t0 >= timeout:
            missing = [h for h in started if h.role == "ray-worker"]
            host = ", ".join(h.host for h in missing) or None
            shown = f"{seen:g} of {want} GPUs" if seen is not None else "no cluster"
            tail = []
            for h in missing[:1]:
                tail = list(rt.logs(h, tail=30))
            raise server_failed(plan, ray_worker_missing(host, shown, last.strip().splitlines()[-1] if last.strip()
                                                          else ""), tail)
        wait(poll)


def _ray_port(argv: list[str]) -> int:
    for a in argv:
        if a.startswith("--port="):
            return int(a.split("=", 1)[1])
    for i, a in enumerate(argv):
        if a == "--port" and i + 1 < len(argv):
            return int(argv[i + 1])
    return 6379
