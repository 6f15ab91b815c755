"""SSH runtime against a real OpenSSH server on a random 127.0.0.1 port (tests/sshd.py).

The "remote" host is this machine, so the remote processes are visible to psutil here too.
"""
from __future__ import annotations

import json
import os
import signal
import stat
import sys
import time

import psutil
import pytest

from launcher import state
from launcher.errors import RuntimeFailure
from launcher.runtimes.common import parse_stat
from launcher.runtimes.ssh import SshRuntime
from runtime_helpers import SECRET, child_argv, make_plan, secret_in_any_cmdline, wait_for
from sshd import sshd  # noqa: F401  (fixture)


@pytest.fixture
def rt(isolated, tmp_path):
    """An SshRuntime whose `ssh` is a wrapper recording every argv it was given (then the real ssh)."""
    record = tmp_path / "ssh-argv.jsonl"
    wrapper = tmp_path / "ssh-wrapper"
    wrapper.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                       f"open({str(record)!r}, 'a').write(json.dumps(sys.argv) + '\\n')\n"
                       "os.execvp('ssh', ['ssh', *sys.argv[1:]])\n")
    wrapper.chmod(0o755)
    r = SshRuntime(ssh=str(wrapper), connect_timeout=10)  # handshake included, on a loaded machine
    r.argv_record = record
    return r


def _plan(sshd, argv):
    return make_plan(argv, runtime="ssh", hosts={"node": sshd.host_spec()})


def test_start_logs_exit_and_record(rt, sshd):
    plan, proc = _plan(sshd, child_argv("exit3", "5"))
    h = rt.start(proc, plan, {"VLLM_API_KEY": SECRET})
    assert h.log_path == str(sshd.home / ".cache/launcher/logs/rt-test-server.log")
    lines = list(rt.logs(h, follow=True))  # `tail -F --pid` ends with the process
    assert lines[0] == "starting" and "key present: True" in lines and "plain: plain-value" in lines
    assert lines[-1] == "line 4"
    info = wait_for(lambda: rt.exit_info(h), timeout=15, step=0.2)
    assert info.code == 3 and info.signal is None and "code 3" in info.reason
    assert list(rt.logs(h, tail=2)) == ["line 3", "line 4"]
    data = json.loads(state.record_path(plan.recipe, proc.name, proc.host).read_text())
    assert data["ref"]["pid"] == h.ref["pid"] and data["ref"]["start_time"].isdigit()
    assert [x.process for x in rt.find("rt-test")] == ["server"]
    assert stat.S_IMODE(os.stat(h.log_path).st_mode) == 0o600


def test_secret_travels_on_stdin_and_stop_leaves_nothing(rt, sshd):
    plan, proc = _plan(sshd, child_argv("grandchild"))
    h = rt.start(proc, plan, {"VLLM_API_KEY": SECRET})
    wait_for(lambda: "spawned" in list(rt.logs(h)), timeout=15, step=0.1)
    leader = psutil.Process(h.ref["pid"])
    assert os.getpgid(leader.pid) == leader.pid  # detached: its own session and process group
    assert leader.ppid() != os.getpid()
    tree = [leader, *leader.children(recursive=True)]
    assert len(tree) >= 3
    assert any(p.environ().get("VLLM_API_KEY") == SECRET for p in tree)  # it did arrive
    assert secret_in_any_cmdline(SECRET) == []  # not in the remote argv (nor anyone's)
    sent = rt.argv_record.read_text()
    assert sent and SECRET not in sent and "VLLM_API_KEY=" not in sent  # nor in the local ssh argv
    assert rt.exit_info(h) is None and rt.alive(h)
    assert SECRET not in state.record_path(plan.recipe, proc.name, proc.host).read_text()
    rt.stop(h, timeout=5)
    wait_for(lambda: not sshd.leftovers(), timeout=10)
    assert rt.exit_info(h) is not None and rt.find("rt-test") == []
    assert SECRET not in open(h.log_path).read()
    rt.stop(h)  # gone already: a no-op


def test_sigkill_reported_and_pid_reuse_ignored(rt, sshd):
    plan, proc = _plan(sshd, child_argv("sleep"))
    h = rt.start(proc, plan, {})
    wait_for(lambda: "starting" in list(rt.logs(h)), timeout=15, step=0.1)
    forged = type(h)(**{**h.to_json(), "ref": {**h.ref, "start_time": "1"}})
    assert rt.exit_info(forged) is not None  # same pid, other start time: not ours
    rt.stop(forged)
    assert rt.alive(h)
    script = [p for p in psutil.Process(h.ref["pid"]).children() if "python" in p.name()][0]
    script.send_signal(signal.SIGKILL)
    info = wait_for(lambda: rt.exit_info(h), timeout=15, step=0.2)
    assert info.signal == signal.SIGKILL and info.code == 137 and "OOM" in info.reason


def test_found_on_the_host_without_notes_and_stop_forgets_it_there(rt, sshd):
    """Another machine (no notes) finds the process in the host's launch log directory ("$log.id": pid,
    start time, a description without secrets); stopping it removes that entry."""
    plan, proc = _plan(sshd, child_argv("sleep"))
    h = rt.start(proc, plan, {"VLLM_API_KEY": SECRET})
    state.forget(h)
    assert rt.find("rt-test") == []  # no notes here
    hosts = {"node": sshd.host_spec()}
    found = rt.find("rt-test", hosts=hosts)
    assert len(found) == 1
    f = found[0]
    assert (f.recipe, f.process, f.host, f.plan_hash) == ("rt-test", "server", "node", plan.hash)
    assert (f.ref["pid"], f.ref["start_time"], f.ref["log"]) == (h.ref["pid"], h.ref["start_time"], h.log_path)
    assert f.ref["endpoint"] == plan.endpoint and rt.alive(f)
    assert SECRET not in (sshd.home / ".cache/launcher/logs/rt-test-server.log.id").read_text()
    assert rt.find("other-recipe", hosts=hosts) == []
    rt.stop(f, timeout=5)
    wait_for(lambda: not sshd.leftovers(), timeout=10)
    assert rt.find("rt-test", hosts=hosts) == []
    bad = {"far": {"address": "127.0.0.1", "ssh": {**sshd.host_spec()["ssh"], "port": 1}}}
    assert rt.find("rt-test", hosts=bad) == []  # a host that does not answer adds nothing


def test_run_check_and_unreachable(rt, sshd):
    host = sshd.host_spec()
    r = rt.run(host, ["sh", "-c", "echo \"$1\"; echo err >&2; exit 4", "sh", "a b;$(x)"])
    assert (r.code, r.stdout, r.stderr.strip()) == (4, "a b;$(x)\n", "err")
    # The limit is the command's timeout plus the connect timeout (10 s here), so the remote command
    # must outlast both by far: `sleep 10` once finished at 10.2 s, inside the 10.3 s limit.
    t0 = time.monotonic()
    assert rt.run(host, ["sleep", "40"], timeout=0.3).code == 124
    assert time.monotonic() - t0 < 30
    assert rt.check(host) is None
    bad = {"address": "127.0.0.1", "ssh": {**host["ssh"], "port": sshd.port + 1 if sshd.port < 65535 else 1}}
    msg = rt.check(bad, timeout=5)
    assert msg and "cannot reach the host over ssh" in msg and "BatchMode" in msg
    with pytest.raises(RuntimeFailure):
        rt.exit_info(type("H", (), {"ref": {"ssh": bad, "pid": 1, "log": "/x"}, "process": "p"})())


def test_ssh_config_file_alias(isolated, sshd, monkeypatch):
    monkeypatch.setenv("LAUNCHER_SSH_CONFIG", str(sshd.config_path))
    r = SshRuntime().run({"address": sshd.alias}, ["echo", "$HOME"])
    assert (r.code, r.stdout.strip()) == (0, "$HOME")


def test_parse_stat_handles_odd_comm():
    line = "42 (a) b (c) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 1 2 3"
    assert parse_stat(line) == ("S", "98765")
    assert parse_stat("garbage") is None


def test_probe_remote_over_real_ssh(rt, sshd):
    """One round trip: meminfo, listening ports, vllm on PATH, HF cache dirs under the remote $HOME.
    This machine has no GPU, so the nvidia-smi part reports the no-driver problem."""
    from launcher.probe import probe_remote

    (sshd.home / ".cache/huggingface/hub/models--org--have").mkdir(parents=True)
    facts = probe_remote("node", sshd.host_spec(), rt.run, ports=[sshd.port], need_vllm=True,
                         models=["org/have", "org/miss"], timeout=20)
    assert facts.reachable and facts.mem_available_mib and facts.mem_available_mib > 0
    assert facts.busy_ports == [sshd.port]
    assert facts.weights == {"org/have": True, "org/miss": False}
    whats = " | ".join(e.what for e in facts.errors)
    if not facts.gpus:
        assert "no NVIDIA GPU/driver on node" in whats
    assert ("`vllm` is not on PATH on node" in whats) == (facts.vllm_path is None)
