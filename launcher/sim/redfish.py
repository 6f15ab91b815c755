"""A simulated Redfish BMC: service root, /Systems collection, one or more systems with PowerState and
the #ComputerSystem.Reset action limited to `allowable` ResetTypes (../shared/reference/watchdog.md).
Stands for a real BMC's Redfish API (DMTF schema, the subset the driver uses). HTTP basic auth when
a password is set. `transition_s` > 0 shows PoweringOn/PoweringOff for that long, like a real BMC.
"""
from __future__ import annotations

from launcher.sim.plug import PowerDevice, basic_ok

DEFAULT_ALLOWABLE = ("On", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle", "PushPowerButton")


class RedfishSim(PowerDevice):
    kind = "redfish"
    www_authenticate = 'Basic realm="redfish"'

    def __init__(self, *, systems: int = 1, allowable: tuple[str, ...] | list[str] | None = DEFAULT_ALLOWABLE,
                 username: str = "root", password: str | None = None, transition_s: float = 0.0,
                 cycle_off_s: float = 1.0, **kw):
        super().__init__(**kw)
        self.n_systems = systems
        self.allowable = list(allowable) if allowable else None
        self.username, self.password = username, password
        self.transition_s = transition_s
        self.cycle_off_s = cycle_off_s
        self.transition: str | None = None
        self.resets: list[str] = []

    def _power_state(self) -> str:
        if self.transition:
            return self.transition
        return "On" if self.on else "Off"

    def _go(self, on: bool) -> None:
        if self.transition_s > 0 and on != self.on:
            self.transition = "PoweringOn" if on else "PoweringOff"

            def done():
                self.transition = None
                self.set_power(on)
            self.later(self.transition_s, done)
        else:
            self.set_power(on)

    def _system(self, sid: str) -> dict:
        path = f"/redfish/v1/Systems/{sid}"
        action = {"target": f"{path}/Actions/ComputerSystem.Reset"}
        if self.allowable is not None:
            action["ResetType@Redfish.AllowableValues"] = self.allowable
        return {"@odata.id": path, "@odata.type": "#ComputerSystem.v1_20_0.ComputerSystem", "Id": sid,
                "Name": f"Simulated system {sid}", "PowerState": self._power_state(),
                "Actions": {"#ComputerSystem.Reset": action}}

    def handle(self, method, path, query, body, headers):
        if not basic_ok(headers, self.username, self.password):
            return 401, {"error": {"code": "Base.1.0.GeneralError", "message": "Unauthorized"}}
        path = path.rstrip("/")
        ids = [str(i + 1) for i in range(self.n_systems)]
        if path == "/redfish/v1" and method == "GET":
            return 200, {"@odata.id": "/redfish/v1", "RedfishVersion": "1.17.0",
                         "Systems": {"@odata.id": "/redfish/v1/Systems"}}
        if path == "/redfish/v1/Systems" and method == "GET":
            return 200, {"@odata.id": "/redfish/v1/Systems", "Members@odata.count": len(ids),
                         "Members": [{"@odata.id": f"/redfish/v1/Systems/{i}"} for i in ids]}
        for sid in ids:
            base = f"/redfish/v1/Systems/{sid}"
            if path == base and method == "GET":
                return 200, self._system(sid)
            if path == f"{base}/Actions/ComputerSystem.Reset" and method == "POST":
                rtype = (body or {}).get("ResetType") if isinstance(body, dict) else None
                if not rtype or (self.allowable is not None and rtype not in self.allowable):
                    return 400, {"error": {"code": "Base.1.0.ActionParameterValueNotInList",
                                           "message": f"ResetType {rtype!r} not in {self.allowable}"}}
                self.resets.append(rtype)
                if rtype in ("On", "ForceOn"):
                    self._go(True)
                elif rtype in ("ForceOff", "GracefulShutdown"):
                    self._go(False)
                elif rtype == "PushPowerButton":
                    self._go(not self.on)
                elif rtype in ("PowerCycle", "ForceRestart", "GracefulRestart") and self.on:
                    self.set_power(False)
                    self.later(self.cycle_off_s, lambda: self.set_power(True))
                return 204, None
        return 404, {"error": {"code": "Base.1.0.ResourceMissingAtURI", "message": path}}
