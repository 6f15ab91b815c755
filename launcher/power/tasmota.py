"""Tasmota plugs: `GET /cm?user=admin&password=PW&cmnd=Power%20Off`; a cycle in one request with
`Backlog Power Off;Delay N;Power On` (Delay in 0.1 s units, only inside Backlog)."""
from __future__ import annotations

from urllib.parse import quote

from launcher.auth import MASK
from launcher.power._http import base_url, json_of, make_client
from launcher.power.base import OFF, ON, Driver, PowerError


class TasmotaDriver(Driver):
    name = "tasmota"

    def __init__(self, address: str, *, channel: int = 0, username: str | None = None,
                 password: str | None = None, toggle_after: float | None = None, timeout: float = 5.0,
                 client=None):
        self.username = username or "admin"
        super().__init__(secrets=[password] if password else [], users=[self.username])
        self.url = base_url(address)
        self.channel = int(channel)
        self.password = password
        self.http = client or make_client(timeout)
        self.power_cmd = "Power" if self.channel == 0 else f"Power{self.channel + 1}"
        if toggle_after:
            self.native_cycle_s = float(toggle_after)
        else:
            self.unsupported = {**self.unsupported,
                                "cycle": "set power.toggle_after to let the plug run the cycle itself (Backlog)"}

    def describe(self) -> str:
        return f"tasmota {self.url}"

    def _cm(self, cmnd: str) -> dict:
        q = f"cmnd={quote(cmnd, safe='')}"
        shown = q
        if self.password:
            user = f"user={quote(self.username, safe='')}&"
            q = f"{user}password={quote(self.password, safe='')}&{q}"
            shown = f"{user}password={MASK}&{shown}"  # the request as recorded: never the value, in any encoding
        url = f"{self.url}/cm?{q}"
        self.record(f"GET {self.url}/cm?{shown}")
        data = json_of(self, self.http.get(url), cmnd)
        if isinstance(data, dict) and data.get("WARNING") and "password" in str(data["WARNING"]).lower():
            raise PowerError(f"{self.describe()}: {data['WARNING']}", fix="check power.credentials")
        return data if isinstance(data, dict) else {}

    def _parse(self, data: dict) -> str:
        keys = [self.power_cmd.upper()] + (["POWER1"] if self.channel == 0 else [])
        for k in keys:
            if k in data:
                return ON if str(data[k]).upper() in ("ON", "1") else OFF
        raise PowerError(f"{self.describe()}: no {self.power_cmd.upper()} in the answer: {str(data)[:200]}")

    def state(self) -> str:
        return self._parse(self._cm(self.power_cmd))

    def switch(self, on: bool) -> None:
        self._cm(f"{self.power_cmd} {'On' if on else 'Off'}")

    def cycle(self) -> None:
        if self.native_cycle_s is None:
            super().cycle()
        tenths = max(1, int(round(self.native_cycle_s * 10)))
        self._cm(f"Backlog {self.power_cmd} Off;Delay {tenths};{self.power_cmd} On")
