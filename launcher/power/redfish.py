"""Redfish BMCs: discover the system (`GET /redfish/v1/Systems` → Members), read `PowerState`, and
POST the `#ComputerSystem.Reset` target with a ResetType chosen from `ResetType@Redfish.AllowableValues`."""
from __future__ import annotations

import json

from launcher.power._http import base_url, check, json_of, make_client
from launcher.power.base import OFF, ON, Driver, PowerError, Unsupported

PREFER = {
    "off": ("ForceOff", "GracefulShutdown", "PushPowerButton"),
    "on": ("On", "ForceOn", "PushPowerButton"),
    "cycle": ("PowerCycle", "ForceRestart", "GracefulRestart"),
}


class RedfishDriver(Driver):
    name = "redfish"
    unsupported = {"cycle": "a BMC's own reset cannot be confirmed off; the watchdog uses ForceOff → On"}

    def __init__(self, address: str, *, username: str | None = None, password: str | None = None,
                 system: str | None = None, timeout: float = 10.0, verify: bool | str = True, client=None):
        super().__init__(secrets=[password] if password else [], users=[username or "root"])
        self.url = base_url(address, "https")
        auth = None
        if password is not None:
            import httpx

            auth = httpx.BasicAuth(username or "root", password)
        if isinstance(verify, str):  # a CA bundle (a BMC's own CA)
            import ssl

            verify = ssl.create_default_context(cafile=verify)
        self.verify = verify
        self.http = client or make_client(timeout, auth=auth, verify=verify)
        self.system = system
        self._doc: dict | None = None

    def describe(self) -> str:
        return f"redfish {self.url}{self.system or ''}"

    def _get(self, path: str) -> dict:
        self.record(f"GET {self.url}{path}")
        data = json_of(self, self._send("get", path), f"GET {path}")
        if not isinstance(data, dict):
            raise PowerError(f"{self.describe()}: GET {path} did not answer a JSON object")
        return data

    def _send(self, method: str, path: str, **kw):
        import httpx

        try:
            return getattr(self.http, method)(self.url + path, **kw)
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise PowerError(f"{self.describe()}: the BMC's TLS certificate is not trusted ({self.mask(str(exc))})",
                                 fix="give the BMC's CA file as `power.verify: /path/ca.pem` in the inventory, "
                                     "or `power.verify: false` for a self-signed BMC on a trusted network") from None
            raise

    def discover(self) -> str:
        if self.system:
            return self.system
        members = [m.get("@odata.id") for m in self._get("/redfish/v1/Systems").get("Members", [])
                   if isinstance(m, dict) and m.get("@odata.id")]
        if not members:
            raise PowerError(f"{self.describe()}: /redfish/v1/Systems lists no systems")
        if len(members) > 1:
            raise Unsupported(f"{self.url} has {len(members)} systems: {', '.join(members)}",
                              fix="name one as power.system in the inventory")
        self.system = members[0]
        return self.system

    def _system(self) -> dict:
        self._doc = self._get(self.discover())
        return self._doc

    def state(self) -> str:
        s = str(self._system().get("PowerState", ""))
        return {"on": ON, "off": OFF}.get(s.lower(), s or "unknown")

    def reset_type(self, kind: str) -> tuple[str, str]:
        """(target, ResetType) for off|on|cycle, chosen from the allowable values."""
        doc = self._doc or self._system()
        action = (doc.get("Actions") or {}).get("#ComputerSystem.Reset") or {}
        target = action.get("target") or f"{self.discover()}/Actions/ComputerSystem.Reset"
        allowed = action.get("ResetType@Redfish.AllowableValues")
        if not allowed:  # no list: the BMC accepts the standard values
            return target, PREFER[kind][0]
        for choice in PREFER[kind]:
            if choice in allowed:
                return target, choice
        raise Unsupported(f"{self.describe()}: no ResetType for {kind} among {allowed}",
                          fix=f"a BMC offering one of {list(PREFER[kind])} is needed")

    def _reset(self, kind: str) -> None:
        target, rtype = self.reset_type(kind)
        body = {"ResetType": rtype}
        self.record(f"POST {self.url}{target} {json.dumps(body)}")
        check(self, self._send("post", target, json=body), f"Reset {rtype}")
        self._doc = None

    def switch(self, on: bool) -> None:
        self._reset("on" if on else "off")

    def cycle(self) -> None:
        self._reset("cycle")
