"""Where the watchdog's URLs come from (inventory, else the deployment launch started there), restarting
a plain process launch started (local/ssh runtime records), and re-running the recipe after a cycle.

The deployment records and process handles are written the way launch up writes them
(launcher.deploy.remember, launcher.state.record); `launch down/up` and the recipe re-run are fakes that
record their arguments; the clock is a FakeClock (no real sleeps)."""
from __future__ import annotations

import asyncio
import json

import pytest

from launcher.errors import InputError
from launcher.power.base import FakeClock, Power
from launcher.runtimes.base import Handle
from launcher.spec.load import load_inventory
from launcher.watchdog.build import from_inventory
from launcher.watchdog.journal import Journal
from launcher.watchdog.loop import Node, Watchdog
from launcher.watchdog.probes import Target
from launcher.watchdog.restart import DOCKER_RESTART, Restarter
from test_watchdog_decide import POLICY, FakePlug, Script


def _deployment(state, recipe, endpoint, hosts, recipe_path=None):
    d = state / "deployments"
    d.mkdir(parents=True, exist_ok=True)
    f = d / f"{recipe}.json"
    f.write_text(json.dumps({"recipe": recipe, "recipe_path": recipe_path, "endpoint": endpoint, "runtime": "ssh",
                             "hosts": hosts}))
    return f


def _inventory(tmp_path, body):
    p = tmp_path / "inv.yaml"
    p.write_text(body)
    return p, load_inventory(str(p))


INV = """name: lab
reference: 10.0.0.1:53
hosts:
  spark-1:
    address: 10.0.0.5
    watch: {}
  spark-2:
    address: 10.0.0.6
    watch: {url: "http://10.0.0.6:8000"}
"""


def test_urls_from_the_deployment_launch_started_and_the_journal_says_so(isolated):
    f = _deployment(isolated / "state", "nemo", "http://10.0.0.5:8000", {"spark-1": {"address": "10.0.0.5"}})
    path, loaded = _inventory(isolated, INV)
    wd = from_inventory(loaded.spec, policy=POLICY, where=loaded.where, state_dir=isolated / "wd",
                        journal=Journal(None, console=None), clock=FakeClock())
    assert wd.nodes["spark-1"].target.urls == ["http://10.0.0.5:8000"]
    assert wd.nodes["spark-2"].target.urls == ["http://10.0.0.6:8000"]
    wd.prober = Script({"spark-1": [True], "spark-2": [True]})
    asyncio.run(wd.run(once=True))
    watch = {e["node"]: e for e in wd.journal.events if e["event"] == "watch"}
    assert "nemo" in watch["spark-1"]["source"] and str(f) in watch["spark-1"]["source"]
    assert watch["spark-2"]["source"] == f"inventory {path}:9"  # the line of spark-2's watch.url
    assert "watching http://10.0.0.5:8000 (from the deployment(s) launch started there: nemo" in \
        Journal.render(watch["spark-1"])


def test_a_node_with_neither_url_nor_deployment_is_an_input_error_with_file_line(isolated):
    # a worker of a deployment served from elsewhere does not count as serving there
    _deployment(isolated / "state", "nemo", "http://10.0.0.9:8000", {"spark-1": {"address": "10.0.0.5"}})
    path, loaded = _inventory(isolated, INV)
    with pytest.raises(InputError) as err:
        from_inventory(loaded.spec, policy=POLICY, where=loaded.where, state_dir=isolated / "wd")
    e = err.value
    assert e.where == f"{path}:6" and "spark-1" in e.what and "10.0.0.5" in e.what
    assert "served from http://10.0.0.9:8000" in e.what
    assert "url: http://10.0.0.5:8000" in e.fix and "launch up" in e.fix


def _ssh_handle(recipe="nemo", address="10.0.0.5", host="spark-1"):
    return Handle(runtime="ssh", recipe=recipe, plan_hash="abc", process="server", role="server", host=host,
                  address=address, ref={"pid": 4242, "start_time": "99", "log": "/x.log", "ssh": {"address": address}})


def test_restart_of_a_plain_process_launch_started_over_ssh(isolated):
    recipe_file = isolated / "nemo.yaml"
    recipe_file.write_text("name: nemo\n")
    _deployment(isolated / "state", "nemo", "http://10.0.0.5:8000", {}, recipe_path=str(recipe_file))
    _path, loaded = _inventory(isolated, INV)
    hosts = loaded.spec.hosts
    calls = []

    def launch(args, timeout):
        calls.append((args, timeout))
        return 0, "started nemo"
    ssh_runner_calls = []
    r = Restarter(hosts, launch=launch, records=lambda: [_ssh_handle(), _ssh_handle(address="10.0.0.77")],
                  runner=lambda *a: ssh_runner_calls.append(a) or (0, ""), up_timeout=900)
    assert r.method("spark-1") == ("launch", str(recipe_file))  # the recorded recipe file, not just its name
    assert "pid 4242 (ssh)" in r.describe("spark-1")
    ok, detail = r.restart("spark-1")
    assert ok and calls == [(["down", str(recipe_file)], 120.0), (["up", str(recipe_file)], 900)]
    assert ssh_runner_calls == [] and "ready" in detail
    # no record on spark-2: launch's containers there (docker label), over the ssh runner
    assert r.method("spark-2") == ("docker", DOCKER_RESTART)
    assert r.restart("spark-2")[0] and ssh_runner_calls[0][1] == DOCKER_RESTART

    # watch.recipe wins over the recorded recipe; a failed `launch down` stops before `up`
    calls.clear()
    r2 = Restarter(hosts, recipes={"spark-1": "other"}, records=lambda: [_ssh_handle()],
                   launch=lambda a, t: calls.append(a) or (1, "cannot reach host"))
    ok, detail = r2.restart("spark-1")
    assert not ok and calls == [["down", "other"]] and "cannot reach host" in detail


def test_watch_restart_command_comes_first(isolated):
    _path, loaded = _inventory(isolated, INV.replace("watch: {}", "watch: {restart: 'systemctl restart vllm'}"))
    r = Restarter(loaded.spec.hosts, records=lambda: [_ssh_handle()], launch=lambda a, t: pytest.fail("no launch"),
                  runner=lambda host, script, t: (0, ""))
    assert r.method("spark-1") == ("command", "systemctl restart vllm") and r.restart("spark-1")[0]


def test_watchdog_restarts_the_recorded_process_before_any_cycle(isolated):
    _path, loaded = _inventory(isolated, INV)
    calls = []
    restarter = Restarter(loaded.spec.hosts, records=lambda: [_ssh_handle()],
                          launch=lambda a, t: calls.append(a[0]) or (0, ""))
    clock = FakeClock()
    plug = FakePlug()
    node = Node("spark-1", Target("spark-1", ["http://10.0.0.5:8000"], ssh_host="10.0.0.5"),
                power=Power(plug, clock=clock, poll=1.0, confirm_timeout=20), reference="gw:53")
    script = Script({"spark-1": [(False, True)] * 3 + [True] * 5})
    wd = Watchdog([node], policy=POLICY, clock=clock, journal=Journal(None, console=None), prober=script,
                  restarter=restarter)
    _run(wd, clock, 6)
    assert calls == ["down", "up"] and plug.switches == [] and wd.nodes["spark-1"].state.phase == "healthy"
    ev = [e for e in wd.journal.events if e["event"] == "restart"][0]
    assert ev["ok"] and "launch down nemo" in ev["sent"]


def _run(wd, clock, rounds):
    async def go():
        clock.sleep(POLICY.grace + 1)
        for _ in range(rounds):
            await wd.tick(wait=True)
            await clock.asleep(POLICY.period)
    asyncio.run(go())


@pytest.mark.parametrize("cycle_ok", [True, False])
def test_recipe_is_rerun_once_ssh_answers_again_and_not_before(cycle_ok):
    clock = FakeClock()
    plug = FakePlug()
    if not cycle_ok:
        plug.switch = lambda on: None  # the plug ignores the switch: off is never confirmed
    # 3 failures with SSH down -> cycle (the 4th answer is the re-check after the random delay); then the
    # node is back on but SSH stays down for 3 probes; the 8th probe is the first with SSH answering.
    seq = [(False, False)] * 4 + [(False, False)] * 3 + [(False, True)] + [(True, True)] * 6
    script = Script({"n1": seq})
    reruns = []

    def rerun(name, recipe):
        reruns.append((name, recipe, script.calls["n1"]))
        return "started (fake)"
    node = Node("n1", Target("n1", ["http://n1:8000"], ssh_host="n1"),
                power=Power(plug, clock=clock, poll=1.0, confirm_timeout=20), reference="gw:53", recipe="nemo")
    wd = Watchdog([node], policy=POLICY, clock=clock, journal=Journal(None, console=None), prober=script,
                  rerun=rerun)
    _run(wd, clock, 12)
    assert wd.cycles == ["n1"]
    if cycle_ok:
        assert reruns == [("n1", "nemo", 8)]  # exactly once, at the first probe where SSH answered
        ev = [e for e in wd.journal.events if e["event"] == "rerun"]
        assert len(ev) == 1 and ev[0]["recipe"] == "nemo" and ev[0]["detail"] == "started (fake)"
    else:
        assert reruns == []  # a cycle that failed re-runs nothing (an alert went out instead)
        alerts = [e for e in wd.journal.events if e["event"] == "alert"]
        assert [a["alert"] for a in alerts] == ["cycle-failed"] and "still on" in alerts[0]["reason"]


def test_the_deployments_api_key_reaches_the_prober_and_is_never_logged(isolated, monkeypatch):
    monkeypatch.setenv("WD_TEST_KEY", "sk-wd-secret-7788")
    f = _deployment(isolated / "state", "nemo", "http://10.0.0.5:8000", {"spark-1": {"address": "10.0.0.5"}})
    meta = json.loads(f.read_text())
    f.write_text(json.dumps({**meta, "api_key": {"env": "WD_TEST_KEY"}}))
    _path, loaded = _inventory(isolated, INV)
    wd = from_inventory(loaded.spec, policy=POLICY, where=loaded.where, state_dir=isolated / "wd",
                        journal=Journal(None, console=None), clock=FakeClock())
    assert wd.prober.key_for("http://10.0.0.5:8000") == "sk-wd-secret-7788"
    assert wd.prober.key_for("http://10.0.0.6:8000") is None  # spark-2: no key known
    wd.prober = Script({"spark-1": [True], "spark-2": [True]})
    asyncio.run(wd.run(once=True))
    watch = {e["node"]: e for e in wd.journal.events if e["event"] == "watch"}
    assert "env:WD_TEST_KEY" in watch["spark-1"]["api_key"]
    assert "sk-wd-secret-7788" not in json.dumps(wd.journal.events)


def test_members_of_a_two_host_deployment_are_probed_and_have_power(isolated):
    inv_text = INV.replace("""  spark-2:
    address: 10.0.0.6
    watch: {url: "http://10.0.0.6:8000"}""", """  spark-2:
    address: 10.0.0.6
    ssh: {port: 2222}
    power: {driver: shelly, address: 10.0.0.52}""")
    _deployment(isolated / "state", "nemo", "http://10.0.0.5:8000",
                {"spark-1": {"address": "10.0.0.5"}, "spark-2": {"address": "10.0.0.6"}})
    _path, loaded = _inventory(isolated, inv_text)
    wd = from_inventory(loaded.spec, policy=POLICY, where=loaded.where, state_dir=isolated / "wd",
                        journal=Journal(None, console=None), clock=FakeClock())
    assert list(wd.nodes) == ["spark-1"]
    n = wd.nodes["spark-1"]
    assert n.target.members == [("spark-2", "10.0.0.6", 2222)]
    assert n.members["spark-2"].power is not None and "deployment nemo" in n.members_source


def test_shipped_nemotron_on_dgx_knows_its_worker(isolated):
    """recipes/nemotron.yaml runs TP 2 over spark-1 and spark-2; hosts/dgx.yaml watches spark-1 (watch.recipe)."""
    from launcher.spec.load import load_inventory

    loaded = load_inventory("dgx")
    wd = from_inventory(loaded.spec, policy=POLICY, where=loaded.where, state_dir=isolated / "wd",
                        journal=Journal(None, console=None), clock=FakeClock(), metas=[])
    n = wd.nodes["spark-1"]
    assert [m[0] for m in n.target.members] == ["spark-2"] and n.members["spark-2"].power is not None
