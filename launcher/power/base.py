"""The power-driver contract and the one routine that verifies every switch (fence-agents style).

A driver only reads and switches: `state() -> "on" | "off"` (any other string is a transitional or
unknown state, e.g. Redfish "PoweringOn") and `switch(on)`; `cycle()` only where the device does a
cycle by itself (a Shelly's toggle_after, a Tasmota Backlog). `Power` owns the rest, for all of
them: read the state first ("already on" is success), retry a failed request, poll every second up to
~20 s until the state is confirmed, reboot as off → confirm off → wait → on → confirm on, and record
every request sent with credentials shown as `[set]`.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Callable

from launcher.errors import InputError, RuntimeFailure

ON, OFF = "on", "off"


class PowerError(RuntimeFailure):
    """A power device did not answer, refused, or did not reach the state asked for."""


class Unsupported(InputError):
    """The driver declared it cannot do this (with the reason)."""


class Clock:
    """Monotonic time and sleeping; tests pass a fake that advances on sleep()."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        """Wall-clock seconds (for budgets kept across restarts)."""
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(max(0.0, seconds))


class FakeClock(Clock):
    """Time that moves only when someone sleeps (tests, dry runs)."""

    def __init__(self, start: float = 1000.0):
        self.t = float(start)
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += max(0.0, seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


class Driver(ABC):
    """One device. Subclasses set `name`, implement state() and switch(); cycle() only if native."""

    name = ""
    #: capability -> reason, for what this device cannot do ("state", "cycle", ...)
    unsupported: dict[str, str] = {}

    def __init__(self, *, secrets: list[str] | None = None, users: list[str | None] | None = None):
        from launcher.auth import register_secret, secret_forms

        # Every form the secret can take on the wire or in a message: raw, URL-encoded, JSON-escaped,
        # and base64 `user:secret` (HTTP basic auth) for the users given. Registered globally too, so
        # the journal, the console and log lines mask them as well.
        self._secrets: list[str] = []
        for s in secrets or []:
            if s:
                register_secret(s, users or ())
                self._secrets.extend(sorted(secret_forms(s, users or ()) | {s}, key=len, reverse=True))
        self.sent: list[str] = []
        self.unsupported = dict(type(self).unsupported)

    # -- what a driver implements ------------------------------------------------------------
    @abstractmethod
    def state(self) -> str:
        """"on" or "off" (other strings: transitional/unknown). Raises PowerError on no answer."""

    @abstractmethod
    def switch(self, on: bool) -> None:
        """Ask the device to switch; returns when the request was accepted (not confirmed)."""

    def cycle(self) -> None:
        """A native off-then-on done by the device itself (only drivers that have one)."""
        raise Unsupported(f"{self.name}: no native power cycle", fix="the watchdog uses off → on instead")

    #: seconds a native cycle keeps the power off (None: the driver has no native cycle)
    native_cycle_s: float | None = None

    def describe(self) -> str:
        return self.name

    # -- helpers for drivers ----------------------------------------------------------------
    def mask(self, text: str) -> str:
        """Text with this driver's secret (every form) and any credential-looking URL part masked."""
        from launcher.logredact import scrub

        return scrub(text, self._secrets)

    def record(self, text: str) -> str:
        """Note a request sent (credentials masked); returns the masked text."""
        masked = self.mask(text)
        self.sent.append(masked)
        return masked

    def supports(self, capability: str) -> bool:
        return capability not in self.unsupported


@dataclass
class PowerResult:
    ok: bool
    action: str  # status | on | off | reboot
    before: str | None = None
    after: str | None = None
    confirmed: bool = False
    off_confirmed: bool = False  # reboot: success means off was seen
    native: bool = False
    sent: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    message: str = ""

    def to_json(self) -> dict:
        return asdict(self)


class Power:
    """The shared verification routine around a driver."""

    def __init__(self, driver: Driver, *, clock: Clock | None = None, poll: float = 1.0,
                 confirm_timeout: float = 20.0, retries: int = 3, retry_wait: float = 2.0,
                 off_wait: float = 5.0, log: Callable[[str], None] | None = None):
        self.driver = driver
        self.clock = clock or Clock()
        self.poll = poll
        self.confirm_timeout = confirm_timeout
        self.retries = retries
        self.retry_wait = retry_wait
        self.off_wait = off_wait
        self.log = log or (lambda _msg: None)

    # -- pieces -----------------------------------------------------------------------------
    def _try(self, what: str, fn: Callable[[], object]):
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except Unsupported:
                raise
            except Exception as exc:  # noqa: BLE001 - any device failure is retried, then reported
                last = exc
                self.log(f"{self.driver.describe()}: {what} failed ({self.driver.mask(str(exc))}); "
                         f"attempt {attempt + 1}/{self.retries + 1}")
                if attempt < self.retries:
                    self.clock.sleep(self.retry_wait)
        msg = self.driver.mask(str(last))
        raise PowerError(f"{self.driver.describe()}: {what} failed after {self.retries + 1} attempts: {msg}",
                         fix="check the device's address, credentials and network")

    def status(self) -> str:
        if not self.driver.supports("state"):
            raise Unsupported(f"{self.driver.describe()} cannot report its state: {self.driver.unsupported['state']}")
        return str(self._try("reading the power state", self.driver.state))

    def _read_quiet(self) -> str | None:
        try:
            return str(self.driver.state())
        except Exception:  # noqa: BLE001 - while polling, a missed answer is just another poll
            return None

    def wait_for(self, want: str, timeout: float | None = None) -> tuple[bool, str | None]:
        """Poll every `poll` s until the state is `want` or timeout passes. (confirmed, last seen)."""
        deadline = self.clock.now() + (self.confirm_timeout if timeout is None else timeout)
        seen = None
        while True:
            seen = self._read_quiet()
            if seen == want:
                return True, seen
            if self.clock.now() >= deadline:
                return False, seen
            self.clock.sleep(self.poll)

    def _set(self, on: bool, action: str) -> PowerResult:
        start, mark = self.clock.now(), len(self.driver.sent)
        want = ON if on else OFF
        before = self.status()
        if before == want:
            return PowerResult(True, action, before, before, True, sent=self.driver.sent[mark:],
                               message=f"already {want}")
        self._try(f"switching {want}", lambda: self.driver.switch(on))
        ok, seen = self.wait_for(want)
        msg = f"confirmed {want}" if ok else f"asked for {want}, still {seen or 'no answer'} after {self.confirm_timeout:g} s"
        return PowerResult(ok, action, before, seen, ok, sent=self.driver.sent[mark:],
                           elapsed=self.clock.now() - start, message=msg)

    def on(self) -> PowerResult:
        return self._set(True, "on")

    def off(self) -> PowerResult:
        return self._set(False, "off")

    # -- the reboot ---------------------------------------------------------------------------
    def reboot(self, *, off_wait: float | None = None, native: bool | None = None) -> PowerResult:
        """Off → confirm off → wait → on → confirm on. With a native timed cycle (toggle_after,
        Backlog) the device switches itself back on even if we die half-way; we still confirm both."""
        wait = self.off_wait if off_wait is None else off_wait
        start, mark = self.clock.now(), len(self.driver.sent)
        use_native = self.driver.native_cycle_s is not None if native is None else native
        if use_native and self.driver.native_cycle_s is None:
            raise Unsupported(f"{self.driver.describe()}: no native power cycle",
                              fix=self.driver.unsupported.get("cycle", "use off → on"))
        before = self.status()

        def result(ok, after, msg, off_seen, nat=False):
            return PowerResult(ok, "reboot", before, after, ok, off_seen, nat, self.driver.sent[mark:],
                               self.clock.now() - start, msg)

        if before == OFF:
            # Nothing to turn off: success is the node coming on (a wedged node that powered itself off).
            self._try("switching on", lambda: self.driver.switch(True))
            ok, seen = self.wait_for(ON)
            return result(ok, seen, "was off; " + ("confirmed on" if ok else f"still {seen} after switching on"), True)
        if use_native:
            self._try("starting the device's own power cycle", self.driver.cycle)
            off_seen, seen = self.wait_for(OFF, timeout=min(self.confirm_timeout, self.driver.native_cycle_s))
            if not off_seen:
                return result(False, seen, "the device's own cycle was sent but off was never seen "
                                           f"(poll every {self.poll:g} s)", False, True)
            ok, seen = self.wait_for(ON, timeout=self.driver.native_cycle_s + self.confirm_timeout)
            if not ok:  # the device did not switch back by itself: do it
                self._try("switching on", lambda: self.driver.switch(True))
                ok, seen = self.wait_for(ON)
            return result(ok, seen, "confirmed off, then on" if ok else f"confirmed off but still {seen}", True, True)
        self._try("switching off", lambda: self.driver.switch(False))
        off_seen, seen = self.wait_for(OFF)
        if not off_seen:
            return result(False, seen, f"asked for off, still {seen or 'no answer'} after {self.confirm_timeout:g} s", False)
        self.clock.sleep(wait)
        self._try("switching on", lambda: self.driver.switch(True))
        ok, seen = self.wait_for(ON)
        msg = "confirmed off, then on" if ok else (
            f"confirmed off but still {seen or 'no answer'} {self.confirm_timeout:g} s after switching on: "
            "the node may not power on by itself when AC returns; check it by hand")
        return result(ok, seen, msg, True)
