"""An unreachable host costs one ssh timeout, not two: the look-up for a running deployment to attach
to and preflight share one reachability check. 127.0.0.2/127.0.0.3 run a "tarpit" that accepts TCP
connections and never says a word, which is how a wedged host (or a firewall that drops) looks to ssh:
it waits out ConnectTimeout during the banner exchange. The tarpit counts the connection attempts."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from conftest import run_launch


class Tarpit:
    def __init__(self, address: str, port: int = 0):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(32)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)

    def close(self):
        self._stop.set()
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def tarpits():
    a = Tarpit("127.0.0.2")
    try:
        b = Tarpit("127.0.0.3", a.port)
    except OSError:
        a.close()
        pytest.skip("no common free port on 127.0.0.2/127.0.0.3")
    yield a, b
    a.close()
    b.close()


@pytest.mark.parametrize("runtime", ["docker", "ssh"])
def test_an_unreachable_host_is_tried_once(isolated, tarpits, runtime):
    a, b = tarpits
    inv = isolated / "two.yaml"
    inv.write_text(f"""name: two
hosts:
  node-a: {{address: 127.0.0.2, ssh: {{port: {a.port}}}, gpus: {{count: 1}}}}
  node-b: {{address: 127.0.0.3, ssh: {{port: {a.port}}}, gpus: {{count: 1}}}}
""")
    recipe = isolated / "r.yaml"
    image = "image: vllm/vllm-openai:latest\n" if runtime == "docker" else ""
    recipe.write_text(f"""name: twonode
engine: vllm
model: org/m
hosts: {inv}
runtime: {runtime}
{image}parallelism: {{tensor: 2, nodes: 2, backend: mp}}
""")
    if runtime == "ssh":  # a deployment recorded from before: the attach look-up would ssh to check it
        from launcher import state
        from launcher.runtimes.base import Handle

        state.record(Handle(runtime="ssh", recipe="twonode", plan_hash="x", process="server", role="server",
                            host="node-a", address="127.0.0.2",
                            ref={"ssh": {"address": "127.0.0.2", "ssh": {"port": a.port}}, "pid": 1,
                                 "start_time": 1, "log": "/tmp/x.log"}))
    t0 = time.monotonic()
    proc = run_launch("up", str(recipe), timeout=120)
    took = time.monotonic() - t0
    assert proc.returncode == 1, proc.stderr
    assert "node-a: not reachable over ssh" in proc.stderr or "node-a, node-b: not reachable" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (len(a.conns), len(b.conns)) == (1, 1), (took, proc.stderr)
