"""`launch up` with the docker runtime against B1's Docker-Engine-API double on a unix socket.

The double runs nothing, so the test plays the container's part: once launch has created and started
the container, an in-process vLLM simulator on the plan's port writes its log lines into the
container's log (what `docker logs -f` would show) and answers HTTP. OOMKilled is the daemon's
report of the kernel OOM killer (State.OOMKilled=true, exit 137)."""
from __future__ import annotations

import threading
import time

import pytest

from conftest import free_port
from deploy_helpers import KEY_ENV, simenv, write_inventory, write_recipe  # noqa: F401
from docker_double import docker_double  # noqa: F401

IMAGE = "vllm/vllm-openai:v0.11.2"


class Recorder:
    """A Progress that keeps what the live display would show."""

    def __init__(self):
        self.stages, self.notes = [], []

    def stage(self, st, elapsed):
        self.stages.append((st, elapsed))

    def note(self, text):
        self.notes.append(text)

    def close(self):
        pass


def _follow_threads():
    return [t.name for t in threading.enumerate() if t.name == "launch-log-follow" and t.is_alive()]


def _plan(simenv, double, name):
    from launcher.plan import build_for

    inv = write_inventory(simenv["dir"], f"{name}-hosts", {"box": {"address": "127.0.0.1", "docker": double.url,
                                                                     "gpus": {"count": 1}}})
    path = write_recipe(simenv["dir"], name, hosts=str(inv), runtime="docker", port=free_port())
    text = path.read_text() + f"image: {IMAGE}\n"
    path.write_text(text)
    return build_for(str(path))


def _when_running(double, act, timeout=20.0):
    def run():
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            running = [c for c in list(double.containers.values()) if c["State"]["Running"]]
            if running:
                act(running[0])
                return
            time.sleep(0.02)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _play_vllm(double, plan, simenv, sims: list, load_seconds: float):
    """Once launch has started the container: a vLLM simulator on the plan's port, logging into it."""
    from launcher.sim.vllm_config import SimConfig
    from launcher.sim.vllm_server import VllmSim

    def play(c):
        cfg = SimConfig(port=plan.processes[0].port, served_model_name=plan.served_name, max_model_len=32768,
                        load_seconds=load_seconds, quiet=True, api_key=simenv["env"][KEY_ENV],
                        on_log=lambda line: double.add_log(c["Id"], line + "\n"))
        sims.append(VllmSim(cfg).start(wait=False))

    return _when_running(double, play)


def test_docker_up_labels_and_down(simenv, docker_double):
    from launcher import deploy

    double = docker_double  # the image is not there yet: launch pulls it, showing per-layer progress
    recipe_l, plan = _plan(simenv, double, "dock")
    sims = []
    t = _play_vllm(double, plan, simenv, sims, 0.3)
    progress = Recorder()
    try:
        d = deploy.up(plan, recipe_l, timeout=30, progress=progress)
    finally:
        t.join(5)
    try:
        # nothing follows the log once up returns: no watch thread, no open `docker logs -f` stream
        end = time.monotonic() + 5
        while (double.follows or _follow_threads()) and time.monotonic() < end:
            time.sleep(0.05)
        assert double.follows == 0 and _follow_threads() == []
        pulls = [(st.percent, st.detail) for st, _ in progress.stages if st.name == "image"]
        assert pulls and pulls[-1] == (100.0, f"{IMAGE}: 1/1 layers"), pulls
        assert any(p == 50.0 for p, _ in pulls)  # the layer's Downloading 50/100 event
        names = [st.name for st, _ in progress.stages]
        assert names.index("image") < names.index("weights") < names.index("ready")
        assert all(b >= a for (_, a), (_, b) in zip(progress.stages, progress.stages[1:]))  # elapsed grows
        assert d.attached is False and d.capacity.kv_tokens == 643232 and d.capacity.max_model_len == 32768
        (c,) = double.containers.values()
        labels = c["Config"]["Labels"]
        assert labels["launcher.recipe"] == "dock" and labels["launcher.plan-hash"] == plan.hash
        assert labels["launcher.role"] == "server"
        host = c["HostConfig"]
        assert host["IpcMode"] == "host" and host["DeviceRequests"][0]["Capabilities"] == [["gpu"]]
        assert f"VLLM_API_KEY={simenv['env'][KEY_ENV]}" in c["Config"]["Env"]  # the key by env only
        assert simenv["env"][KEY_ENV] not in " ".join(c["Config"]["Cmd"])
        again = deploy.up(plan, recipe_l, timeout=30)
        assert again.attached is True and len(double.containers) == 1
        assert deploy.down("dock") == ["server@box"]
        assert double.containers == {}
    finally:
        for s in sims:
            s.stop()


def test_docker_oomkilled_is_diagnosed_and_removed(simenv, docker_double):
    from launcher import deploy
    from launcher.errors import ServerFailed

    double = docker_double
    double.images.add(IMAGE)
    recipe_l, plan = _plan(simenv, double, "dockoom")

    def play(c):
        double.add_log(c["Id"], "(EngineCore_DP0 pid=7) INFO [gpu_model_runner.py:2602] Starting to load model x...\n")
        double.add_log(c["Id"], "Loading safetensors checkpoint shards:  41% Completed | 7/17\n")
        time.sleep(0.2)
        double.exit(c["Id"], 137, oom=True)

    t = _when_running(double, play)
    with pytest.raises(ServerFailed) as ei:
        deploy.up(plan, recipe_l, timeout=30)
    t.join(5)
    exc = ei.value
    assert exc.exit_code == 4 and exc.kind == "oom-killed"
    text = exc.render()
    assert "OOMKilled" in text and "gpu_memory_utilization" in text and "checkpoint shards:  41%" in text
    assert double.containers == {}  # what this launch started is removed


def _up_then_lose_the_notes(simenv, double, plan, recipe_l) -> list:
    """`launch up` on the double, then this machine's notes are wiped (another machine, or a lost state
    dir); the container's labels stay. Returns the simulators to stop."""
    import shutil

    from launcher import deploy

    sims: list = []
    t = _play_vllm(double, plan, simenv, sims, 0.2)
    try:
        deploy.up(plan, recipe_l, timeout=30)
    finally:
        t.join(5)
    shutil.rmtree(simenv["dir"] / "state")
    return sims


def test_status_inventory_finds_the_labelled_container_without_local_notes(simenv, docker_double):
    """`launch status INVENTORY` on a machine without launch's notes (the watchdog box, a colleague's
    laptop) asks the inventory's Docker daemons for launch's labels and probes the endpoint they name;
    a host whose daemon does not answer (here: the local socket, no Docker engine) is skipped quietly."""
    import json

    from conftest import run_launch
    from launcher import deploy

    double = docker_double
    recipe_l, plan = _plan(simenv, double, "elsewhere")
    inv = simenv["dir"] / "elsewhere-hosts.yaml"
    inv.write_text(inv.read_text() + "  other:\n    address: 127.0.0.1\n"  # no `docker:`: may run none
                   "  broken:\n    address: 127.0.0.1\n    docker: unix:///nonexistent/named.sock\n")
    sims = _up_then_lose_the_notes(simenv, double, plan, recipe_l)
    try:
        env = {**simenv["env"], "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
        bare = run_launch("status", "--json", env=env)
        assert bare.returncode == 0 and json.loads(bare.stdout) == []  # no notes, no inventory: nothing known
        cp = run_launch("status", str(inv), "--json", env=env)
        assert cp.returncode == 0, cp.stderr
        rows = {r["name"]: r for r in json.loads(cp.stdout)}
        row = rows["elsewhere"]
        assert row["endpoint"] == plan.endpoint and row["served"] == plan.served_name
        assert row["health"] == "ok" and row["runtime"] == "docker"
        assert [p["process"] for p in row["processes"]] == ["server"] and row["processes"][0]["alive"]
        assert "container labels on " + double.url in row["note"]
        # `other` names no daemon: its silence is not news; `broken` names one that does not answer
        assert cp.stderr.count("could not list") == 1
        assert "could not list launch's containers on the Docker daemon at unix:///nonexistent/named.sock" in cp.stderr
    finally:
        for s in sims:
            s.stop()
        deploy.down("elsewhere", docker_urls=[double.url])
    assert double.containers == {}


def test_down_finds_the_labelled_container_without_local_notes(simenv, docker_double):
    """Deployments are found, not remembered: with this machine's state gone (another machine, or a
    wiped state dir), `launch down RECIPE` asks the recipe's Docker daemons for launch's labels."""
    from conftest import run_launch

    double = docker_double
    recipe_l, plan = _plan(simenv, double, "lost")
    sims = _up_then_lose_the_notes(simenv, double, plan, recipe_l)
    try:
        assert len(double.containers) == 1
        by_name = run_launch("down", "lost", env=simenv["env"])
        assert by_name.returncode == 0 and "nothing launch started for lost" in by_name.stdout  # no recipe, no daemon
        cp = run_launch("down", str(recipe_l.source.path), env=simenv["env"])
        assert cp.returncode == 0, cp.stderr
        assert "stopped server@box" in cp.stdout
        assert double.containers == {}
    finally:
        for s in sims:
            s.stop()
