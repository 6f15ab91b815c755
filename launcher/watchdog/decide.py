"""The decision state machine, pure: (state, observation, now, facts) -> (new state, decision).

A node is wedged when its service failed `failures` consecutive probes after the start-up grace,
AND the host could not fix it (SSH unreachable, or a restart of the server did not help), AND the
watchdog can reach its reference (an isolated watchdog cycles nobody). Then, within budget, cycle;
out of budget, alert once and give up until the node recovers or a human steps in.

phases: grace (boot + model load) → healthy ⇄ failing → restarting (the restart runs) → restarted (the
        full start-up grace again, counted from when the restart finished, ended by the first healthy
        probe) → cycling → grace (after a confirmed cycle: the node must answer SSH or its service
        within it, else "did-not-come-back") …
        backoff (the power device failed: wait the grace before trying again)
        gave_up (alert sent; nothing more until it recovers)
The pause file stops every action (restart, cycle, alert): the decision says skipped="paused".
Restarts have their own budget (max_restarts per restart_window): spent, the node is given up on.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

NONE, RESTART, CYCLE, ALERT = "none", "restart", "cycle", "alert"
CYCLE_MEMBER = "cycle-member"  # power-cycle another host of this node's deployment (the suspect), not this one


@dataclass(frozen=True)
class Policy:
    period: float = 10.0
    timeout: float = 10.0
    failures: int = 3
    grace: float = 1200.0          # after start and after every power cycle
    restart_grace: float = 120.0   # after a server restart: at least this, and at least `grace` (the model loads)
    max_cycles: int = 3            # per node per window
    window: float = 6 * 3600.0
    max_restarts: int = 3          # server restarts per node per restart_window, then alert and give up
    restart_window: float = 6 * 3600.0
    delay_max: float = 30.0        # random delay before acting (two watchdogs do not fight)
    off_wait: float = 10.0         # seconds off between off and on
    stall: float = 600.0           # no /metrics movement at all with requests running this long: a failure


@dataclass(frozen=True)
class NodeState:
    phase: str = "grace"
    grace_until: float = 0.0
    fails: int = 0
    restarted: bool = False
    last_reason: str = ""
    cycled: bool = False  # a confirmed power cycle, and the node has not answered (SSH or service) since

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Facts:
    """What the loop knows beyond the probe: can it restart, can it reach out, may it act."""

    can_restart: bool = False
    reference_ok: bool | None = None  # None: nothing to check against
    paused: bool = False
    budget_left: int = 3
    restarts_left: int = 3
    # A multi-host deployment: the first member host whose SSH does not answer (the suspect), whether
    # it has a power driver, and its own power-cycle budget.
    suspect: str | None = None
    suspect_power: bool = False
    suspect_budget_left: int = 0


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str
    phase: str
    fails: int
    detail: dict = field(default_factory=dict)


def start(now: float, policy: Policy) -> NodeState:
    return NodeState("grace", now + policy.grace)


INF = float("inf")
WAITING = ("grace", "restarted", "backoff")  # failures ignored until grace_until


def decide(st: NodeState, service_ok: bool, ssh_ok: bool | None, now: float, policy: Policy,
           facts: Facts, reason: str = "") -> tuple[NodeState, Decision]:
    def out(new: NodeState, action: str, why: str, **detail) -> tuple[NodeState, Decision]:
        return new, Decision(action, why, new.phase, new.fails, detail)

    if service_ok:
        if st.phase in ("grace", "restarting", "restarted", "backoff", "gave_up", "failing"):
            was = {"grace": "came up", "restarting": "the restart fixed it", "restarted": "the restart fixed it",
                   "backoff": "answers again (after the power device failed)",
                   "gave_up": "recovered after giving up",
                   "failing": f"recovered after {st.fails} failed probe(s)"}[st.phase]
            return out(NodeState("healthy"), NONE, was)
        return out(replace(st, phase="healthy", fails=0, restarted=False, last_reason="", cycled=False), NONE, "healthy")

    if st.phase == "restarting":  # the restart is still running (not probed then; a stray answer waits)
        return out(replace(st, last_reason=reason), NONE, f"restart in progress: {reason}")
    if st.cycled and ssh_ok:  # it came back after the power cycle (SSH answers): judged normally from now on
        st = replace(st, cycled=False)
    if st.phase in WAITING and now < st.grace_until:
        what = {"grace": "start-up", "restarted": "post-restart start-up", "backoff": "power-device back-off"}[st.phase]
        return out(replace(st, last_reason=reason), NONE,
                   f"inside the {what} grace ({st.grace_until - now:.0f} s left): failure ignored: {reason}")
    if st.phase == "gave_up":
        return out(replace(st, last_reason=reason), NONE, f"gave up earlier (alert sent); waiting for a human: {reason}")
    if st.cycled:  # the grace after a confirmed cycle ran out and nothing answered since
        why = (f"did not come back (power on confirmed): no SSH or service answer in the {policy.grace:g} s "
               f"after the power cycle ({reason})")
        if facts.paused:
            return out(replace(st, last_reason=reason), NONE, f"{why}; paused (pause file present): not alerting",
                       skipped="paused", would="alert")
        return out(replace(st, phase="gave_up", cycled=False, last_reason=reason), ALERT,
                   f"{why}: check the node by hand (it may not power on by itself when AC returns)",
                   alert="did-not-come-back")

    fails = st.fails + 1
    phase = st.phase if st.phase == "restarted" else "failing"
    st = replace(st, fails=fails, phase=phase, last_reason=reason)
    if fails < policy.failures:
        return out(st, NONE, f"failure {fails}/{policy.failures}: {reason}")

    if facts.suspect and ssh_ok is not False:
        # this host answers; a member of its deployment does not: the member is the suspect. Never restart
        # or cycle a reachable head because of its worker.
        m = facts.suspect
        why = (f"{fails} consecutive failures ({reason}); this host answers SSH but {m}, a member of its "
               f"deployment, does not: {m} is the suspect")
        if facts.paused:
            return out(st, NONE, f"{why}; paused (pause file present): not cycling {m}", skipped="paused",
                       would="cycle-member", member=m)
        if not facts.reference_ok:
            return out(st, NONE, f"{why}; but I cannot check my own network (no reachable reference): "
                                 "cycling nobody", member=m)
        if not facts.suspect_power:
            return out(replace(st, phase="gave_up"), ALERT, f"{why}; {m} has no power control: alerting, "
                       "not touching this host (needs a human)", alert="member-unreachable", member=m)
        if facts.suspect_budget_left <= 0:
            return out(replace(st, phase="gave_up"), ALERT, f"{why}; {m}'s power-cycle budget is spent: "
                       "giving up and alerting", alert="gave-up", member=m)
        return out(replace(st, phase="cycling"), CYCLE_MEMBER, f"wedged member: {why}: power-cycling {m}", member=m)

    if ssh_ok is not False and facts.can_restart and not st.restarted:
        why = f"{fails} consecutive failures ({reason}); SSH answers"
        if facts.paused:
            return out(st, NONE, f"{why}; paused (pause file present): not restarting", skipped="paused", would="restart")
        if facts.restarts_left <= 0:
            return out(replace(st, phase="gave_up"), ALERT,
                       f"{why}; restart budget spent ({policy.max_restarts} per {policy.restart_window:g} s): "
                       "giving up and alerting instead of restarting again (needs a human)", alert="gave-up")
        return out(replace(st, phase="restarting", restarted=True, fails=0, grace_until=INF),
                   RESTART, f"{why}: restarting the server first")
    if ssh_ok is False:
        why = f"{fails} consecutive failures ({reason}) and SSH does not answer"
    elif st.restarted:
        why = f"{fails} consecutive failures ({reason}) after restarting the server: the restart did not help"
    else:
        why = f"{fails} consecutive failures ({reason}); no way to restart the server over SSH"
    if facts.paused:
        return out(st, NONE, f"{why}; paused (pause file present): not cycling", skipped="paused", would="cycle")
    if facts.reference_ok is None:
        return out(st, NONE, f"{why}; but no reference to check my own network (set `reference:`): cycling nobody")
    if not facts.reference_ok:
        return out(st, NONE, f"{why}; but I cannot reach my reference myself: I may be the one cut off, cycling nobody")
    if facts.budget_left <= 0:
        return out(replace(st, phase="gave_up"), ALERT,
                   f"{why}; power-cycle budget spent: giving up and alerting instead of cycling again", alert="gave-up")
    return out(replace(st, phase="cycling"), CYCLE, f"wedged: {why}")


def after_restart(st: NodeState, ok: bool, now: float, policy: Policy) -> NodeState:
    """A restart that ran: the model loads again, so the node gets the full start-up grace counted from
    now (when the restart finished), ended early by the first healthy probe. A restart that could not
    even be done counts as "did not help" at the next failure."""
    if ok:
        return replace(st, phase="restarted", restarted=True, fails=0,
                       grace_until=now + max(policy.grace, policy.restart_grace))
    return replace(st, phase="failing", restarted=True, fails=max(0, policy.failures - 1), grace_until=now)


def after_cycle(st: NodeState, now: float, policy: Policy, confirmed: bool = False) -> NodeState:
    """Whatever the outcome, the node gets the start-up grace again (the budget bounds retries). After a
    confirmed cycle it must answer (SSH or service) within that grace, else: did-not-come-back."""
    return NodeState("grace", now + policy.grace, cycled=confirmed)


def after_cycle_failed(st: NodeState, now: float, policy: Policy) -> NodeState:
    """The power device could not be driven (unreachable plug/BMC): back off for the grace, then retry the
    cycle. A restart already tried stays tried: the back-off ends in the cycle, not in another restart."""
    return replace(st, phase="backoff", grace_until=now + policy.grace, fails=0, cycled=False)


def cancel(st: NodeState) -> NodeState:
    """The node answered during the random delay: back to failing below the threshold."""
    return replace(st, phase="failing", fails=0)
