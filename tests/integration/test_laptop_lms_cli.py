"""LM Studio through its `lms` CLI: a server without the v1 REST API (0.3.x: `lms load KEY
--context-length N`), and no server at all (`lms server start`). `lms` here is the shim
launcher/sim/lms_shim.py on PATH (registered in launcher.sim.shims), driving the LM Studio simulator
the way the real CLI drives LM Studio's daemon; the silently reduced context must be read back."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import free_port
from laptop_helpers import Steps, plan_recipe
from launcher.bringup import lmstudio
from launcher.errors import ServerFailed
from launcher.sim.lms_shim import state_path
from launcher.sim.lmstudio import LmStudioSim
from launcher.sim.shims import write_shims

KEY = "qwen/qwen3-coder-30b"


def _stop_recorded_server() -> None:
    """Stop the simulator a `lms server start` of this test spawned (its pid is in the shim's state)."""
    try:
        pid = int(json.loads(state_path().read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def lms(isolated, monkeypatch):
    bin_dir = write_shims(isolated / "bin", ["lms"])
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("LMS_SIM_URL", raising=False)
    monkeypatch.delenv("LMS_SIM_ARGS", raising=False)
    warned: list[str] = []
    monkeypatch.setattr("launcher.ui.warn", warned.append)
    yield warned
    _stop_recorded_server()


def _recipe(tmp_path, port, context=65536):
    return plan_recipe(tmp_path, "t-lms-cli", {"engine": "lmstudio", "model": KEY, "port": port,
                                               "lmstudio": {"context": context}})


def _lms(*args):
    return subprocess.run(["lms", *args], capture_output=True, text=True, timeout=60)


def test_v0_server_loads_through_lms_and_reads_back_the_reduced_context(lms, tmp_path, monkeypatch):
    with LmStudioSim(v1=False, max_loadable_context=32768) as s:
        monkeypatch.setenv("LMS_SIM_URL", s.url)
        recipe, plan = _recipe(tmp_path, s.port)
        d = lmstudio.up(plan, recipe, progress=Steps())
        loads = [b for _, p, b in s.requests if p == "/__lms/load"]
        paths = [p for _, p, _ in s.requests]
    assert loads == [{"model": KEY, "context_length": 65536, "identifier": None}]  # `lms load --context-length`
    assert "/api/v1/models/load" not in paths
    # LM Studio loaded 32768 without a word; the v0 list's loaded_context_length says so
    assert d.capacity.max_model_len == 32768 and "v0" in d.capacity.source
    assert d.model == KEY and d.attached is True and d.version == "v0"
    assert any("32768-token context, not the 65536 asked for" in w for w in lms)


def test_v0_server_reloads_a_model_loaded_with_another_context(lms, tmp_path, monkeypatch):
    with LmStudioSim(v1=False) as s:
        s.load(KEY, 4096)  # e.g. a JIT load with the default context
        monkeypatch.setenv("LMS_SIM_URL", s.url)
        recipe, plan = _recipe(tmp_path, s.port)
        d = lmstudio.up(plan, recipe, progress=Steps())
        assert [b for _, p, b in s.requests if p == "/__lms/unload"] == [{"all": False, "identifier": KEY}]
        assert list(s.loaded.values()) == [{"key": KEY, "context_length": 65536}]  # one instance, not two
    assert d.capacity.max_model_len == 65536


def test_lms_ps_is_the_read_back_when_the_rest_list_has_no_context(lms, tmp_path, monkeypatch):
    with LmStudioSim(v1=False, v0_loaded_context=False, max_loadable_context=49152) as s:
        monkeypatch.setenv("LMS_SIM_URL", s.url)
        recipe, plan = _recipe(tmp_path, s.port)
        d = lmstudio.up(plan, recipe, progress=Steps())
        assert ("GET", "/__lms/ps") in [(m, p) for m, p, _ in s.requests]
    assert d.capacity.max_model_len == 49152 and "lms ps --json" in d.capacity.source


def test_server_down_lms_server_start_then_rest_load(lms, tmp_path, monkeypatch):
    monkeypatch.setenv("LMS_SIM_ARGS", "--max-context 32768")
    port = free_port()
    recipe, plan = _recipe(tmp_path, port)
    steps = Steps()
    d = lmstudio.up(plan, recipe, progress=steps)
    assert any(s.stage == "start" and f"lms server start --port {port}" in s.detail for s in steps)
    assert d.attached is False and d.base_url == f"http://127.0.0.1:{port}/v1" and d.version == "v1"
    assert d.capacity.max_model_len == 32768  # asked 65536, silently reduced, read back
    ps = _lms("ps", "--json")
    assert ps.returncode == 0, ps.stderr
    rows = json.loads(ps.stdout)
    assert [(r["identifier"], r["modelKey"], r["contextLength"], r["maxContextLength"]) for r in rows] == [
        (KEY, KEY, 32768, 262144)]


def test_server_down_v0_only_start_and_cli_load(lms, tmp_path, monkeypatch):
    monkeypatch.setenv("LMS_SIM_ARGS", "--v0-only --max-context 16384")
    port = free_port()
    recipe, plan = _recipe(tmp_path, port)
    d = lmstudio.up(plan, recipe, progress=Steps())
    assert d.attached is False and d.version == "v0"
    assert d.capacity.max_model_len == 16384
    assert any("below 65536" in w for w in lms)


def test_lms_server_start_failure_is_reported(lms, tmp_path, monkeypatch):
    monkeypatch.setenv("LMS_SIM_ARGS", "--no-such-flag")  # the server process exits at once
    port = free_port()
    recipe, plan = _recipe(tmp_path, port)
    with pytest.raises(ServerFailed) as e:
        lmstudio.up(plan, recipe, progress=Steps())
    assert f"`lms server start --port {port}` failed (exit 1)" in e.value.what
    assert "the server exited" in e.value.what
    assert "LM Studio app" in e.value.fix


def test_shim_load_errors_and_unknown_model(lms, monkeypatch):
    with LmStudioSim() as s:
        monkeypatch.setenv("LMS_SIM_URL", s.url)
        bad = _lms("load", "qwen/nosuch", "--context-length", "8192", "-y")
        assert bad.returncode == 1 and "not found" in bad.stderr
        ok = _lms("load", KEY, "--context-length", "8192", "--identifier", "coder", "-y")
        assert ok.returncode == 0 and '"coder"' in ok.stdout
        assert s.loaded == {"coder": {"key": KEY, "context_length": 8192}}
        status = json.loads(_lms("server", "status", "--json").stdout)
        assert status == {"running": True, "port": s.port}
    monkeypatch.setenv("LMS_SIM_URL", f"http://127.0.0.1:{free_port()}")
    down = _lms("load", KEY, "-y")
    assert down.returncode == 1 and "lms server start" in down.stderr
