"""Small builders shared by the runtime integration tests (plans without YAML)."""
from __future__ import annotations

import sys
import time

from launcher.plan import ContainerSpec, Plan, Process

SECRET = "sk-test-6f1d2c9e-NEVER-IN-ARGV"

# A tiny server stand-in: prints lines, reports whether the key arrived (never its value),
# optionally spawns a grandchild, then sleeps or exits with a given code.
CHILD = r"""
import os, subprocess, sys, time
print("starting", flush=True)
print("key present:", bool(os.environ.get("VLLM_API_KEY")), flush=True)
print("plain:", os.environ.get("PLAIN_VAR", ""), flush=True)
mode = sys.argv[1]
if mode == "grandchild":
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    print("spawned", flush=True)
for i in range(int(sys.argv[2]) if len(sys.argv) > 2 else 0):
    print(f"line {i}", flush=True)
if mode.startswith("exit"):
    sys.exit(int(mode[4:]))
time.sleep(300)
"""


def make_plan(argv, *, recipe="rt-test", runtime="local", host="node", address="127.0.0.1", secret=True,
              hosts=None, container=None, exec_in=None, name="server", role="server", docker_url=None,
              extra=()) -> tuple[Plan, Process]:
    proc = Process(name=name, host=host, address=address, role=role, runtime=runtime, argv=argv,
                   env={"PLAIN_VAR": "plain-value"},
                   secret_env={"VLLM_API_KEY": "env:VLLM_API_KEY"} if secret else {},
                   port=8000, exec_in=exec_in, container=container, docker_url=docker_url)
    plan = Plan(recipe=recipe, recipe_path="/dev/null", inventory="test", engine="vllm", runtime=runtime,
                model="m", served_name="m", endpoint="http://127.0.0.1:8000", base_url="http://127.0.0.1:8000/v1",
                processes=[proc, *extra], hosts=hosts or {host: {"address": address}}, hash="0123456789abcdef")
    return plan, proc


def child_argv(*args: str) -> list[str]:
    return [sys.executable, "-c", CHILD, *args]


def wait_for(pred, timeout=10.0, step=0.02):
    """Bounded wait; returns the predicate's last truthy value or raises AssertionError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


def secret_in_any_cmdline(secret: str) -> list[str]:
    import psutil

    hits = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info.get("cmdline") or [])
        if secret in cmd:
            hits.append(f"{p.info['pid']}: {cmd}")
    return hits


__all__ = ["SECRET", "CHILD", "make_plan", "child_argv", "wait_for", "secret_in_any_cmdline", "still_running",
           "ContainerSpec"]


def still_running(p) -> bool:
    """A process that runs and is not a zombie; one that exits while we look is not running."""
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return False
