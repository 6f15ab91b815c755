"""Home Assistant: `GET /api/states/<entity>`, `POST /api/services/<domain>/turn_on|turn_off` with
`Authorization: Bearer TOKEN` and `{"entity_id": …}`."""
from __future__ import annotations

import json

from launcher.power._http import base_url, check, json_of, make_client
from launcher.power.base import OFF, ON, Driver, PowerError


class HomeAssistantDriver(Driver):
    name = "homeassistant"
    unsupported = {"cycle": "Home Assistant switches have no timed cycle here; the watchdog switches off, then on"}

    def __init__(self, address: str, *, entity_id: str, token: str | None = None, timeout: float = 5.0,
                 client=None):
        super().__init__(secrets=[token] if token else [])
        from launcher.http import bearer

        self.url = base_url(address if ":" in address.split("//")[-1] else f"{address}:8123")
        self.entity_id = entity_id
        self.domain = entity_id.split(".", 1)[0] if "." in entity_id else "switch"
        self.http = client or make_client(timeout, headers=bearer(token))
        self._auth_note = " -H 'Authorization: Bearer [set]'" if token else ""

    def describe(self) -> str:
        return f"homeassistant {self.url} {self.entity_id}"

    def state(self) -> str:
        self.record(f"GET {self.url}/api/states/{self.entity_id}{self._auth_note}")
        data = json_of(self, self.http.get(f"{self.url}/api/states/{self.entity_id}"), "GET state")
        s = str((data or {}).get("state", "")).lower()
        if s in (ON, OFF):
            return s
        raise PowerError(f"{self.describe()}: state is {s or 'missing'!r}",
                         fix="is the entity a switch (on/off)? `unavailable` means HA cannot reach the plug")

    def switch(self, on: bool) -> None:
        service = "turn_on" if on else "turn_off"
        body = {"entity_id": self.entity_id}
        self.record(f"POST {self.url}/api/services/{self.domain}/{service}{self._auth_note} {json.dumps(body)}")
        check(self, self.http.post(f"{self.url}/api/services/{self.domain}/{service}", json=body), service)
