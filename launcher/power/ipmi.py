"""IPMI through ipmitool: `ipmitool -I lanplus -H BMC -U user -E chassis power status|on|off|cycle`.

The password goes through the environment only (`-E` reads IPMI_PASSWORD), never argv.
Status text: `Chassis Power is on|off`. `cycle` does nothing when the chassis is off, so the shared
routine uses off → on (a BMC's own cycle cannot be confirmed: the off phase is too short to see).
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
from typing import Callable

from launcher.power.base import OFF, ON, Driver, PowerError

STATUS_RE = re.compile(r"Chassis Power is (on|off)", re.I)


def _run(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, str, str]:
    try:
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise PowerError("ipmitool is not installed", fix="apt-get install ipmitool (or dnf install ipmitool)") from None
    except subprocess.TimeoutExpired:
        raise PowerError(f"ipmitool did not answer within {timeout:g} s") from None
    return p.returncode, p.stdout, p.stderr


class IpmiDriver(Driver):
    name = "ipmi"

    def __init__(self, address: str, *, username: str | None = None, password: str | None = None,
                 interface: str = "lanplus", cipher: int | None = None, timeout: float = 15.0, ipmitool: str = "ipmitool",
                 extra: list[str] | None = None,
                 runner: Callable[[list[str], dict[str, str], float], tuple[int, str, str]] = _run):
        super().__init__(secrets=[password] if password else [], users=[username or "ADMIN"])
        host, _, port = address.rpartition(":") if address.count(":") == 1 else (address, "", "")
        self.host, self.port = host, port
        self.username = username or "ADMIN"
        self.password = password
        self.interface = interface
        self.cipher = cipher
        self.timeout = timeout
        self.ipmitool = ipmitool
        self.extra = list(extra or [])
        self.runner = runner

    def describe(self) -> str:
        return f"ipmi {self.host}{':' + self.port if self.port else ''}"

    def argv(self, *command: str) -> list[str]:
        argv = [self.ipmitool, "-I", self.interface]
        if self.cipher is not None:  # e.g. 3 for BMCs (and ipmi_sim) without cipher suite 17
            argv += ["-C", str(self.cipher)]
        argv += ["-H", self.host]
        if self.port:
            argv += ["-p", self.port]
        argv += ["-U", self.username]
        if self.password is not None:
            argv.append("-E")
        return argv + self.extra + ["chassis", "power", *command]

    def _call(self, *command: str) -> str:
        argv = self.argv(*command)
        env = dict(os.environ)
        shown = shlex.join(argv)
        if self.password is not None:
            env["IPMI_PASSWORD"] = self.password
            shown = f"IPMI_PASSWORD={'[set]'} {shown}"
        self.record(shown)
        code, out, err = self.runner(argv, env, self.timeout)
        if code != 0:
            msg = (err or out).strip().splitlines()
            raise PowerError(f"{self.describe()}: `{self.mask(shlex.join(argv))}` exited {code}: "
                             f"{self.mask(msg[-1] if msg else 'no message')}")
        return out

    def state(self) -> str:
        out = self._call("status")
        m = STATUS_RE.search(out)
        if not m:
            raise PowerError(f"{self.describe()}: unexpected status answer: {out.strip()[:200]}")
        return ON if m.group(1).lower() == "on" else OFF

    def switch(self, on: bool) -> None:
        self._call("on" if on else "off")

    def cycle(self) -> None:
        """`chassis power cycle` (not used by reboot(): its off phase cannot be confirmed)."""
        self._call("cycle")
