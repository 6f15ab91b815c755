"""The watchdog end to end on 127.0.0.1: real probes against the vLLM simulator, a simulated Shelly
plug whose on_change stops the node's simulator while "off" and starts a healthy one when "on".

`wedge` (simulator): /health 200, requests admitted but no token ever generated (a deadlocked engine).
`hang` (simulator): TCP accepted, no HTTP answer ever (a frozen host whose kernel still ACKs).
"""
from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from launcher.power import Power
from launcher.power.shelly import ShellyDriver
from launcher.sim import SimConfig, VllmSim
from launcher.sim.plug import make
from launcher.watchdog import decide as D
from launcher.watchdog.journal import Journal
from launcher.watchdog.loop import Node, Watchdog
from launcher.watchdog.probes import Prober, Target

PERIOD, FAILURES = 0.3, 3


class PoweredNode:
    """A node: a vLLM simulator behind a simulated plug (off = the server is gone)."""

    def __init__(self, fail):
        self.sim = VllmSim(SimConfig(quiet=True, fail=fail)).start()
        self.port = self.sim.port
        self.lock = threading.Lock()
        self.plug = make("shelly", on_change=self.on_change).start()

    def on_change(self, on):
        with self.lock:
            if on:  # power back: a freshly booted, healthy server on the same port
                self.sim = VllmSim(SimConfig(quiet=True, port=self.port)).start()
            else:
                self.sim.stop()

    def close(self):
        self.plug.stop()
        with self.lock:
            self.sim.stop()


@pytest.mark.parametrize("fail", ["wedge", "hang"])
def test_wedged_or_hung_node_is_detected_cycled_once_and_comes_back(fail, tmp_path):
    node = PoweredNode(fail)
    ref = VllmSim(SimConfig(quiet=True)).start()  # the watchdog's reference: it can reach the network
    # stall=0: no movement at all between two probes while a request runs is a failure at once (the
    # default 10 min window is for long prefills; test_watchdog_decide covers it)
    policy = D.Policy(period=PERIOD, timeout=0.5, failures=FAILURES, grace=1.0, restart_grace=1, delay_max=0.0,
                      off_wait=0.2, stall=0)
    journal = Journal(tmp_path / "j.jsonl", console=None)
    try:
        power = Power(ShellyDriver(node.plug.url), poll=0.05, confirm_timeout=5)
        wd = Watchdog([Node("n1", Target("n1", [node.sim.url]), power=power)], policy=policy, journal=journal,
                      prober=Prober(timeout=policy.timeout, generate_every=0),
                      # a TCP reference: the kernel completes the connect, no simulator thread has to answer
                      reference=f"127.0.0.1:{ref.port}")
        wd.nodes["n1"].state = D.NodeState("healthy")  # the watchdog started long ago: no start-up grace

        async def go():
            t0 = time.monotonic()
            rounds_to_cycle = None
            for i in range(40):
                await wd.tick(wait=True)
                if wd.cycles and rounds_to_cycle is None:
                    rounds_to_cycle = i + 1
                if rounds_to_cycle and wd.nodes["n1"].state.phase == "healthy":
                    break
                await asyncio.sleep(PERIOD)
            await wd.prober.aclose()
            return rounds_to_cycle, time.monotonic() - t0

        rounds, _elapsed = asyncio.run(go())
        # wedge: the hung tiny generation then shows once as a new running request (a running count that
        # changes is progress), so one round more than `hang`; one spare round each for a slow probe
        assert rounds is not None and rounds <= FAILURES + (3 if fail == "wedge" else 2), f"detected after {rounds} rounds"
        assert wd.cycles == ["n1"], wd.cycles
        assert wd.nodes["n1"].state.phase == "healthy"  # the fresh server after the cycle answers
        assert [on for _t, on in node.plug.changes] == [False, True]
        lines = [json.loads(x) for x in (tmp_path / "j.jsonl").read_text().splitlines()]
        cyc = [e for e in lines if e["event"] == "cycle"]
        assert len(cyc) == 1 and cyc[0]["ok"] and cyc[0]["off_confirmed"] and cyc[0]["after"] == "on"
        assert any("Switch.Set" in s for s in cyc[0]["sent"])
        probes = [e for e in lines if e["event"] == "probe"]
        assert probes and all("checks" in e for e in probes)
        if fail == "wedge":
            assert any("no progress" in e["reason"] or "tiny generation" in e["reason"] or "timed out" in e["reason"]
                       for e in probes if not e["service_ok"])
    finally:
        journal.close()
        ref.stop()
        node.close()


def test_healthy_busy_node_is_never_cycled():
    """Slow streaming generations keep requests running; the counters move, so nothing happens."""
    import httpx

    sim = VllmSim(SimConfig(quiet=True, latency_s=0.2, token_s=0.4)).start()
    stop = threading.Event()

    def load():
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                try:
                    c.post(sim.url + "/v1/chat/completions", json={
                        "model": sim.listed_model, "max_tokens": 64,
                        "messages": [{"role": "user", "content": "write a long story"}]})
                except httpx.HTTPError:
                    pass
    workers = [threading.Thread(target=load, daemon=True) for _ in range(3)]
    for w in workers:
        w.start()
    # stall 2 s: counters move every <= 0.4 s per request (token_s), so 5x that is still strict (the default
    # is 600 s) while a GIL or CPU-steal pause of the simulator's threads between two probes is not a stall
    policy = D.Policy(period=PERIOD, timeout=5.0, failures=2, grace=0, delay_max=0, stall=2.0)
    wd = Watchdog([Node("n1", Target("n1", [sim.url]))], policy=policy, journal=Journal(None, console=None),
                  prober=Prober(timeout=5.0, generate_every=0))
    wd.nodes["n1"].state = D.NodeState("healthy")

    async def go():
        for _ in range(10):
            await wd.tick(wait=True)
            await asyncio.sleep(PERIOD)
        await wd.prober.aclose()
    try:
        asyncio.run(go())
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=10)
        sim.stop()
    probes = [e for e in wd.journal.events if e["event"] == "probe"]
    assert wd.cycles == [] and all(e["service_ok"] for e in probes), [e["reason"] for e in probes if not e["service_ok"]]
    assert any("running" in c["detail"] for e in probes for c in e["checks"] if c["name"] == "heartbeat")
