"""Any device through shell commands from the inventory (`power.commands`: state, on, off[, cycle]).

`state` must print on or off (also true/false, 1/0, "Chassis Power is on"); the credential, when
set, is passed as the environment variable POWER_PASSWORD, never substituted into the command.
"""
from __future__ import annotations

import os
import re
import subprocess

from launcher.power.base import OFF, ON, Driver, PowerError

WORDS = {"on": ON, "off": OFF, "true": ON, "false": OFF, "1": ON, "0": OFF}


class CommandDriver(Driver):
    name = "command"

    def __init__(self, commands: dict[str, str], *, password: str | None = None, username: str | None = None,
                 timeout: float = 30.0, toggle_after: float | None = None):
        super().__init__(secrets=[password] if password else [], users=[username] if username else [])
        self.commands = dict(commands)
        self.password, self.username, self.timeout = password, username, timeout
        if "cycle" in self.commands and toggle_after:
            self.native_cycle_s = float(toggle_after)
        elif "cycle" not in self.commands:
            self.unsupported = {**self.unsupported, "cycle": "no `cycle` in power.commands; the watchdog switches off, then on"}

    def describe(self) -> str:
        return "command"

    def _run(self, which: str) -> str:
        cmd = self.commands[which]
        env = dict(os.environ)
        if self.password is not None:
            env["POWER_PASSWORD"] = self.password
        if self.username:
            env["POWER_USER"] = self.username
        self.record(f"sh -c {cmd!r}")
        try:
            p = subprocess.run(["/bin/sh", "-c", cmd], env=env, capture_output=True, text=True,
                               timeout=self.timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise PowerError(f"power command {which!r} did not finish within {self.timeout:g} s") from None
        if p.returncode != 0:
            tail = (p.stderr or p.stdout).strip().splitlines()
            raise PowerError(f"power command {which!r} exited {p.returncode}: {self.mask(tail[-1] if tail else 'no message')}")
        return p.stdout

    def state(self) -> str:
        out = self._run("state").strip()
        for word in reversed(re.findall(r"[A-Za-z0-9]+", out)):
            if word.lower() in WORDS:
                return WORDS[word.lower()]
        raise PowerError(f"power command 'state' printed {out[:100]!r}", fix="make it print on or off")

    def switch(self, on: bool) -> None:
        self._run("on" if on else "off")

    def cycle(self) -> None:
        if "cycle" not in self.commands:
            super().cycle()
        self._run("cycle")
