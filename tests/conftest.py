"""Shared test helpers. Tests talk to 127.0.0.1 only, with bounded loops and timeouts."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAUNCH = [sys.executable, "-m", "launcher.cli.main"]


_HANDED_OUT: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free loopback port for a server a test starts later (often in a subprocess).

    Chosen below the kernel's ephemeral range, so the suite's own outgoing connections (which draw
    their source ports from that range) cannot take it between this call and the server's bind; never
    the same port twice in one run."""
    import random

    top = min(_ephemeral_start(), 32768)
    for _ in range(200):
        port = random.randrange(20000, max(top, 20001))
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket() as s:  # an odd port range: fall back to the kernel's choice
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require(what: str, path: str | None, hint: str) -> str:
    """A prerequisite of a slow test: fails (never skips) under scripts/test, skips elsewhere."""
    if path and (Path(path).exists() or shutil.which(path)):
        return shutil.which(path) or path
    if os.environ.get("LAUNCHER_TEST_REQUIRE_ALL") == "1":
        pytest.fail(f"{what} is missing ({path!r}); scripts/test installs it: {hint}")
    pytest.skip(f"{what} missing: {hint} (run scripts/test)")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Private config/state/cache dirs and HOME, so no test touches the user's files."""
    env = {
        "LAUNCHER_CONFIG_DIR": str(tmp_path / "config"),
        "LAUNCHER_STATE_DIR": str(tmp_path / "state"),
        "LAUNCHER_CACHE_DIR": str(tmp_path / "cache"),
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config"),
        "XDG_DATA_HOME": str(tmp_path / "home" / ".local" / "share"),
        "XDG_STATE_HOME": str(tmp_path / "home" / ".local" / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "home" / ".cache"),
    }
    (tmp_path / "home").mkdir()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return tmp_path


def run_launch(*args: str, env: dict | None = None, cwd: str | Path | None = None, timeout: float = 120,
               input: str | None = None) -> subprocess.CompletedProcess:
    """Run the real `launch` CLI in a subprocess; returns the completed process (text)."""
    full_env = dict(os.environ)
    full_env.pop("LAUNCHER_DEBUG", None)
    full_env.update(env or {})
    return subprocess.run([*LAUNCH, *args], capture_output=True, text=True, env=full_env,
                          cwd=str(cwd) if cwd else None, timeout=timeout, input=input)


@pytest.fixture
def launch(isolated):
    def _run(*args, **kw):
        return run_launch(*args, **kw)

    return _run


@pytest.fixture
def sim_factory(request):
    """In-process vLLM simulators, ready when returned and stopped after the test. A module's SIM_DEFAULTS
    (e.g. its api_key) apply to each; keyword arguments override them."""
    from launcher.sim import SimConfig, VllmSim

    defaults = {"quiet": True, **getattr(request.module, "SIM_DEFAULTS", {})}
    started = []

    def make(**kw):
        sim = VllmSim(SimConfig(**{**defaults, **kw})).start(timeout=20)
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()
