"""Shelly smart plugs. Gen2/3: RPC (`GET /rpc/Switch.GetStatus?id=0`, `POST /rpc` Switch.Set with
toggle_after, so the plug finishes the cycle by itself). Gen1: `GET /relay/0` and `/relay/0?turn=on|off`.
"""
from __future__ import annotations

from launcher.power._http import base_url, json_of, make_client
from launcher.power.base import OFF, ON, Driver, PowerError


class ShellyDriver(Driver):
    name = "shelly"

    def __init__(self, address: str, *, generation: int = 2, channel: int = 0, username: str | None = None,
                 password: str | None = None, toggle_after: float | None = None, timeout: float = 5.0,
                 client=None):
        # digest (gen2) sends only a hash; basic (gen1) sends base64 `user:password`: both masked
        super().__init__(secrets=[password] if password else [], users=[username or "admin"])
        self.url = base_url(address)
        self.generation = int(generation)
        self.channel = int(channel)
        self.toggle_after = toggle_after
        auth = None
        if password:
            import httpx

            user = username or "admin"
            auth = httpx.DigestAuth(user, password) if self.generation >= 2 else httpx.BasicAuth(user, password)
        self.http = client or make_client(timeout, auth=auth)
        if self.generation >= 2 and toggle_after:
            self.native_cycle_s = float(toggle_after)
        elif self.generation < 2:
            self.unsupported = {**self.unsupported,
                                "cycle": "Shelly gen1 is driven with /relay/N?turn=on|off only; the watchdog switches off, then on"}
        else:
            self.unsupported = {**self.unsupported,
                                "cycle": "set power.toggle_after to let the plug switch itself back on"}

    def describe(self) -> str:
        return f"shelly gen{self.generation} {self.url}"

    def state(self) -> str:
        if self.generation >= 2:
            self.record(f"GET {self.url}/rpc/Switch.GetStatus?id={self.channel}")
            data = json_of(self, self.http.get(f"{self.url}/rpc/Switch.GetStatus", params={"id": self.channel}),
                           "Switch.GetStatus")
            key = "output"
        else:
            self.record(f"GET {self.url}/relay/{self.channel}")
            data = json_of(self, self.http.get(f"{self.url}/relay/{self.channel}"), "relay status")
            key = "ison"
        if not isinstance(data, dict) or not isinstance(data.get(key), bool):
            raise PowerError(f"{self.describe()}: no boolean {key!r} in the status answer: {str(data)[:200]}")
        return ON if data[key] else OFF

    def _rpc_set(self, on: bool, toggle_after: float | None = None) -> None:
        params: dict = {"id": self.channel, "on": on}
        if toggle_after:
            params["toggle_after"] = toggle_after
        body = {"id": 1, "method": "Switch.Set", "params": params}
        import json

        self.record(f"POST {self.url}/rpc {json.dumps(body)}")
        data = json_of(self, self.http.post(f"{self.url}/rpc", json=body), "Switch.Set")
        if isinstance(data, dict) and data.get("error"):
            raise PowerError(f"{self.describe()}: Switch.Set refused: {data['error']}")

    def switch(self, on: bool) -> None:
        if self.generation >= 2:
            self._rpc_set(on)
        else:
            turn = "on" if on else "off"
            self.record(f"GET {self.url}/relay/{self.channel}?turn={turn}")
            json_of(self, self.http.get(f"{self.url}/relay/{self.channel}", params={"turn": turn}), "relay switch")

    def cycle(self) -> None:
        if self.native_cycle_s is None:
            super().cycle()
        self._rpc_set(False, toggle_after=self.native_cycle_s)
