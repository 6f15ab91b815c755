"""The decision state machine, pure: (state, observation, now, facts) -> (new state, decision).

A node is wedged when its service failed `failures` consecutive probes after the start-up grace,
AND the host could not fix it (SSH unreachable, or a restart of the server did not help), AND the
watchdog can reach its reference (an isolated watchdog cycles nobody). Then, within budget, cycle;
out of budget, alert once and give up until the node recovers or a human steps in.

phases: grace (boot + model load) → healthy ⇄ failing → restarted (restart grace) → cycling → grace …
        gave_up (alert sent; nothing more until it recovers)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

NONE, RESTART, CYCLE, ALERT = "none", "restart", "cycle", "alert"


@dataclass(frozen=True)
class Policy:
    period: float = 10.0
    timeout: float = 10.0
    failures: int = 3
    grace: float = 1200.0          # after start and after every power cycle
    restart_grace: float = 120.0   # after a server restart, before judging again
    max_cycles: int = 3            # per node per window
    window: float = 6 * 3600.0
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

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Facts:
    """What the loop knows beyond the probe: can it restart, can it reach out, may it act."""

    can_restart: bool = False
    reference_ok: bool | None = None  # None: nothing to check against
    paused: bool = False
    budget_left: int = 3


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str
    phase: str
    fails: int
    detail: dict = field(default_factory=dict)


def start(now: float, policy: Policy) -> NodeState:
    return NodeState("grace", now + policy.grace)


def decide(st: NodeState, service_ok: bool, ssh_ok: bool | None, now: float, policy: Policy,
           facts: Facts, reason: str = "") -> tuple[NodeState, Decision]:
    def out(new: NodeState, action: str, why: str) -> tuple[NodeState, Decision]:
        return new, Decision(action, why, new.phase, new.fails)

    if service_ok:
        if st.phase in ("grace", "restarted", "gave_up", "failing"):
            was = {"grace": "came up", "restarted": "the restart fixed it", "gave_up": "recovered after giving up",
                   "failing": f"recovered after {st.fails} failed probe(s)"}[st.phase]
            return out(NodeState("healthy"), NONE, was)
        return out(replace(st, phase="healthy", fails=0, restarted=False, last_reason=""), NONE, "healthy")

    if st.phase in ("grace", "restarted") and now < st.grace_until:
        what = "start-up" if st.phase == "grace" else "restart"
        return out(replace(st, last_reason=reason), NONE,
                   f"inside the {what} grace ({st.grace_until - now:.0f} s left): failure ignored: {reason}")
    if st.phase == "gave_up":
        return out(replace(st, last_reason=reason), NONE, f"gave up earlier (alert sent); waiting for a human: {reason}")

    fails = st.fails + 1
    phase = st.phase if st.phase == "restarted" else "failing"
    st = replace(st, fails=fails, phase=phase, last_reason=reason)
    if fails < policy.failures:
        return out(st, NONE, f"failure {fails}/{policy.failures}: {reason}")

    if ssh_ok is not False and facts.can_restart and not st.restarted:
        return out(replace(st, phase="restarted", restarted=True, fails=0, grace_until=now + policy.restart_grace),
                   RESTART, f"{fails} consecutive failures ({reason}); SSH answers: restarting the server first")
    if ssh_ok is False:
        why = f"{fails} consecutive failures ({reason}) and SSH does not answer"
    elif st.restarted:
        why = f"{fails} consecutive failures ({reason}) after restarting the server: the restart did not help"
    else:
        why = f"{fails} consecutive failures ({reason}); no way to restart the server over SSH"
    if facts.reference_ok is None:
        return out(st, NONE, f"{why}; but no reference to check my own network (set `reference:`): cycling nobody")
    if not facts.reference_ok:
        return out(st, NONE, f"{why}; but I cannot reach my reference myself: I may be the one cut off, cycling nobody")
    if facts.paused:
        return out(st, NONE, f"{why}; paused (pause file present): not cycling")
    if facts.budget_left <= 0:
        return out(replace(st, phase="gave_up"), ALERT,
                   f"{why}; power-cycle budget spent: giving up and alerting instead of cycling again")
    return out(replace(st, phase="cycling"), CYCLE, f"wedged: {why}")


def after_restart(st: NodeState, ok: bool, now: float, policy: Policy) -> NodeState:
    """A restart that could not even be done counts as "did not help" at the next failure."""
    if ok:
        return st
    return replace(st, phase="failing", fails=max(0, policy.failures - 1), grace_until=now)


def after_cycle(st: NodeState, now: float, policy: Policy) -> NodeState:
    """Whatever the outcome, the node gets the start-up grace again (the budget bounds retries)."""
    return NodeState("grace", now + policy.grace)


def cancel(st: NodeState) -> NodeState:
    """The node answered during the random delay: back to failing below the threshold."""
    return replace(st, phase="failing", fails=0)
