"""The watchdog's systemd unit: EnvironmentFile for power credentials (names only, never values),
User= the invoking user, specifiers escaped, and a plan that can be shown without writing."""
from __future__ import annotations

import pwd
import subprocess
from pathlib import Path

import pytest

from launcher.spec.inventory import Inventory
from launcher.watchdog.systemd import UNIT_NAME, env_names, plan, unit_text, write

ARGV = ["/usr/bin/launch", "watchdog", "/srv/inv.yaml", "--period=15"]


def test_unit_has_environment_file_and_user():
    text = unit_text(ARGV, user_unit=False, user="alice", env_file="/home/alice/.config/launcher/watchdog.env")
    service = text.split("[Service]", 1)[1].split("[Install]", 1)[0]
    assert "\nUser=alice\n" in service
    assert "\nEnvironmentFile=-/home/alice/.config/launcher/watchdog.env\n" in service
    assert "Restart=always" in service and "StartLimitBurst=5" in text


def test_percent_and_dollar_are_escaped_for_systemd():
    text = unit_text(["/usr/bin/launch", "watchdog", "/srv/100% inv.yaml", "--journal=$HOME/j"], user_unit=True)
    assert "ExecStart=/usr/bin/launch watchdog '/srv/100%% inv.yaml' '--journal=$$HOME/j'" in text


def test_env_names_lists_credential_variables_only():
    inv = Inventory.model_validate({"name": "x", "hosts": {
        "a": {"address": "10.0.0.1", "watch": {"url": "http://a:8000"},
              "power": {"driver": "tasmota", "address": "p1", "credentials": {"env": "PLUG_PW"}}},
        "b": {"address": "10.0.0.2", "watch": {"url": "http://b:8000"},
              "power": {"driver": "ipmi", "address": "bmc", "credentials": {"env": "BMC_PW"}}},
        "c": {"address": "10.0.0.3", "watch": {"url": "http://c:8000"},
              "power": {"driver": "redfish", "address": "bmc2", "credentials": {"file": "~/.bmc"}}},
    }})
    assert env_names(inv) == ["BMC_PW", "PLUG_PW"]


def test_non_root_gets_a_user_unit_without_a_user_line(tmp_path):
    nobody = pwd.getpwnam("nobody")
    env = {"LAUNCHER_CONFIG_DIR": str(tmp_path / "cfg"), "PLUG_PW": "value-never-shown-1"}
    p = plan(ARGV, unit_dir=tmp_path / "units", env_names=["PLUG_PW"], euid=nobody.pw_uid, environ=env)
    # the user manager runs it as that user already; User= there fails with 216/GROUP
    assert p.user_unit and p.user == "nobody" and "User=" not in p.text
    assert p.env_file == tmp_path / "cfg" / "watchdog.env"
    assert f"EnvironmentFile=-{tmp_path}/cfg/watchdog.env" in p.text
    assert any(s.startswith("systemctl --user enable --now") for s in p.steps)
    shown = p.instructions(written=False) + p.text
    assert "value-never-shown-1" not in shown
    assert "PLUG_PW=…" in shown and "0600" in shown and "install -D -m 600 /dev/null" in shown


def test_root_under_sudo_runs_the_unit_as_the_sudo_user_with_their_config_dir(tmp_path):
    nobody = pwd.getpwnam("nobody")
    p = plan(ARGV, unit_dir=tmp_path, env_names=["PLUG_PW"], euid=0, environ={"SUDO_USER": "nobody"})
    assert not p.user_unit and p.user == "nobody" and "\nUser=nobody\n" in p.text
    assert p.env_file == Path(nobody.pw_dir) / ".config" / "launcher" / "watchdog.env"
    assert "WantedBy=multi-user.target" in p.text and p.steps[1] == f"systemctl enable --now {UNIT_NAME}"
    assert "chown nobody" in p.instructions(written=True)


def test_plain_root_has_no_user_line(tmp_path):
    p = plan(ARGV, unit_dir=tmp_path, euid=0, environ={"LAUNCHER_CONFIG_DIR": str(tmp_path / "c")})
    assert p.user is None and "User=" not in p.text and "EnvironmentFile=-" in p.text
    assert "no credential variables needed" in p.instructions(written=True)


def test_plan_writes_nothing_until_write(tmp_path):
    p = plan(ARGV, unit_dir=tmp_path / "units", euid=0, environ={})
    assert not p.path.exists()
    assert "dry run" in p.instructions(written=False) and "[Service]" in p.instructions(written=False)
    write(p)
    assert p.path.read_text() == p.text


def test_systemd_analyze_accepts_the_unit(tmp_path):
    from conftest import require

    require("systemd-analyze", "systemd-analyze", "apt-get install systemd")
    user = next(u.pw_name for u in pwd.getpwall() if u.pw_uid not in (0, 65534))  # systemd warns about nobody
    p = plan(["/bin/true", "watchdog", "/srv/100% inv.yaml"], unit_dir=tmp_path, env_names=["X"], euid=0,
             environ={"SUDO_USER": user, "LAUNCHER_CONFIG_DIR": str(tmp_path / "c d")})
    assert f"User={user}" in p.text
    write(p)
    r = subprocess.run(["systemd-analyze", "verify", str(p.path)], capture_output=True, text=True, timeout=60)
    if r.returncode != 0 and ("Failed to initialize manager" in r.stderr or "Failed to connect" in r.stderr):
        pytest.skip(f"systemd-analyze cannot run here: {r.stderr.strip()[:200]}")
    assert r.returncode == 0, r.stderr
    assert UNIT_NAME not in r.stderr, r.stderr  # no warning about our unit
