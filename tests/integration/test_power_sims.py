"""Power drivers against the simulated devices on 127.0.0.1 (real HTTP, real timers).

The simulators stand for the devices' HTTP APIs (../shared/reference/watchdog.md); a node's vLLM
simulator is stopped while its plug is off and started again (same port) when it comes back on.
"""
from __future__ import annotations

import threading
import time

import httpx
import pytest

from launcher.power import Power, PowerError, Unsupported, from_spec
from launcher.power.homeassistant import HomeAssistantDriver
from launcher.power.redfish import RedfishDriver
from launcher.power.shelly import ShellyDriver
from launcher.power.tasmota import TasmotaDriver
from launcher.sim.plug import make
from launcher.sim.redfish import RedfishSim
from launcher.spec.inventory import PowerSpec

FAST = dict(poll=0.05, confirm_timeout=5, retries=1, retry_wait=0.05)


def drivers():
    return {
        "shelly": (dict(), lambda u: ShellyDriver(u)),
        "shelly-gen1": (dict(), lambda u: ShellyDriver(u, generation=1)),
        "tasmota": (dict(password="tas-secret-1"), lambda u: TasmotaDriver(u, password="tas-secret-1")),
        "homeassistant": (dict(token="ha-token-123"), lambda u: HomeAssistantDriver(u, entity_id="switch.node1", token="ha-token-123")),
        "redfish": (dict(password="bmc-secret-1"), lambda u: RedfishDriver(u, password="bmc-secret-1")),
    }


@pytest.mark.parametrize("kind", list(drivers()))
def test_reboot_off_confirm_on_confirm(kind):
    kw, mk = drivers()[kind]
    changes = []
    with make(kind, on_change=changes.append, **kw) as dev:
        res = Power(mk(dev.url), off_wait=0.1, **FAST).reboot()
        deadline = time.time() + 5
        while len(changes) < 2 and time.time() < deadline:
            time.sleep(0.02)
        assert res.ok and res.off_confirmed and res.before == "on" and res.after == "on"
        assert dev.on and changes == [False, True]
        for secret in ("tas-secret-1", "ha-token-123", "bmc-secret-1"):
            assert all(secret not in s for s in res.sent)
        assert dev.requests, "the device recorded nothing"


@pytest.mark.parametrize("kind", list(drivers()))
def test_already_on_is_success_and_sends_no_switch(kind):
    kw, mk = drivers()[kind]
    with make(kind, **kw) as dev:
        res = Power(mk(dev.url), **FAST).on()
        assert res.ok and res.message == "already on" and dev.changes == []


def test_shelly_gen2_toggle_after_plug_finishes_the_cycle():
    with make("shelly") as dev:
        drv = ShellyDriver(dev.url, toggle_after=3)  # room to see "off" on a loaded machine
        res = Power(drv, **FAST).reboot()
        assert res.ok and res.native and res.off_confirmed
        body = [r["body"] for r in dev.requests if r["method"] == "POST"]
        assert body == [{"id": 1, "method": "Switch.Set", "params": {"id": 0, "on": False, "toggle_after": 3}}]


def test_tasmota_backlog_cycle_and_password_masked():
    with make("tasmota", password="tas-secret-1") as dev:
        drv = TasmotaDriver(dev.url, password="tas-secret-1", toggle_after=3)  # room to see "off"
        res = Power(drv, **FAST).reboot()
        assert res.ok and res.native
        raw = [r["raw_path"] for r in dev.requests]
        assert "/cm?user=admin&password=tas-secret-1&cmnd=Backlog%20Power%20Off%3BDelay%2030%3BPower%20On" in raw
        assert any("password=[set]" in s for s in res.sent)


def test_tasmota_wrong_password_is_a_clear_error():
    with make("tasmota", password="right-pass") as dev:
        with pytest.raises(PowerError) as e:
            Power(TasmotaDriver(dev.url, password="wrong-pass"), **FAST).status()
        assert "401" in e.value.what and "wrong-pass" not in e.value.render()


def test_redfish_chooses_from_allowable_values():
    with RedfishSim(allowable=["GracefulShutdown", "PushPowerButton", "On"], transition_s=0.2) as dev:
        res = Power(RedfishDriver(dev.url), off_wait=0.05, **FAST).reboot()
        assert res.ok and dev.resets == ["GracefulShutdown", "On"]
    with RedfishSim(allowable=["PowerCycle"]) as dev:
        with pytest.raises(Unsupported) as e:
            Power(RedfishDriver(dev.url), **FAST).off()
        assert "PowerCycle" in e.value.what


def test_redfish_two_systems_needs_a_name():
    with RedfishSim(systems=2) as dev:
        with pytest.raises(Unsupported) as e:
            Power(RedfishDriver(dev.url), **FAST).status()
        assert "power.system" in e.value.fix
        assert Power(RedfishDriver(dev.url, system="/redfish/v1/Systems/2"), **FAST).status() == "on"


def test_from_spec_reads_credentials_through_keysources(monkeypatch):
    monkeypatch.setenv("HA_TOKEN_T", "ha-token-xyz")
    with make("homeassistant", token="ha-token-xyz", entity_id="switch.spark_1") as dev:
        spec = PowerSpec(driver="homeassistant", address=dev.url, entity_id="switch.spark_1",
                         credentials={"env": "HA_TOKEN_T"})
        assert Power(from_spec(spec), **FAST).off().ok and dev.on is False


def test_node_simulator_stops_while_off_and_restarts_when_on():
    from launcher.sim import SimConfig, VllmSim

    box = {"sim": VllmSim(SimConfig(quiet=True)).start()}
    port = box["sim"].port
    lock = threading.Lock()

    def on_change(on):
        with lock:
            if on:
                box["sim"] = VllmSim(SimConfig(quiet=True, port=port)).start()
            else:
                box["sim"].stop()

    try:
        with make("shelly", on_change=on_change) as dev:
            p = Power(ShellyDriver(dev.url), **FAST)
            assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
            assert p.off().ok
            deadline = time.time() + 5
            refused = False
            while time.time() < deadline and not refused:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5)
                    time.sleep(0.05)
                except httpx.TransportError:
                    refused = True
            assert refused, "the node's server still answered while its plug was off"
            assert p.on().ok
            deadline = time.time() + 10
            code = None
            while time.time() < deadline and code != 200:
                try:
                    code = httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code
                except httpx.TransportError:
                    time.sleep(0.05)
            assert code == 200
    finally:
        box["sim"].stop()
