"""Local runtime against real child processes (a small python script; the vLLM simulator when present)."""
from __future__ import annotations

import json
import os
import signal
import stat

import psutil
import pytest

from launcher import state
from launcher.errors import InputError, RuntimeFailure
from launcher.runtimes import get, runtime_class
from launcher.runtimes.local import LocalRuntime
from runtime_helpers import SECRET, child_argv, make_plan, secret_in_any_cmdline, still_running, wait_for


@pytest.fixture
def rt(isolated):
    r = LocalRuntime()
    started = []
    orig = r.start

    def start(*a, **kw):
        h = orig(*a, **kw)
        started.append(h)
        return h

    r.start = start
    yield r
    for h in started:  # nothing left running, whatever a test did
        r.stop(h, timeout=2)


def test_registry_names_and_unknown():
    assert isinstance(get("local"), LocalRuntime)
    assert get("local") is get("local")
    with pytest.raises(InputError) as exc:
        runtime_class("podman")
    assert "local, ssh, docker" in exc.value.fix


def test_start_logs_exit_code_and_record(rt):
    plan, proc = make_plan(child_argv("exit3", "5"))
    h = rt.start(proc, plan, {"VLLM_API_KEY": SECRET})
    lines = list(rt.logs(h, follow=True))  # follows until the process ends
    assert lines[0] == "starting"
    assert "key present: True" in lines and "plain: plain-value" in lines
    assert lines[-1] == "line 4"
    info = wait_for(lambda: rt.exit_info(h))
    assert (info.code, info.signal, info.oom_killed) == (3, None, False)
    assert "code 3" in info.reason
    assert not rt.alive(h)
    assert list(rt.logs(h, tail=2)) == ["line 3", "line 4"]
    rec = state.record_path(plan.recipe, proc.name, proc.host)
    data = json.loads(rec.read_text())
    assert data["ref"]["pid"] == h.ref["pid"] and data["ref"]["create_time"] > 0
    assert data["plan_hash"] == plan.hash
    assert stat.S_IMODE(rec.stat().st_mode) == 0o600
    assert [x.process for x in rt.find("rt-test")] == ["server"]
    # a later launch invocation (new runtime instance, not the parent) still reads the exit status
    assert LocalRuntime().exit_info(h).code == 3


def test_secret_only_in_environment_and_stop_leaves_nothing(rt):
    plan, proc = make_plan(child_argv("grandchild"))
    h = rt.start(proc, plan, {"VLLM_API_KEY": SECRET})
    wait_for(lambda: "spawned" in list(rt.logs(h)))
    leader = psutil.Process(h.ref["pid"])
    tree = [leader, *leader.children(recursive=True)]
    assert len(tree) >= 3  # wrapper sh, the script, its grandchild
    assert secret_in_any_cmdline(SECRET) == []
    assert any(p.environ().get("VLLM_API_KEY") == SECRET for p in tree[1:])
    assert rt.alive(h) and rt.exit_info(h) is None
    assert SECRET not in state.record_path(plan.recipe, proc.name, proc.host).read_text()
    rt.stop(h, timeout=5)
    assert not any(still_running(p) for p in tree)
    assert rt.exit_info(h) is not None and rt.find("rt-test") == []  # stopped: record forgotten
    assert SECRET not in open(h.log_path).read()
    rt.stop(h)  # already gone: a no-op


def test_sigkill_reported_as_killed_maybe_oom(rt):
    plan, proc = make_plan(child_argv("sleep"))
    h = rt.start(proc, plan, {})
    wait_for(lambda: "starting" in list(rt.logs(h)))
    script = [p for p in psutil.Process(h.ref["pid"]).children() if "python" in p.name()][0]
    script.send_signal(signal.SIGKILL)  # what the kernel's OOM killer does
    info = wait_for(lambda: rt.exit_info(h))
    assert info.signal == signal.SIGKILL and "SIGKILL" in info.reason and "OOM" in info.reason


def test_pid_reuse_detected_by_start_ticks_or_create_time(rt):
    plan, proc = make_plan(child_argv("sleep"))
    h = rt.start(proc, plan, {})
    assert rt.alive(h) and h.ref["start_ticks"].isdigit()  # Linux: the kernel's start ticks recorded
    other_ticks = str(int(h.ref["start_ticks"]) + 1)
    forged = type(h)(**{**h.to_json(), "ref": {**h.ref, "start_ticks": other_ticks}})
    assert not rt.alive(forged)
    LocalRuntime().stop(forged)  # must not kill someone else's process
    assert rt.alive(h)
    # A wall-clock step moves psutil's create_time (boot time re-read from /proc/stat) by a second:
    # the same start ticks still identify our process.
    stepped = type(h)(**{**h.to_json(), "ref": {**h.ref, "create_time": h.ref["create_time"] - 1.0}})
    assert rt.alive(stepped)
    # A handle recorded without start ticks (no /proc, e.g. macOS) falls back to create_time.
    no_ticks = {k: v for k, v in h.ref.items() if k != "start_ticks"}
    assert rt.alive(type(h)(**{**h.to_json(), "ref": no_ticks}))
    old = type(h)(**{**h.to_json(), "ref": {**no_ticks, "create_time": h.ref["create_time"] - 1000}})
    assert not rt.alive(old)
    LocalRuntime().stop(old)
    assert rt.alive(h)


def test_missing_program_is_a_clear_error(rt):
    plan, proc = make_plan(["no-such-program-xyz", "serve"])
    with pytest.raises(RuntimeFailure) as exc:
        rt.start(proc, plan, {})
    assert "no-such-program-xyz is not on PATH" in exc.value.what


def test_run_short_commands(rt):
    r = rt.run({}, ["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert (r.code, r.stdout, r.stderr) == (4, "out\n", "err\n")
    assert rt.run({}, ["sleep", "5"], timeout=0.2).code == 124
    assert rt.run({}, ["no-such-program-xyz"]).code == 127


def test_vllm_simulator_as_vllm(rt, tmp_path, monkeypatch):
    """The runtime starts the simulator exactly as it would start vLLM (`vllm serve MODEL FLAGS`)."""
    shims = pytest.importorskip("launcher.sim.shims", reason="simulator shims not landed yet")
    from conftest import free_port

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shims.write_shims(bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    port = free_port()
    plan, proc = make_plan(["vllm", "serve", "org/model", "--port", str(port), "--host", "127.0.0.1",
                            "--served-model-name", "sim"])
    h = rt.start(proc, plan, {"VLLM_API_KEY": SECRET})
    wait_for(lambda: any("Application startup complete" in ln for ln in rt.logs(h)), timeout=60, step=0.1)
    assert secret_in_any_cmdline(SECRET) == []
    tree = [psutil.Process(h.ref["pid"]), *psutil.Process(h.ref["pid"]).children(recursive=True)]
    rt.stop(h, timeout=5)
    assert not any(still_running(p) for p in tree)
    assert SECRET not in open(h.log_path).read()
