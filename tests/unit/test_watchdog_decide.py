"""The decision loop over scripted probe sequences, with a fake clock (no real sleeps, no network).

The probe results stand for what probes.py reports from a real node; the power driver is a fake that
records switches and holds a state, so "exactly one cycle" is the number of off→on sequences sent.
"""
from __future__ import annotations

import asyncio
import json
import random

import pytest

from launcher.power.base import Driver, FakeClock, Power
from launcher.watchdog import decide as D
from launcher.watchdog.budget import Alerter, Budget
from launcher.watchdog.journal import Journal
from launcher.watchdog.loop import Node, Watchdog
from launcher.watchdog.probes import Check, Observation, Target
from tests.loopback import LoopbackServer


class FakePlug(Driver):
    name = "fake"

    def __init__(self):
        super().__init__()
        self.on = True
        self.switches: list[bool] = []

    def state(self):
        return "on" if self.on else "off"

    def switch(self, on):
        self.switches.append(on)
        self.on = on


class Script:
    """A prober whose answers per node come from a list (the last one repeats)."""

    def __init__(self, seqs: dict[str, list], reference=True, members: dict[str, list] | None = None):
        self.seqs = {k: list(v) for k, v in seqs.items()}
        self.reference = reference
        self.calls: dict[str, int] = {}
        self.members = {k: list(v) for k, v in (members or {}).items()}  # member SSH answers (True/False)

    def _next(self, name):
        seq = self.seqs[name]
        i = self.calls.get(name, 0)
        self.calls[name] = i + 1
        return seq[min(i, len(seq) - 1)]

    async def probe(self, t: Target) -> Observation:
        item = self._next(t.name)
        service, ssh = (item, True) if isinstance(item, bool) else item
        checks = [Check("health", service, "200" if service else "timed out", 0.01, t.name)]
        if ssh is not None:
            checks.append(Check("ssh", ssh, "SSH-2.0-OpenSSH" if ssh else "timed out", 0.01, t.name))
        for name, _host, _port in t.members:
            ok = self._member(name)
            checks.append(Check("member", ok, "SSH-2.0-OpenSSH" if ok else "timed out", 0.01, name))
        return Observation(t.name, service, checks, "" if service else "health: timed out")

    def _member(self, name):
        seq = self.members[name]
        i = self.calls.get("member:" + name, 0)
        self.calls["member:" + name] = i + 1
        return seq[min(i, len(seq) - 1)]

    async def ssh_check(self, name, target, host, port):
        ok = self._member(target)
        return Check(name, ok, "SSH-2.0-OpenSSH" if ok else "timed out", 0.01, target)

    async def probe_all(self, targets):
        return [await self.probe(t) for t in targets]

    async def reachable(self, ref):
        ok = self.reference if not callable(self.reference) else self.reference()
        return Check("reference", ok, "ok" if ok else "timed out", 0.0, ref)

    async def aclose(self):
        pass


class FakeRestarter:
    def __init__(self, ok=True, fixes=None):
        self.ok = ok
        self.calls: list[str] = []
        self.fixes = fixes  # callable(node) run on restart (e.g. make the script healthy)

    def can(self, node):
        return True

    def describe(self, node):
        return "docker restart <launch's containers>"

    def restart(self, node):
        self.calls.append(node)
        if self.fixes:
            self.fixes(node)
        return self.ok, "exit 0" if self.ok else "exit 3: no container"


POLICY = D.Policy(period=10, timeout=10, failures=3, grace=1200, restart_grace=60, max_cycles=3,
                  window=6 * 3600, delay_max=5, off_wait=10)


def make(seqs, *, reference=True, restarter=None, budget=None, alerter=None, pause_file=None, policy=POLICY,
         dry_run=False):
    clock = FakeClock()
    plugs = {name: FakePlug() for name in seqs}
    nodes = [Node(name, Target(name, [f"http://{name}:8000"], ssh_host=name),
                  power=Power(plugs[name], clock=clock, poll=1.0, confirm_timeout=20), reference="gw:53")
             for name in seqs]
    prober = Script(seqs, reference)
    wd = Watchdog(nodes, policy=policy, clock=clock, journal=Journal(None, console=None), prober=prober,
                  budget=budget or Budget(max_cycles=policy.max_cycles, window=policy.window, wall=clock.wall),
                  alerter=alerter or Alerter(), restarter=restarter or FakeRestarter(ok=False),
                  pause_file=pause_file, dry_run=dry_run, rng=random.Random(1))
    return wd, clock, plugs, prober


def run(wd, clock, rounds, *, skip_grace=True):
    async def go():
        if skip_grace:
            clock.sleep(POLICY.grace + 1)
        for _ in range(rounds):
            await wd.tick(wait=True)
            await clock.asleep(POLICY.period)
    asyncio.run(go())


def cycles(plug: FakePlug) -> int:
    """Completed off→on sequences the plug received."""
    return sum(1 for a, b in zip(plug.switches, plug.switches[1:]) if a is False and b is True)


def test_truly_wedged_ssh_down_exactly_one_cycle():
    wd, clock, plugs, _ = make({"n1": [(False, False)] * 4 + [True] * 10})
    run(wd, clock, 13)
    assert plugs["n1"].switches == [False, True]
    assert cycles(plugs["n1"]) == 1 and wd.cycles == ["n1"]
    ev = [e for e in wd.journal.events if e["event"] == "cycle"][0]
    assert ev["ok"] and ev["off_confirmed"] and ev["before"] == "on" and ev["after"] == "on"
    assert "SSH does not answer" in ev["reason"]


def test_wedged_restart_does_not_help_then_one_cycle():
    r = FakeRestarter(ok=True)
    wd, clock, plugs, _ = make({"n1": [(False, True)] * 200}, restarter=r)
    run(wd, clock, 130)  # 3 failures, the restart, the start-up grace again (1200 s), 3 failures: one cycle
    assert r.calls == ["n1"]  # restarted first, once
    assert cycles(plugs["n1"]) == 1
    reasons = [e["reason"] for e in wd.journal.events if e["event"] == "decision" and e["action"] == "cycle"]
    assert reasons and "did not help" in reasons[0]


def test_restart_fixes_it_zero_cycles():
    seqs = {"n1": [(False, True)] * 3 + [(False, True)] * 50}
    holder = {}

    def fix(node):  # after the restart the server answers again
        holder["p"].seqs[node] = [True]
    r = FakeRestarter(ok=True, fixes=fix)
    wd, clock, plugs, prober = make(seqs, restarter=r)
    holder["p"] = prober
    run(wd, clock, 20)
    assert r.calls == ["n1"] and plugs["n1"].switches == [] and wd.cycles == []
    assert any(e.get("reason") == "the restart fixed it" for e in wd.journal.events)


def test_flapping_zero_cycles():
    wd, clock, plugs, _ = make({"n1": [False, True, False, False, True] * 20})
    run(wd, clock, 60)
    assert plugs["n1"].switches == [] and wd.cycles == []


class MetricsServer(LoopbackServer):
    """A tiny HTTP/1.1 server on 127.0.0.1 standing for vLLM: /health 200, /metrics from a script (one entry
    per /metrics request, the last repeats), /v1/models and a tiny generation that answer (or 401)."""

    def __init__(self, script, *, key=None, hang_generation=False):
        self.script, self.key, self.n, self.paths = list(script), key, 0, []
        self.hang_generation = hang_generation

    @staticmethod
    def metrics(running=0.0, waiting=0.0, gen=0.0, prompt=0.0, kv=0.0, old_kv_name=False):
        kv_name = "gpu_cache_usage_perc" if old_kv_name else "kv_cache_usage_perc"
        return (f'# HELP vllm:num_requests_running x\nvllm:num_requests_running{{model_name="m"}} {running}\n'
                f'vllm:num_requests_waiting{{model_name="m"}} {waiting}\nvllm:{kv_name}{{model_name="m"}} {kv}\n'
                f'vllm:prompt_tokens_total{{model_name="m"}} {prompt}\n'
                f'vllm:generation_tokens_total{{model_name="m"}} {gen}\n').encode()

    async def handle(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                headers = {}
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    k, _, v = h.decode().partition(":")
                    headers[k.strip().lower()] = v.strip()
                await reader.readexactly(int(headers.get("content-length", 0)))
                path = line.split()[1].decode()
                self.paths.append(path)
                status, body = 200, b"{}"
                if path == "/metrics":
                    body = self.script[min(self.n, len(self.script) - 1)]
                    self.n += 1
                elif path.startswith("/v1/") and self.key and headers.get("authorization") != f"Bearer {self.key}":
                    status, body = 401, b'{"error": "Unauthorized"}'
                elif path == "/v1/models":
                    body = b'{"object": "list", "data": [{"id": "m"}]}'
                elif path == "/v1/chat/completions" and self.hang_generation:  # a deadlocked engine
                    await asyncio.sleep(30)
                    return
                writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n" % (status, len(body)) + body)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def run_real(script, rounds, *, policy=POLICY, restarter=None, key=None, api_key=None, alerter=None,
             hang_generation=False, timeout=5.0, generate_every=60.0, prober_clock=False):
    """The watchdog with the real Prober against a MetricsServer, a FakeClock, a fake plug."""
    from launcher.watchdog.probes import Prober

    async def go():
        async with MetricsServer(script, key=key, hang_generation=hang_generation) as srv:
            clock = FakeClock()
            plug = FakePlug()
            node = Node("n1", Target("n1", [srv.url]), power=Power(plug, clock=clock, poll=1.0, confirm_timeout=20),
                        reference="gw:53")
            prober = Prober(timeout=timeout, api_key=api_key, stall=policy.stall, generate_every=generate_every,
                            now=clock.now if prober_clock else None)
            prober.reachable = Script({}).reachable  # the reference answers
            r = restarter or FakeRestarter(ok=True)
            wd = Watchdog([node], policy=policy, clock=clock, journal=Journal(None, console=None), prober=prober,
                          restarter=r, rng=random.Random(1), alerter=alerter or Alerter())
            wd.nodes["n1"].state = D.NodeState("healthy")
            for _ in range(rounds):
                await wd.tick(wait=True)
                await clock.asleep(policy.period)
            await prober.aclose()
            return wd, plug, r, srv
    return asyncio.run(go())


def test_slow_but_alive_under_load_zero_cycles():
    """A 100k-token prefill on vLLM V1: one request running, prompt_tokens_total only moves when the prefill
    completes, generation_tokens_total still; KV usage flat (allocated at once). 5 minutes of that, then the
    prefill completes and tokens flow. Real probes, real /metrics parsing: no failure, no restart, no cycle."""
    M = MetricsServer.metrics
    script = [M(0, 0, 500, 2000, 0.0), M(1, 0, 500, 2000, 0.62)] + [M(1, 0, 500, 2000, 0.62)] * 30 + \
             [M(1, 0, 500 + 40 * i, 102000, 0.63) for i in range(1, 10)]
    wd, plug, r, _srv = run_real(script, 42)
    assert r.calls == [] and plug.switches == [] and wd.cycles == []
    assert not [e for e in wd.journal.events if e["event"] == "probe" and not e["service_ok"]]
    assert wd.nodes["n1"].state.phase == "healthy"


def test_no_progress_past_the_stall_window_is_a_failure():
    """Nothing moves for longer than the stall window while a request runs: a real wedge, restarted."""
    M = MetricsServer.metrics
    policy = D.Policy(**{**POLICY.__dict__, "stall": 300})
    wd, plug, r, _srv = run_real([M(1, 0, 500, 2000, 0.62)], 40, policy=policy)
    fails = [e for e in wd.journal.events if e["event"] == "probe" and not e["service_ok"]]
    assert fails and "no progress for" in fails[0]["reason"]
    # the first failure comes once the stall window (300 s = 30 periods) has passed, not before
    first = [e for e in wd.journal.events if e["event"] == "probe"].index(fails[0])
    assert 29 <= first <= 31
    assert r.calls == ["n1"]


def test_any_moving_gauge_is_progress():
    """Waiting/running counts and KV usage (old and new names) changing count as progress."""
    M = MetricsServer.metrics
    policy = D.Policy(**{**POLICY.__dict__, "stall": 15})
    script = [M(1, 0, 5, 5, 0.1), M(1, 1, 5, 5, 0.1), M(1, 1, 5, 5, 0.1), M(2, 0, 5, 5, 0.1), M(2, 0, 5, 5, 0.1),
              M(2, 0, 5, 5, 0.2, old_kv_name=True), M(2, 0, 5, 5, 0.2, old_kv_name=True),
              M(2, 0, 5, 5, 0.3, old_kv_name=True)] + [M(0, 0, 9, 9, 0.0)]
    wd, plug, r, _srv = run_real(script, 12, policy=policy)
    assert not [e for e in wd.journal.events if e["event"] == "probe" and not e["service_ok"]]
    assert r.calls == [] and plug.switches == []


def test_inside_the_grace_zero_cycles():
    wd, clock, plugs, _ = make({"n1": [(False, False)] * 200})
    run(wd, clock, 100, skip_grace=False)  # 100 rounds x 10 s < 1200 s grace
    assert plugs["n1"].switches == [] and wd.cycles == []
    assert all("grace" in e["reason"] for e in wd.journal.events if e["event"] == "decision")


def test_budget_exhausted_alerts_instead_of_cycling(tmp_path):
    policy = D.Policy(**{**POLICY.__dict__, "grace": 0, "max_cycles": 2})
    alerter = Alerter(command=f"echo \"$LAUNCHER_WATCHDOG_EVENT $LAUNCHER_WATCHDOG_NODE\" >> {tmp_path / 'alerts'}")
    # after each cycle the node comes back (SSH answers) but its service stays down; no way to restart it
    restarter = FakeRestarter()
    restarter.can = lambda node: False
    wd, clock, plugs, _ = make({"n1": [(False, False)] * 4 + [(False, True)] * 100}, policy=policy, alerter=alerter,
                               restarter=restarter)
    run(wd, clock, 30)
    assert cycles(plugs["n1"]) == 2 and wd.cycles == ["n1", "n1"]
    assert (tmp_path / "alerts").read_text().splitlines() == ["gave-up n1"]  # alerted once, then quiet
    assert wd.nodes["n1"].state.phase == "gave_up"


def test_budget_survives_a_watchdog_restart(tmp_path):
    clock = FakeClock()
    b = Budget(max_cycles=3, window=100, path=tmp_path / "b.json", wall=clock.wall)
    b.record("n1")
    b.record("n1")
    assert Budget(max_cycles=3, window=100, path=tmp_path / "b.json", wall=clock.wall).left("n1") == 1
    clock.sleep(101)
    assert Budget(max_cycles=3, window=100, path=tmp_path / "b.json", wall=clock.wall).left("n1") == 3


def test_isolated_watchdog_cycles_nobody():
    wd, clock, plugs, _ = make({"n1": [(False, False)] * 50, "n2": [(False, False)] * 50}, reference=False)
    run(wd, clock, 30)
    assert all(p.switches == [] for p in plugs.values()) and wd.cycles == []
    assert any("cannot reach my reference" in e.get("reason", "") for e in wd.journal.events)


def test_no_reference_uses_other_nodes():
    # No reference configured: n2 answering proves the watchdog's network works, so n1 is cycled.
    wd, clock, plugs, _ = make({"n1": [(False, False)] * 4 + [True] * 10, "n2": [True] * 20})
    for n in wd.nodes.values():
        n.reference = None
    run(wd, clock, 6)
    assert cycles(plugs["n1"]) == 1 and plugs["n2"].switches == []


def test_pause_file_stops_cycling(tmp_path):
    pause = tmp_path / "pause"
    pause.write_text("")
    wd, clock, plugs, _ = make({"n1": [(False, False)] * 50}, pause_file=str(pause))
    run(wd, clock, 10)
    assert plugs["n1"].switches == []
    pause.unlink()
    run(wd, clock, 2, skip_grace=False)
    assert cycles(plugs["n1"]) == 1


def test_dry_run_does_nothing_but_says_what():
    wd, clock, plugs, _ = make({"n1": [(False, False)] * 10}, dry_run=True)
    run(wd, clock, 4)
    assert plugs["n1"].switches == []
    would = [e for e in wd.journal.events if e["event"] == "cycle"]
    assert would and would[0]["dry_run"] and "off, confirm off" in would[0]["would"]


def test_recovered_during_random_delay_cancels():
    wd, clock, plugs, prober = make({"n1": [(False, False)] * 3 + [True] * 10})
    wd.policy = D.Policy(**{**POLICY.__dict__, "delay_max": 5})
    # The 4th answer (the re-probe after the delay) is healthy.
    run(wd, clock, 3)
    assert plugs["n1"].switches == []
    assert any("during the random delay" in e.get("reason", "") for e in wd.journal.events)


@pytest.mark.parametrize("phase", ["grace", "restarted"])
def test_decide_is_pure(phase):
    st = D.NodeState(phase, grace_until=100)
    new, d = D.decide(st, False, True, 50, POLICY, D.Facts(reference_ok=True))
    assert st.phase == phase and st.fails == 0 and d.action == D.NONE
    assert new.phase == phase


class SlowRestarter(FakeRestarter):
    """`docker restart` / `launch up` that takes `takes` seconds of the fake clock."""

    def __init__(self, clock, takes, **kw):
        super().__init__(**kw)
        self.clock, self.takes = clock, takes

    def restart(self, node):
        self.clock.sleep(self.takes)
        return super().restart(node)


def test_restart_gets_the_full_start_up_grace_from_when_it_finished():
    # 3 failures (SSH answers) -> restart, which takes 300 s; then the model loads for 1000 s (refused), then
    # it serves. The grace must cover the load: counted from when the restart finished, not when decided.
    seq = [(False, True)] * 3 + [(False, True)] * 100 + [True] * 30
    wd, clock, plugs, _ = make({"n1": seq})
    r = SlowRestarter(clock, 300, ok=True)
    wd.restarter = r
    run(wd, clock, 125)
    assert r.calls == ["n1"] and plugs["n1"].switches == [] and wd.cycles == []
    assert wd.nodes["n1"].state.phase == "healthy"
    assert any(e.get("reason") == "the restart fixed it" for e in wd.journal.events)
    assert not [e for e in wd.journal.events if e["event"] == "decision" and e["action"] == "cycle"]


def test_pause_file_stops_restarts_too(tmp_path):
    pause = tmp_path / "pause"
    pause.write_text("")
    r = FakeRestarter(ok=True)
    wd, clock, plugs, _ = make({"n1": [(False, True)] * 50}, pause_file=str(pause), restarter=r)
    run(wd, clock, 10)
    assert r.calls == [] and plugs["n1"].switches == []
    skipped = [e for e in wd.journal.events if e["event"] == "decision" and e.get("skipped") == "paused"]
    assert skipped and skipped[0]["would"] == "restart" and skipped[0]["action"] == "none"
    pause.unlink()
    run(wd, clock, 1, skip_grace=False)
    assert r.calls == ["n1"]


def test_restart_budget_then_gave_up_alert(tmp_path):
    # The restart "fixes" it each time, and it wedges again: at most max_restarts, then alert and give up.
    policy = D.Policy(**{**POLICY.__dict__, "max_restarts": 2, "restart_window": 6 * 3600})
    alerter = Alerter(command=f"echo \"$LAUNCHER_WATCHDOG_EVENT\" >> {tmp_path / 'alerts'}")
    r = FakeRestarter(ok=True)
    wd, clock, plugs, _ = make({"n1": ([(False, True)] * 3 + [True] * 2) * 2 + [(False, True)] * 50}, restarter=r, policy=policy,
                               alerter=alerter)
    run(wd, clock, 40)
    assert r.calls == ["n1", "n1"] and plugs["n1"].switches == []
    assert (tmp_path / "alerts").read_text().split() == ["gave-up"]
    gave = [e for e in wd.journal.events if e["event"] == "decision" and e["action"] == "alert"]
    assert "restart budget spent" in gave[0]["reason"]


class DeadPlug(FakePlug):
    """A plug that does not answer at all (unreachable over the network)."""

    def state(self):
        raise ConnectionError("connect to 192.168.1.51:80 timed out")

    def switch(self, on):
        raise ConnectionError("connect to 192.168.1.51:80 timed out")


def test_unreachable_plug_alerts_backs_off_and_is_not_charged(tmp_path):
    alerter = Alerter(command=f"echo \"$LAUNCHER_WATCHDOG_EVENT $LAUNCHER_WATCHDOG_REASON\" >> {tmp_path / 'alerts'}")
    wd, clock, plugs, _ = make({"n1": [(False, False)] * 500}, alerter=alerter)
    wd.nodes["n1"].power = Power(DeadPlug(), clock=clock, poll=1.0, confirm_timeout=20, retries=1, retry_wait=1)
    run(wd, clock, 60)  # 600 s: well inside the back-off (the 1200 s grace)
    alerts = (tmp_path / "alerts").read_text().splitlines()
    assert len(alerts) == 1 and alerts[0].startswith("cycle-failed ") and "timed out" in alerts[0]
    assert "nothing was switched" in alerts[0]
    assert wd.budget.used("n1") == 0 and wd.nodes["n1"].state.phase == "backoff"
    run(wd, clock, 130, skip_grace=False)  # after the back-off it tries again (still not charged)
    assert len((tmp_path / "alerts").read_text().splitlines()) == 2 and wd.budget.used("n1") == 0


def test_after_a_failed_cycle_the_back_off_retries_the_cycle_not_the_restart(tmp_path):
    # SSH answers, the service does not; the restart did not help; the plug is unreachable
    alerter = Alerter(command=f"echo \"$LAUNCHER_WATCHDOG_EVENT\" >> {tmp_path / 'alerts'}")
    r = FakeRestarter(ok=True)
    wd, clock, plugs, _ = make({"n1": [(False, True)] * 1000}, restarter=r, alerter=alerter)
    wd.nodes["n1"].power = Power(DeadPlug(), clock=clock, poll=1.0, confirm_timeout=20, retries=1, retry_wait=1)
    run(wd, clock, 400, skip_grace=False)
    alerts = (tmp_path / "alerts").read_text().split()
    assert r.calls == ["n1"], r.calls  # one restart; every later attempt is the cycle
    assert len(alerts) >= 2 and set(alerts) == {"cycle-failed"}


def test_node_that_does_not_come_back_alerts_instead_of_cycling_again(tmp_path):
    alerter = Alerter(command=f"echo \"$LAUNCHER_WATCHDOG_EVENT\" >> {tmp_path / 'alerts'}")
    wd, clock, plugs, _ = make({"n1": [(False, False)] * 1000}, alerter=alerter)
    run(wd, clock, 300)  # cycle at ~40 s, grace 1200 s, then ~1700 s more
    assert cycles(plugs["n1"]) == 1 and wd.cycles == ["n1"]
    assert (tmp_path / "alerts").read_text().split() == ["did-not-come-back"]
    ev = [e for e in wd.journal.events if e["event"] == "decision" and e["action"] == "alert"]
    assert "did not come back (power on confirmed)" in ev[0]["reason"]


def test_node_back_on_ssh_but_service_down_is_judged_normally():
    # after the cycle SSH answers (the node came back), the service does not: restart first, no alert
    r = FakeRestarter(ok=True)
    wd, clock, plugs, _ = make({"n1": [(False, False)] * 4 + [(False, True)] * 500}, restarter=r)
    run(wd, clock, 130)
    assert cycles(plugs["n1"]) == 1 and r.calls == ["n1"]
    assert not [e for e in wd.journal.events if e["event"] == "alert"]


@pytest.mark.parametrize("generate_every", [0, 60])
def test_refused_api_key_is_reported_and_never_acted_on(tmp_path, generate_every):
    """A key is configured but the server refuses it (401): reported once (journal + alert), no restart, no
    cycle -- also when the tiny generation runs only every 60 s (30 rounds of 10 s: three of them), where the
    rounds between send no keyed request and must not read as "the key is accepted again"."""
    M = MetricsServer.metrics
    alerter = Alerter(command=f"echo \"$LAUNCHER_WATCHDOG_EVENT\" >> {tmp_path / 'alerts'}")
    wd, plug, r, srv = run_real([M(0, 0, 5, 5, 0.0)], 30, key="right-key-123", api_key="wrong-key-456",
                                alerter=alerter, generate_every=generate_every, prober_clock=True)
    assert r.calls == [] and plug.switches == [] and wd.cycles == []
    probes = [e for e in wd.journal.events if e["event"] == "probe"]
    assert all(e["service_ok"] for e in probes)
    auth = [c for e in probes for c in e["checks"] if c.get("kind") == "auth"]
    assert auth and not auth[0]["ok"] and "401" in auth[0]["detail"]
    assert (tmp_path / "alerts").read_text().split() == ["probe-auth"]  # once, not every round
    assert not [e for e in wd.journal.events if e["event"] == "auth" and e["ok"]]  # never "accepted again"
    assert "wrong-key-456" not in json.dumps(wd.journal.events)


def test_idle_deadlock_behind_an_api_key_is_detected():
    """The right key: the tiny generation is really sent (with the key) and hangs: failures, restart."""
    M = MetricsServer.metrics
    wd, plug, r, srv = run_real([M(0, 0, 5, 5, 0.0)], 4, key="right-key-123", api_key="right-key-123",
                                hang_generation=True, timeout=0.3, generate_every=0)
    assert "/v1/chat/completions" in srv.paths
    assert r.calls == ["n1"]


def _pair(member_seq, *, member_power=True, alerter=None):
    """spark-1 serves a TP=2 deployment with spark-2 (its Ray worker, not watched itself)."""
    from launcher.watchdog.loop import Member

    clock = FakeClock()
    head_plug, worker_plug = FakePlug(), FakePlug()
    members = {"spark-2": Member("spark-2", "10.0.0.6", 22, power=Power(worker_plug, clock=clock, poll=1.0,
                                                                         confirm_timeout=20) if member_power else None,
                                 power_error=None if member_power else "no `power:` in the inventory")}
    node = Node("spark-1", Target("spark-1", ["http://10.0.0.5:8000"], ssh_host="10.0.0.5",
                                  members=[("spark-2", "10.0.0.6", 22)]),
                power=Power(head_plug, clock=clock, poll=1.0, confirm_timeout=20), reference="gw:53",
                members=members)
    # the head's API answers nothing useful (the TP group lost its worker); its SSH answers
    prober = Script({"spark-1": [(False, True)] * 500}, members={"spark-2": member_seq})
    r = FakeRestarter(ok=True)
    wd = Watchdog([node], policy=POLICY, clock=clock, journal=Journal(None, console=None), prober=prober,
                  restarter=r, alerter=alerter or Alerter(), rng=random.Random(1))
    return wd, clock, head_plug, worker_plug, r


def test_unreachable_worker_is_cycled_and_the_reachable_head_is_left_alone():
    wd, clock, head_plug, worker_plug, r = _pair([False] * 5 + [True] * 500)
    run(wd, clock, 12)
    assert cycles(worker_plug) == 1 and wd.cycles == ["spark-2"]
    assert head_plug.switches == [] and r.calls == []  # the head was neither restarted nor cycled
    ev = [e for e in wd.journal.events if e["event"] == "cycle"][0]
    assert ev["node"] == "spark-2" and ev["member_of"] == "spark-1" and ev["ok"]
    assert wd.budget.used("spark-2") == 1 and wd.budget.used("spark-1") == 0
    d = [e for e in wd.journal.events if e["event"] == "decision" and e["action"] == "cycle-member"][0]
    assert "spark-2 is the suspect" in d["reason"]


def test_worker_without_power_alerts_and_the_head_is_never_touched(tmp_path):
    alerter = Alerter(command=f"echo \"$LAUNCHER_WATCHDOG_EVENT\" >> {tmp_path / 'alerts'}")
    wd, clock, head_plug, worker_plug, r = _pair([False] * 500, member_power=False, alerter=alerter)
    run(wd, clock, 60)
    assert head_plug.switches == [] and worker_plug.switches == [] and r.calls == [] and wd.cycles == []
    assert (tmp_path / "alerts").read_text().split() == ["member-unreachable"]


def test_reachable_worker_leaves_the_normal_escalation():
    # the worker answers SSH: the head's own failure is handled as usual (restart first)
    wd, clock, head_plug, worker_plug, r = _pair([True] * 500)
    run(wd, clock, 5)
    assert r.calls == ["spark-1"] and worker_plug.switches == []
