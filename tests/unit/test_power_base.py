"""The shared verification routine (power/base.py) with a fake clock and a scripted device."""
from __future__ import annotations

import pytest

from launcher.errors import InputError
from launcher.power import FakeClock, Power, PowerError, get, names
from launcher.power.base import Driver, Unsupported
from launcher.power.command import CommandDriver
from launcher.power.ipmi import IpmiDriver


class Dev(Driver):
    """A device that takes `lag` state reads to reach the asked state, or never (lag=None)."""

    name = "dev"

    def __init__(self, on=True, lag=0, fail_switch=0, secret=None):
        super().__init__(secrets=[secret] if secret else [])
        self.on, self.lag, self.fail_switch = on, lag, fail_switch
        self.pending = None
        self.reads = 0
        self.switches = []

    def state(self):
        self.reads += 1
        if self.pending is not None and self.lag is not None:
            if self.lag <= 0:
                self.on, self.pending = self.pending, None
            else:
                self.lag -= 1
        return "on" if self.on else "off"

    def switch(self, on):
        self.record(f"switch {on} password=hunter2-secret")
        if self.fail_switch:
            self.fail_switch -= 1
            raise OSError("connection reset")
        self.switches.append(on)
        self.pending = on


def test_already_on_is_success_without_switching():
    d = Dev(on=True)
    r = Power(d, clock=FakeClock()).on()
    assert r.ok and r.message == "already on" and d.switches == []


def test_polls_every_second_until_confirmed():
    clock = FakeClock()
    d = Dev(on=True, lag=3)
    r = Power(d, clock=clock).off()
    assert r.ok and r.after == "off" and clock.slept == [1.0, 1.0, 1.0]


def test_unconfirmed_after_about_20_seconds():
    clock = FakeClock()
    d = Dev(on=True, lag=None)
    r = Power(d, clock=clock).off()
    assert not r.ok and "still on after 20 s" in r.message
    assert 19 <= sum(clock.slept) <= 21


def test_retries_then_reports_with_masked_secret():
    clock = FakeClock()
    d = Dev(on=True, fail_switch=2, secret="hunter2-secret")
    r = Power(d, clock=clock, retries=3, retry_wait=2).off()
    assert r.ok and d.switches == [False] and clock.slept[:2] == [2, 2]
    assert all("hunter2-secret" not in s and "[set]" in s for s in r.sent)
    d2 = Dev(on=True, fail_switch=9, secret="hunter2-secret")
    with pytest.raises(PowerError) as e:
        Power(d2, clock=FakeClock(), retries=1).off()
    assert "after 2 attempts" in e.value.what


def test_reboot_is_off_confirm_wait_on_confirm():
    clock = FakeClock()
    d = Dev(on=True, lag=1)
    r = Power(d, clock=clock, off_wait=7).reboot()
    assert r.ok and r.off_confirmed and d.switches == [False, True] and 7 in clock.slept


def test_reboot_stops_when_off_is_not_confirmed():
    d = Dev(on=True, lag=None)
    r = Power(d, clock=FakeClock()).reboot()
    assert not r.ok and not r.off_confirmed and d.switches == [False]  # never switched on blindly


def test_reboot_of_an_off_node_switches_it_on():
    d = Dev(on=False)
    r = Power(d, clock=FakeClock()).reboot()
    assert r.ok and d.switches == [True] and "was off" in r.message


def test_node_that_does_not_come_back_is_reported():
    class NoOn(Dev):
        def switch(self, on):
            super().switch(on)
            if on:
                self.lag = None
    d = NoOn(on=True)
    r = Power(d, clock=FakeClock()).reboot()
    assert not r.ok and r.off_confirmed and "check it by hand" in r.message


def test_native_cycle_needs_declared_support():
    with pytest.raises(Unsupported):
        Power(Dev(), clock=FakeClock()).reboot(native=True)


def test_registry_lists_valid_names():
    assert names() == ["command", "homeassistant", "ipmi", "redfish", "shelly", "tasmota"]
    with pytest.raises(InputError) as e:
        get("kasa")
    assert "command, homeassistant, ipmi, redfish, shelly, tasmota" in e.value.fix


def test_ipmi_argv_and_status_parsing_password_only_in_env():
    calls = []

    def runner(argv, env, timeout):
        calls.append((argv, env.get("IPMI_PASSWORD")))
        return 0, "Chassis Power is off\n", ""
    d = IpmiDriver("bmc.example:6230", username="root", password="pw-abc-123", runner=runner)
    assert d.state() == "off"
    argv, pw = calls[0]
    assert argv == ["ipmitool", "-I", "lanplus", "-H", "bmc.example", "-p", "6230", "-U", "root", "-E",
                    "chassis", "power", "status"]
    assert pw == "pw-abc-123" and "pw-abc-123" not in " ".join(argv)
    assert d.sent == ["IPMI_PASSWORD=[set] " + " ".join(argv)]


def test_command_driver(tmp_path):
    f = tmp_path / "p"
    f.write_text("on")
    d = CommandDriver({"state": f"cat {f}", "on": f"echo on > {f}", "off": f"echo off > {f}"})
    assert "cycle" in d.unsupported
    r = Power(d, clock=FakeClock(), off_wait=0).reboot()
    assert r.ok and f.read_text().strip() == "on" and len(r.sent) >= 4
