"""The watchdog loop: probe every node concurrently each period, decide, act, journal everything.

Actions (restart, power cycle, alert) run as tasks so one node's cycle never stalls the probes of
the others; `tick(wait=True)` awaits them (tests, --once). All waiting goes through the clock.
"""
from __future__ import annotations

import asyncio
import random
import sys
from dataclasses import dataclass, field

from launcher.power.base import Clock, Power
from launcher.watchdog import decide as D
from launcher.watchdog.budget import Alerter, Budget, paused, random_delay
from launcher.watchdog.journal import Journal
from launcher.watchdog.probes import Observation, Prober, Target


@dataclass
class Member:
    """Another host of the deployment a node serves (e.g. the Ray worker of a TP=2 pair)."""

    name: str
    host: str
    port: int = 22
    power: Power | None = None
    power_error: str | None = None


@dataclass
class Node:
    name: str
    target: Target
    power: Power | None = None
    power_error: str | None = None  # why there is no power driver (shown when it would be needed)
    reference: str | None = None
    recipe: str | None = None  # watch.recipe: re-run with `launch up` after a power cycle
    source: str = ""  # where the URLs came from (inventory line, or the deployment launch started there)
    served_recipe: str | None = None  # the recipe found serving there (deployment records)
    state: D.NodeState = field(default_factory=D.NodeState)
    rerun_pending: bool = False
    api_key_note: str = ""  # where the probe's API key comes from, or why there is none (never the key)
    auth_alerted: bool = False  # a refused key was reported; again only after it was accepted once
    members: dict[str, Member] = field(default_factory=dict)  # the deployment's other hosts (SSH-probed)
    members_source: str = ""  # where the member list came from


class Watchdog:
    def __init__(self, nodes: list[Node], *, policy: D.Policy | None = None, clock: Clock | None = None,
                 journal: Journal | None = None, prober: Prober | None = None, reference: str | None = None,
                 budget: Budget | None = None, alerter: Alerter | None = None, restarter=None,
                 restart_budget: Budget | None = None,
                 pause_file: str | None = None, dry_run: bool = False, rng: random.Random | None = None,
                 rerun=None):
        self.nodes = {n.name: n for n in nodes}
        self.policy = policy or D.Policy()
        self.clock = clock or Clock()
        self.journal = journal or Journal(None)
        self.prober = prober or Prober(timeout=self.policy.timeout)
        if getattr(self.prober, "now", 0) is None:  # the tiny-generation interval follows the watchdog's clock
            self.prober.now = self.clock.now
        if getattr(self.prober, "stall", 0) is None:  # the stall window follows the policy
            self.prober.stall = self.policy.stall
        self.reference = reference
        self.budget = budget or Budget(max_cycles=self.policy.max_cycles, window=self.policy.window, wall=self.clock.wall)
        self.restart_budget = restart_budget or Budget(max_cycles=self.policy.max_restarts,
                                                       window=self.policy.restart_window, wall=self.clock.wall)
        self.alerter = alerter or Alerter()
        self.restarter = restarter
        self.pause_file = pause_file
        self.dry_run = dry_run
        self.rng = rng or random.Random()
        self.rerun = rerun  # (node, recipe) -> str; default runs `launch up RECIPE` in the background
        self.rounds = 0
        self.cycles: list[str] = []  # nodes power-cycled (or that would be, in a dry run), in order
        self._tasks: dict[str, asyncio.Task] = {}
        self._switching: set[str] = set()  # hosts whose power is being switched right now
        now = self.clock.now()
        for n in self.nodes.values():
            n.state = D.start(now, self.policy)

    # -- one round ---------------------------------------------------------------------------------
    async def _references(self) -> dict[str, bool | None]:
        refs = {n.reference or self.reference for n in self.nodes.values()} - {None}
        checks = await asyncio.gather(*(self.prober.reachable(r) for r in refs))
        for c in checks:
            self.journal.write("reference", None, target=c.target, ok=c.ok, detail=c.detail, elapsed=c.elapsed)
        return {c.target: c.ok for c in checks}

    def _reference_ok(self, node: Node, refs: dict, obs: dict[str, Observation]) -> bool | None:
        ref = node.reference or self.reference
        if ref:
            return refs.get(ref)
        others = [o for name, o in obs.items() if name != node.name]
        if not others:
            return None
        return any(o.service_ok or any(c.ok for c in o.checks) for o in others)

    async def tick(self, wait: bool = False) -> list[D.Decision]:
        self.rounds += 1
        t0 = self.clock.now()
        idle = [n for n in self.nodes.values() if n.name not in self._tasks]
        results, refs = await asyncio.gather(self.prober.probe_all([n.target for n in idle]), self._references())
        obs = {o.node: o for o in results}
        now = self.clock.now()
        is_paused = paused(self.pause_file)
        decisions = []
        for o in results:
            node = self.nodes[o.node]
            self.journal.write("probe", o.node, **{k: v for k, v in o.to_json().items() if k != "node"})
            down = [m for m in o.members_down if m in node.members]
            suspect = node.members.get(down[0]) if down else None
            facts = D.Facts(can_restart=bool(self.restarter and self.restarter.can(node.name)),
                            suspect=suspect.name if suspect else None,
                            suspect_power=bool(suspect and suspect.power),
                            suspect_budget_left=self.budget.left(suspect.name) if suspect else 0,
                            reference_ok=self._reference_ok(node, refs, obs), paused=is_paused,
                            budget_left=self.budget.left(node.name),
                            restarts_left=self.restart_budget.left(node.name))
            before = node.state.phase
            node.state, d = D.decide(node.state, o.service_ok, o.ssh_ok, now, self.policy, facts, o.reason)
            decisions.append(d)
            if d.action != D.NONE or d.phase != before or not o.service_ok:
                self.journal.write("decision", node.name, action=d.action, reason=d.reason, phase=d.phase,
                                   fails=d.fails, dry_run=self.dry_run, **d.detail)
            self._auth(node, o)
            if node.rerun_pending and o.ssh_ok:
                node.rerun_pending = False
                self._rerun(node)
            if d.action != D.NONE:
                self._tasks[node.name] = asyncio.ensure_future(self._act(node, d))
        self.journal.write("round", None, n=self.rounds, nodes=len(results), ok=sum(o.service_ok for o in results),
                           wall_s=round(self.clock.now() - t0, 3))
        if wait:
            await self.settle()
        return decisions

    def _auth(self, node: Node, o: Observation) -> None:
        """A refused API key: reported once (journal + alert), never a reason to act (service_ok ignores it)."""
        bad = o.auth_failed
        if bad and not node.auth_alerted:
            node.auth_alerted = True
            why = "; ".join(f"{c.target}: {c.detail}" for c in bad) + (
                f" (key: {node.api_key_note})" if node.api_key_note else "")
            self.journal.write("auth", node.name, ok=False, detail=why)
            self._alert(node, "probe-auth", why)
        elif not bad and node.auth_alerted and any(c.kind == "answered" for c in o.checks):
            # only a generation that really went through with the key says so (the rounds between two
            # tiny generations, or under load, send no keyed request at all)
            node.auth_alerted = False
            self.journal.write("auth", node.name, ok=True, detail="the API key is accepted again")

    async def settle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def _act(self, node: Node, d: D.Decision) -> None:
        try:
            if d.action == D.RESTART:
                await self._restart(node)
            elif d.action == D.CYCLE:
                await self._cycle(node, d)
            elif d.action == D.CYCLE_MEMBER:
                await self._cycle_member(node, node.members[d.detail["member"]], d)
            elif d.action == D.ALERT:
                self._alert(node, d.detail.get("alert", "gave-up"), d.reason)
        except Exception as exc:  # noqa: BLE001 - an action failure is journaled, the loop goes on
            self.journal.write("error", node.name, action=d.action, error=f"{type(exc).__name__}: {exc}")
        finally:
            self._tasks.pop(node.name, None)

    def _alert(self, node: Node, event: str, reason: str) -> None:
        if self.dry_run:
            self.journal.write("alert", node.name, alert=event, reason=reason, dry_run=True,
                               would=f"alert via {self.alerter.describe()}")
            return
        res = self.alerter.alert(node.name, event, reason)
        self.journal.write("alert", node.name, alert=event, reason=reason, via=res["via"])

    async def _restart(self, node: Node) -> None:
        what = self.restarter.describe(node.name)
        if self.dry_run:
            self.journal.write("restart", node.name, dry_run=True, would=f"run {what}, then re-check")
            node.state = D.after_restart(node.state, True, self.clock.now(), self.policy)
            return
        self.restart_budget.record(node.name)
        try:
            ok, detail = await asyncio.to_thread(self.restarter.restart, node.name)
        except Exception as exc:  # noqa: BLE001 - a restart that blew up did not help
            ok, detail = False, f"{type(exc).__name__}: {getattr(exc, 'what', exc)}"
        self.journal.write("restart", node.name, ok=ok, sent=what, result=detail,
                           restarts_left=self.restart_budget.left(node.name))
        # the grace (model load) counts from now, when the restart has finished
        node.state = D.after_restart(node.state, ok, self.clock.now(), self.policy)

    async def _cycle(self, node: Node, d: D.Decision) -> None:
        if node.power is None:
            self._alert(node, "no-power-driver", f"{d.reason}; but no power driver for it "
                                                 f"({node.power_error or 'no `power:` in the inventory'})")
            node.state = D.after_cycle(node.state, self.clock.now(), self.policy)
            return
        drv = node.power.driver
        plan = (f"read power state via {drv.describe()}, " + (
            f"the device's own cycle ({drv.native_cycle_s:g} s off)" if drv.native_cycle_s is not None else
            f"off, confirm off, wait {self.policy.off_wait:g} s, on") + ", confirm on, then grace "
            f"{self.policy.grace:g} s" + (f", then `launch up {node.recipe}`" if node.recipe else ""))
        if self.dry_run:
            self.cycles.append(node.name)
            self.journal.write("cycle", node.name, dry_run=True, would=plan, reason=d.reason)
            node.state = D.after_cycle(node.state, self.clock.now(), self.policy, confirmed=False)
            return
        delay = random_delay(self.policy.delay_max, self.rng)
        self.journal.write("delay", node.name, seconds=round(delay, 2), plan=plan)
        await self.clock.asleep(delay)
        if paused(self.pause_file):
            node.state = D.cancel(node.state)
            self.journal.write("decision", node.name, action="none", skipped="paused", would="cycle",
                               reason="paused (pause file appeared during the random delay): not cycling")
            return
        again = await self.prober.probe(node.target)
        if again.service_ok:
            node.state = D.cancel(node.state)
            self.journal.write("decision", node.name, action="none", reason="answered again during the random delay: not cycling")
            return
        if node.name in self._switching:
            node.state = D.cancel(node.state)
            self.journal.write("decision", node.name, action="none", reason="its power is already being switched")
            return
        switched: list[str] = []
        self._switching.add(node.name)
        try:
            res = await asyncio.to_thread(self._reboot, node.power, switched)
        except Exception as exc:  # noqa: BLE001 - PowerError (device unreachable, refused), anything else
            err = getattr(exc, "what", None) or f"{type(exc).__name__}: {exc}"
            fix = getattr(exc, "fix", None)
            if switched:  # something was switched: it counts, and the node may be off now
                self.budget.record(node.name)
                self.cycles.append(node.name)
            self.journal.write("cycle", node.name, reason=d.reason, ok=False, error=err, switched=switched,
                               charged=bool(switched), retry_after_s=self.policy.grace)
            node.state = D.after_cycle_failed(node.state, self.clock.now(), self.policy)
            self._alert(node, "cycle-failed", f"power device error: {err}" + (f" ({fix})" if fix else "") + (
                f"; it did switch {', '.join(switched)}: the node may be OFF" if switched else
                "; nothing was switched (not charged to the budget)") +
                f"; trying again in {self.policy.grace:g} s if it is still wedged")
            return
        finally:
            self._switching.discard(node.name)
        self.budget.record(node.name)
        self.cycles.append(node.name)
        self.journal.write("cycle", node.name, reason=d.reason, **res.to_json())
        node.state = D.after_cycle(node.state, self.clock.now(), self.policy, confirmed=res.ok)
        node.rerun_pending = bool(node.recipe) and res.ok
        if not res.ok:
            self._alert(node, "cycle-failed", res.message)

    async def _cycle_member(self, node: Node, m: Member, d: D.Decision) -> None:
        """Power-cycle the suspect member of node's deployment (node itself answers SSH: left alone).
        The same rules as a node's own cycle: random delay, re-check, the member's budget, verified switch."""
        plan = (f"power-cycle {m.name} via {m.power.driver.describe()} (a member of {node.name}'s deployment; "
                f"{node.name} answers SSH and is left alone), then grace {self.policy.grace:g} s for the deployment")
        if self.dry_run:
            self.cycles.append(m.name)
            self.journal.write("cycle", m.name, dry_run=True, would=plan, reason=d.reason, member_of=node.name)
            node.state = D.after_cycle(node.state, self.clock.now(), self.policy)
            return
        delay = random_delay(self.policy.delay_max, self.rng)
        self.journal.write("delay", m.name, seconds=round(delay, 2), plan=plan, member_of=node.name)
        await self.clock.asleep(delay)
        again = await self.prober.ssh_check("member", m.name, m.host, m.port)
        if paused(self.pause_file) or again.ok or m.name in self._switching:
            node.state = D.cancel(node.state)
            why = ("paused (pause file appeared during the random delay)" if paused(self.pause_file) else
                   f"{m.name} answered SSH again during the random delay" if again.ok else
                   f"{m.name}'s power is already being switched")
            self.journal.write("decision", node.name, action="none", member=m.name, reason=f"{why}: not cycling {m.name}")
            return
        switched: list[str] = []
        self._switching.add(m.name)
        try:
            res = await asyncio.to_thread(self._reboot, m.power, switched)
        except Exception as exc:  # noqa: BLE001 - the device failed: alert, back off
            err = getattr(exc, "what", None) or f"{type(exc).__name__}: {exc}"
            if switched:
                self.budget.record(m.name)
                self.cycles.append(m.name)
            self.journal.write("cycle", m.name, reason=d.reason, ok=False, error=err, switched=switched,
                               charged=bool(switched), member_of=node.name)
            node.state = D.after_cycle_failed(node.state, self.clock.now(), self.policy)
            self._alert(node, "cycle-failed", f"power device of {m.name} (member of {node.name}'s deployment): {err}"
                        + ("" if switched else "; nothing was switched (not charged to the budget)"))
            return
        finally:
            self._switching.discard(m.name)
        self.budget.record(m.name)
        self.cycles.append(m.name)
        self.journal.write("cycle", m.name, reason=d.reason, member_of=node.name, **res.to_json())
        # the deployment lost a member: it reloads (or is restarted) under the start-up grace
        node.state = D.after_cycle(node.state, self.clock.now(), self.policy)
        if not res.ok:
            self._alert(node, "cycle-failed", f"{m.name} (member of {node.name}'s deployment): {res.message}")

    def _reboot(self, power: Power, switched: list[str]):
        """Power.reboot, noting each switch the device accepted (so a failure knows whether anything moved)."""
        drv = power.driver
        sw, cy = drv.switch, drv.cycle
        own = {k: drv.__dict__[k] for k in ("switch", "cycle") if k in drv.__dict__}

        def switch(on):
            sw(on)
            switched.append("on" if on else "off")

        def cycle():
            cy()
            switched.append("native cycle")
        drv.switch, drv.cycle = switch, cycle
        try:
            return power.reboot(off_wait=self.policy.off_wait)
        finally:
            del drv.switch, drv.cycle  # back to what they were
            drv.__dict__.update(own)

    def _rerun(self, node: Node) -> None:
        if self.rerun is not None:
            detail = self.rerun(node.name, node.recipe)
        else:
            import subprocess

            p = subprocess.Popen([sys.executable, "-m", "launcher.cli.main", "up", node.recipe],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
            detail = f"started `launch up {node.recipe}` (pid {p.pid})"
        self.journal.write("rerun", node.name, recipe=node.recipe, detail=detail)

    # -- running ------------------------------------------------------------------------------------
    async def run(self, *, once: bool = False, rounds: int | None = None) -> None:
        self.journal.write("start", None, nodes=sorted(self.nodes), dry_run=self.dry_run,
                           policy=self.policy.__dict__, alert=self.alerter.describe())
        for n in self.nodes.values():
            self.journal.write("watch", n.name, urls=n.target.urls, source=n.source or "given by the caller",
                               ssh=f"{n.target.ssh_host}:{n.target.ssh_port}" if n.target.ssh_host else None,
                               power=n.power.driver.describe() if n.power else None,
                               api_key=n.api_key_note or None,
                               members={m.name: {"ssh": f"{m.host}:{m.port}",
                                                 "power": m.power.driver.describe() if m.power else m.power_error}
                                        for m in n.members.values()} or None,
                               members_source=n.members_source or None,
                               restart=self.restarter.describe(n.name) if self.restarter and self.restarter.can(n.name) else None)
        try:
            n = 0
            while True:
                start = self.clock.now()
                await self.tick(wait=once)
                n += 1
                if once or (rounds is not None and n >= rounds):
                    break
                await self.clock.asleep(max(0.0, self.policy.period - (self.clock.now() - start)))
            await self.settle()
        finally:
            await self.prober.aclose()
