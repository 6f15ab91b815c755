"""Docker runtime driven through the real docker SDK against a Docker-Engine-API double
(tests/docker_double.py) on a unix socket: what reaches the daemon, and what the daemon reports."""
from __future__ import annotations

import os
import threading

import pytest

from launcher import state
from launcher.errors import RuntimeFailure
from launcher.plan import ContainerSpec
from launcher.runtimes.docker import EXEC_KILL, EXEC_TAIL, EXEC_WRAP, DockerRuntime
from docker_double import docker_double  # noqa: F401  (fixture)
from runtime_helpers import SECRET, make_plan, wait_for

IMAGE = "nvcr.io/nvidia/vllm:26.05-py3"


def _spec(name, argv, *, network=None, ports=None, role="server"):
    return ContainerSpec(image=IMAGE, name=f"launcher-rt-test-{name}", entrypoint=argv[:1], command=argv[1:],
                         env={"PLAIN_VAR": "plain-value"}, secret_env=["VLLM_API_KEY"],
                         labels={"launcher.recipe": "rt-test", "launcher.role": role},
                         network_mode=network, ports=ports or {},
                         volumes={"~/.cache/huggingface": "/root/.cache/huggingface"})


@pytest.fixture
def rt(isolated):
    events = []
    r = DockerRuntime(on_pull=events.append, poll_interval=0.01)
    r.pull_events = events
    return r


def _single(double):
    argv = ["vllm", "serve", "org/model", "--port", "8000"]
    return make_plan(argv, runtime="docker", docker_url=double.url,
                     container=_spec("server", argv, ports={"8000/tcp": 8000}))


def test_create_start_fields_pull_progress_and_secret_only_in_env(rt, docker_double):
    plan, proc = _single(docker_double)
    h = rt.start(proc, plan, {"VLLM_API_KEY": SECRET})
    assert [(e.layer, e.status, e.current, e.total) for e in rt.pull_events][1:3] == [
        ("layer1", "Downloading", 50, 100), ("layer1", "Downloading", 100, 100)]
    pull = docker_double.calls_to("POST", "/images/create")[0]
    assert pull.query == {"fromImage": "nvcr.io/nvidia/vllm", "tag": "26.05-py3"}
    create = docker_double.calls_to("POST", "/containers/create")[0]
    body, hc = create.body, create.body["HostConfig"]
    assert create.query["name"] == "launcher-rt-test-server"
    assert body["Image"] == IMAGE and body["Entrypoint"] == ["vllm"]
    assert body["Cmd"] == ["serve", "org/model", "--port", "8000"]
    assert f"VLLM_API_KEY={SECRET}" in body["Env"] and "PLAIN_VAR=plain-value" in body["Env"]
    assert SECRET not in " ".join(body["Cmd"] + body["Entrypoint"])
    assert body["Labels"] == {"launcher.recipe": "rt-test", "launcher.role": "server",
                              "launcher.plan-hash": plan.hash, "launcher.process": "server",
                              "launcher.host": "node", "launcher.address": "127.0.0.1",
                              "launcher.endpoint": "http://127.0.0.1:8000", "launcher.served": "m"}
    assert hc["IpcMode"] == "host" and hc["ShmSize"] == int(10.24 * 1024 ** 3)
    assert hc["DeviceRequests"] == [{"Driver": "", "Count": -1, "DeviceIDs": [],
                                     "Capabilities": [["gpu"]], "Options": {}}]
    assert hc["PortBindings"] == {"8000/tcp": [{"HostIp": "", "HostPort": "8000"}]}
    assert "NetworkMode" not in hc or hc["NetworkMode"] in ("default", None)
    assert hc["Binds"] == [f"{os.path.expanduser('~')}/.cache/huggingface:/root/.cache/huggingface:rw"]
    assert docker_double.calls_to("POST", f"/containers/{h.ref['container_id']}/start")
    assert rt.exit_info(h) is None and rt.alive(h)
    # no secret in anything launch wrote
    for root, _, files in os.walk(os.environ["LAUNCHER_STATE_DIR"]) if os.path.isdir(
            os.environ["LAUNCHER_STATE_DIR"]) else []:
        for f in files:
            assert SECRET not in open(os.path.join(root, f)).read()


def test_logs_multiplexed_tail_and_follow_until_exit(rt, docker_double):
    plan, proc = _single(docker_double)
    docker_double.images.add(IMAGE)
    h = rt.start(proc, plan, {})
    assert rt.pull_events == []  # present: no pull
    docker_double.add_log(h.ref["container_id"], "INFO vLLM API server version 0.11.0\nout 2\n")
    docker_double.add_log(h.ref["container_id"], "err 3\n", stream=2)
    assert list(rt.logs(h)) == ["INFO vLLM API server version 0.11.0", "out 2", "err 3"]
    assert list(rt.logs(h, tail=1)) == ["err 3"]

    def later():
        docker_double.add_log(h.ref["container_id"], "partial ")
        docker_double.add_log(h.ref["container_id"], "line\nlast\n")
        docker_double.exit(h.ref["container_id"], 1)

    t = threading.Timer(0.2, later)
    t.start()
    lines = list(rt.logs(h, follow=True))  # ends when the container stops
    t.join()
    assert lines[-2:] == ["partial line", "last"]
    info = rt.exit_info(h)
    assert (info.code, info.oom_killed) == (1, False) and "code 1" in info.reason


def test_oom_killed_reported(rt, docker_double):
    plan, proc = _single(docker_double)
    h = rt.start(proc, plan, {})
    docker_double.exit(h.ref["container_name"], oom=True)
    info = rt.exit_info(h)
    assert info.oom_killed and info.code == 137 and info.reason == "container OOMKilled (exit 137)"


def test_find_by_labels_stop_removes(rt, docker_double):
    plan, proc = _single(docker_double)
    h = rt.start(proc, plan, {})
    found = rt.find("rt-test", docker_urls=[docker_double.url])
    assert [(f.process, f.plan_hash, f.role, f.ref["container_id"]) for f in found] == [
        ("server", plan.hash, "server", h.ref["container_id"])]
    assert rt.find("other", docker_urls=[docker_double.url]) == []
    rt.stop(h, timeout=3)
    assert docker_double.calls_to("POST", f"/containers/{h.ref['container_id']}/stop")[0].query["t"] == "3"
    assert docker_double.calls_to("DELETE", f"/containers/{h.ref['container_id']}")
    assert rt.find("rt-test", docker_urls=[docker_double.url]) == []
    assert "removed" in rt.exit_info(h).reason
    rt.stop(h)  # gone: no-op


def test_stopped_container_of_ours_replaced_foreign_one_refused(rt, docker_double):
    plan, proc = _single(docker_double)
    h = rt.start(proc, plan, {})
    with pytest.raises(RuntimeFailure, match="already running"):
        rt.start(proc, plan, {})
    docker_double.exit(h.ref["container_id"], 0)
    h2 = rt.start(proc, plan, {})
    assert h2.ref["container_id"] != h.ref["container_id"] and h.ref["container_id"] not in docker_double.containers
    docker_double.exit(h2.ref["container_id"], 0)
    docker_double.containers[h2.ref["container_id"]]["Config"]["Labels"] = {}
    with pytest.raises(RuntimeFailure, match="not started by launch") as exc:
        rt.start(proc, plan, {})
    assert "docker rm -f launcher-rt-test-server" in exc.value.fix


def test_ray_head_host_network_and_server_exec(rt, docker_double):
    head_argv = ["ray", "start", "--block", "--head", "--port=6379"]
    serve = ["vllm", "serve", "org/model", "--tensor-parallel-size", "2"]
    from launcher.plan import Process

    head = Process(name="ray-head", host="node", address="127.0.0.1", role="ray-head", runtime="docker",
                   argv=head_argv, docker_url=docker_double.url,
                   container=_spec("ray-head", head_argv, network="host", role="ray-head"))
    plan, proc = make_plan(serve, runtime="docker", exec_in="ray-head", docker_url=docker_double.url,
                           extra=[head])
    docker_double.images.add(IMAGE)
    server_exec = {}

    def on_exec(e):
        cmd = e["Cmd"]
        if EXEC_WRAP in cmd:
            server_exec["id"] = e["ID"]
            return None  # the server keeps running
        if EXEC_TAIL in cmd:
            return b"Starting to load model org/model...\nApplication startup complete.\n", 0
        if EXEC_KILL in cmd and cmd[-1] == "TERM":
            docker_double.finish_exec(server_exec["id"], 143)
        return b"", 0

    docker_double.on_exec = on_exec
    hh = rt.start(head, plan, {})
    hc = docker_double.calls_to("POST", "/containers/create")[0].body["HostConfig"]
    assert hc["NetworkMode"] == "host" and "PortBindings" not in hc
    h = rt.start(proc, plan, {"VLLM_API_KEY": SECRET})
    ex = docker_double.calls_to("POST", f"/containers/{hh.ref['container_id']}/exec")[0].body
    assert ex["Cmd"] == ["sh", "-c", EXEC_WRAP, "sh", h.ref["log"], *serve]
    assert f"VLLM_API_KEY={SECRET}" in ex["Env"] and SECRET not in " ".join(ex["Cmd"])
    assert docker_double.calls_to("POST", f"/exec/{server_exec['id']}/start")[0].body["Detach"] is True
    assert rt.exit_info(h) is None
    assert list(rt.logs(h, tail=30)) == ["Starting to load model org/model...", "Application startup complete."]
    tail_cmd = docker_double.execs[[e for e in docker_double.execs if EXEC_TAIL in docker_double.execs[e]["Cmd"]][0]]
    assert tail_cmd["Cmd"][-2:] == ["30", ""]
    assert [x.process for x in rt.find("rt-test", docker_urls=[docker_double.url])] == ["ray-head", "server"]
    assert SECRET not in state.record_path(plan.recipe, "server", "node").read_text()
    rt.stop(h, timeout=2)
    assert docker_double.execs[server_exec["id"]]["Running"] is False
    info = rt.exit_info(h)
    assert info.code == 143 and info.signal == 15
    # the head container dying (OOM) is what the server exec reports
    docker_double.exit(hh.ref["container_id"], oom=True)
    assert rt.exit_info(hh).oom_killed
    assert wait_for(lambda: "OOMKilled" in (rt.exit_info(h).reason or ""), timeout=2)
    rt.stop(hh)


def test_pull_failure_and_unreachable_daemon(rt, docker_double, tmp_path):
    plan, proc = _single(docker_double)
    docker_double.pull_error = "unauthorized: authentication required"
    with pytest.raises(RuntimeFailure) as exc:
        rt.start(proc, plan, {})
    assert "unauthorized" in exc.value.what and "docker login" in exc.value.fix
    assert rt.check(docker_double.url) is None and rt.has_image(docker_double.url, IMAGE) is False
    msg = rt.check(f"unix://{tmp_path}/nothing.sock")
    assert msg and "cannot reach the Docker daemon" in msg and "systemctl start docker" in msg


# -- ssh:// daemons -------------------------------------------------------------------------------
DIAL_SHIM = r'''#!{python}
# Stands for `docker system dial-stdio` on the Docker host: stdin/stdout bridged to the daemon socket.
import os, socket, sys, threading
if sys.argv[1:] != ["system", "dial-stdio"]:
    sys.exit("docker shim: only `docker system dial-stdio`")
s = socket.socket(socket.AF_UNIX)
s.connect({sock!r})
def up():
    while True:
        b = os.read(0, 65536)
        if not b:
            break
        s.sendall(b)
    try:
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
threading.Thread(target=up, daemon=True).start()
while True:
    b = s.recv(65536)
    if not b:
        break
    os.write(1, b)
'''


@pytest.fixture
def ssh_docker(tmp_path_factory, docker_double):
    """A real sshd whose sessions find a `docker` that dials the Docker double (what dockerd's
    `docker system dial-stdio` does); the inventory host reaches it only with its own port/identity."""
    import sys

    from conftest import require
    from sshd import SSHD, start_sshd

    require("sshd (openssh-server)", SSHD, "apt-get install openssh-server")
    base = tmp_path_factory.mktemp("sshdock")
    bin_dir = base / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "docker"
    shim.write_text(DIAL_SHIM.format(python=sys.executable, sock=docker_double.path))
    shim.chmod(0o755)
    server = start_sshd(base / "sshd", env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    try:
        yield server, docker_double
    finally:
        server.stop()


def test_ssh_daemon_reached_with_the_inventory_ssh_settings(isolated, ssh_docker):
    """docker: ssh://127.0.0.1 names no port, user or key: only the inventory's ssh settings
    (port, user, identity file, options) get through, so each request really goes over them."""
    import psutil

    sshd, double = ssh_docker
    url = "ssh://127.0.0.1"
    argv = ["vllm", "serve", "org/model", "--port", "8000"]
    host = sshd.host_spec(docker=url)
    plan, proc = make_plan(argv, runtime="docker", docker_url=url, hosts={"node": host},
                           container=_spec("server", argv, ports={"8000/tcp": 8000}))
    rt = DockerRuntime(poll_interval=0.01)
    rt.know_hosts(plan)
    ssh_argv = rt.ssh_argv_for(url)
    assert ssh_argv[-1] == "127.0.0.1" and ["-p", str(sshd.port)] == ssh_argv[ssh_argv.index("-p"):][:2]
    assert str(sshd.identity) in ssh_argv and ["-l", sshd.user] == ssh_argv[ssh_argv.index("-l"):][:2]
    assert "BatchMode=yes" in ssh_argv
    try:
        assert rt.check(url) is None
        double.images.add(IMAGE)
        h = rt.start(proc, plan, {"VLLM_API_KEY": SECRET})
        double.add_log(h.ref["container_id"], "hello over ssh\n")
        assert list(rt.logs(h)) == ["hello over ssh"]
        assert rt.exit_info(h) is None
        # a follow ended from another thread (what the start-up watch does once ready)
        lines, close = rt.open_logs(h, follow=True)
        got = []
        t = threading.Thread(target=lambda: got.extend(lines), daemon=True)
        t.start()
        assert wait_for(lambda: double.follows == 1 and got, 10)
        close()
        t.join(5)
        assert not t.is_alive() and got == ["hello over ssh"]
        assert wait_for(lambda: double.follows == 0, 5)
        rt.stop(h)
        assert double.containers == {}
        assert any(c.path.endswith("/containers/create") for c in double.calls)
    finally:
        rt.clients.close()
    # the pooled `ssh … docker system dial-stdio` processes end with the client
    me = psutil.Process()

    def dialers():
        out = []
        for c in me.children(recursive=True):
            try:  # a child may exit between the listing and the look at its argv
                if "dial-stdio" in " ".join(c.cmdline()):
                    out.append(c.pid)
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
        return out

    assert wait_for(lambda: not dialers(), 5)
    assert wait_for(lambda: sshd.leftovers() == [], 5)


def test_status_inventory_asks_its_ssh_daemon_with_the_inventory_settings(isolated, ssh_docker, tmp_path):
    """`launch status INVENTORY` on a machine with no notes (the watchdog box): the inventory's
    ssh:// daemon is reached with that host's ssh settings and names launch's container by its labels."""
    import yaml

    from launcher import runtimes
    from launcher.status import collect

    sshd, double = ssh_docker
    url = "ssh://127.0.0.1"
    argv = ["vllm", "serve", "org/model", "--port", "8000"]
    host = sshd.host_spec(docker=url)
    plan, proc = make_plan(argv, runtime="docker", docker_url=url, hosts={"spark": host}, host="spark",
                           container=_spec("server", argv, ports={"8000/tcp": 8000}))
    starter = DockerRuntime(poll_interval=0.01)
    starter.know_hosts(plan)
    double.images.add(IMAGE)
    h = starter.start(proc, plan, {"VLLM_API_KEY": SECRET})
    starter.clients.close()
    from launcher import state

    state.forget(h)  # launch's notes on the starting machine are not here
    inv = tmp_path / "cluster.yaml"
    inv.write_text(yaml.safe_dump({"name": "cluster", "hosts": {"spark": host}}))
    try:
        rows = collect(str(inv), sample_s=0.05, with_gpus=False)
        row = next(r for r in rows if r.name == plan.recipe)
        assert row.endpoint == plan.endpoint and row.runtime == "docker"
        assert [p["process"] for p in row.processes] == ["server"] and row.processes[0]["alive"]
        assert f"container labels on {url}" in row.note
    finally:
        runtimes.get("docker").clients.close()
        rt = DockerRuntime()
        rt.know_hosts(plan)
        rt.stop(h)
        rt.clients.close()
    assert double.containers == {}


def test_down_without_notes_reaches_the_ssh_daemon_with_the_plan_settings(isolated, ssh_docker):
    """`launch down RECIPE` on a machine without notes: deploy.places(plan) gives the docker runtime the
    inventory's ssh settings for the plan's ssh:// daemon (the URL alone names no port, user or key)."""
    from launcher import deploy, runtimes, state

    sshd, double = ssh_docker
    url = "ssh://127.0.0.1"
    argv = ["vllm", "serve", "org/model", "--port", "8000"]
    plan, proc = make_plan(argv, runtime="docker", docker_url=url, hosts={"spark": sshd.host_spec(docker=url)},
                           host="spark", container=_spec("server", argv, ports={"8000/tcp": 8000}))
    starter = DockerRuntime(poll_interval=0.01)
    starter.know_hosts(plan)
    double.images.add(IMAGE)
    h = starter.start(proc, plan, {"VLLM_API_KEY": SECRET})
    starter.clients.close()
    state.forget(h)
    runtimes._instances.pop("docker", None)  # a fresh `launch down` process: nothing learned yet
    try:
        urls, ssh_hosts = deploy.places(plan)
        assert urls == [url] and ssh_hosts == {}
        assert deploy.down(plan.recipe, docker_urls=urls) == ["server@spark"]
        assert double.containers == {}
    finally:
        runtimes.get("docker").clients.close()
        runtimes._instances.pop("docker", None)


def test_ssh_daemon_without_inventory_settings_fails_with_a_fix(isolated, ssh_docker):
    """The same URL without the inventory's settings: ssh tries port 22 and the check says how to fix."""
    rt = DockerRuntime()
    try:
        err = rt.check("ssh://127.0.0.1:1")
    finally:
        rt.clients.close()
    assert err and "Docker daemon" in err and "ssh" in err
