"""The ipmi driver against a real BMC simulator: `ipmi_sim` from Debian's openipmi, on 127.0.0.1.

ipmi_sim speaks the real IPMI 2.0 / RMCP+ LAN protocol; its chassis power is delegated to a small
chassis_control script holding the state in a file (what `chassis power on|off` would do to a board).
This ipmi_sim lacks cipher suite 17 (ipmitool's default), so the driver is given `-C 3`. Verified
here: `IPMI_PASSWORD=… ipmitool -I lanplus -C 3 -H 127.0.0.1 -p PORT -U admin -E chassis power status`.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

from launcher.power import Power
from launcher.power.ipmi import IpmiDriver
from conftest import require

PASSWORD = "sim-pass-123"

LAN_CONF = """name "launchertest"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "{script} 0x20"
  user 1 true  ""        "test" user     10       none md2 md5 straight
  user 2 true  "admin"   "{password}" admin    10       none md2 md5 straight
"""

COMMANDS = "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n"

CHASSIS = """#!/bin/sh
# ipmi_sim chassis control: $1 device, $2 get|set, then parm [val] ...
f="$(dirname "$0")/power"
op=$2; shift 2
echo "$op $*" >> "$(dirname "$0")/chassis.log"
if [ "$op" = get ]; then
  for p in "$@"; do [ "$p" = power ] && echo "power:$(cat "$f" 2>/dev/null || echo 1)"; done
else
  while [ $# -ge 2 ]; do [ "$1" = power ] && echo "$2" > "$f"; shift 2; done
fi
exit 0
"""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def bmc(tmp_path):
    sim = require("ipmi_sim", "ipmi_sim", "apt-get install openipmi")
    require("ipmitool", "ipmitool", "apt-get install ipmitool")
    port = free_udp_port()
    script = tmp_path / "chassis.sh"
    script.write_text(CHASSIS)
    script.chmod(0o755)
    (tmp_path / "power").write_text("1\n")
    (tmp_path / "lan.conf").write_text(LAN_CONF.format(port=port, script=script, password=PASSWORD))
    (tmp_path / "cmds").write_text(COMMANDS)
    (tmp_path / "state").mkdir()
    proc = subprocess.Popen([sim, "-c", str(tmp_path / "lan.conf"), "-f", str(tmp_path / "cmds"),
                             "-s", str(tmp_path / "state"), "-n"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    drv = IpmiDriver(f"127.0.0.1:{port}", username="admin", password=PASSWORD, cipher=3, timeout=10)
    try:
        deadline = time.time() + 10
        while True:
            if proc.poll() is not None:
                pytest.fail(f"ipmi_sim exited {proc.returncode}: {proc.stderr.read().decode()[-500:]}")
            try:
                drv.state()
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        drv.sent.clear()
        yield drv, tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_ipmi_reboot_against_ipmi_sim(bmc):
    drv, d = bmc
    res = Power(drv, poll=0.2, confirm_timeout=10, off_wait=0.2, retries=1, retry_wait=0.2).reboot()
    assert res.ok and res.off_confirmed and res.before == "on" and res.after == "on", res
    log = (d / "chassis.log").read_text().splitlines()
    assert "set power 0" in log and "set power 1" in log
    assert log.index("set power 0") < log.index("set power 1")
    # The password went through the environment only: never in argv, masked in what was logged.
    assert all(PASSWORD not in s for s in res.sent)
    assert res.sent[0].startswith("IPMI_PASSWORD=[set] ipmitool -I lanplus -C 3 -H 127.0.0.1 -p ")
    assert res.sent[0].endswith(" -U admin -E chassis power status")
    assert PASSWORD not in " ".join(drv.argv("status"))


def test_ipmi_off_then_already_off(bmc):
    drv, d = bmc
    p = Power(drv, poll=0.2, confirm_timeout=10, retries=0)
    assert p.off().ok and (d / "power").read_text().strip() == "0"
    again = p.off()
    assert again.ok and again.message == "already off"
