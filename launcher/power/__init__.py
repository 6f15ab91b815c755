"""Power drivers: one small module per device, found by name (`get`), built from an inventory
PowerSpec (`from_spec`), always driven through `Power` (base.py), which verifies every switch."""
from __future__ import annotations

import importlib

from launcher.errors import InputError
from launcher.power.base import OFF, ON, Clock, Driver, FakeClock, Power, PowerError, PowerResult, Unsupported

DRIVERS = {
    "shelly": "launcher.power.shelly:ShellyDriver",
    "tasmota": "launcher.power.tasmota:TasmotaDriver",
    "homeassistant": "launcher.power.homeassistant:HomeAssistantDriver",
    "ipmi": "launcher.power.ipmi:IpmiDriver",
    "redfish": "launcher.power.redfish:RedfishDriver",
    "command": "launcher.power.command:CommandDriver",
}

__all__ = ["DRIVERS", "OFF", "ON", "Clock", "Driver", "FakeClock", "Power", "PowerError", "PowerResult",
           "Unsupported", "from_spec", "get", "names", "power_for"]


def names() -> list[str]:
    return sorted(DRIVERS)


def get(name: str) -> type[Driver]:
    """The driver class for a name; an unknown name lists the valid ones."""
    try:
        module, _, cls = DRIVERS[name].partition(":")
    except KeyError:
        raise InputError(f"unknown power driver {name!r}", fix=f"use one of: {', '.join(names())}") from None
    return getattr(importlib.import_module(module), cls)


def from_spec(spec, *, where: str | None = None, env: dict[str, str] | None = None) -> Driver:
    """A driver from an inventory PowerSpec; its credential is read through launcher.auth."""
    secret = None
    if spec.credentials is not None:
        from launcher.auth import resolve

        secret = resolve(spec.credentials, where=where, env=env, what=f"{spec.driver} power credential")
    cls = get(spec.driver)
    d = spec.driver
    if d == "shelly":
        return cls(spec.address, generation=spec.generation, channel=spec.channel, username=spec.username,
                   password=secret, toggle_after=spec.toggle_after)
    if d == "tasmota":
        return cls(spec.address, channel=spec.channel, username=spec.username, password=secret,
                   toggle_after=spec.toggle_after)
    if d == "homeassistant":
        return cls(spec.address, entity_id=spec.entity_id, token=secret)
    if d == "ipmi":
        return cls(spec.address, username=spec.username, password=secret, cipher=getattr(spec, "cipher", None))
    if d == "redfish":
        return cls(spec.address, username=spec.username, password=secret, system=spec.system,
                   verify=getattr(spec, "verify", True))
    return cls(spec.commands, password=secret, username=spec.username, toggle_after=spec.toggle_after)


def power_for(spec, *, where: str | None = None, clock: Clock | None = None, **kw) -> Power:
    """The verified power routine for an inventory PowerSpec."""
    return Power(from_spec(spec, where=where), clock=clock, **kw)
