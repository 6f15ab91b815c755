"""`launch watchdog INVENTORY --install systemd [--dry-run]` for real (subprocess): the unit reads power
credentials from an EnvironmentFile, names the variables (never values), and --dry-run writes nothing.
Under systemd, a missing credential variable is reported with where to put it."""
from __future__ import annotations

from pathlib import Path

SECRET = "plug-secret-value-77"


def _inventory(tmp_path: Path, watch_url: str = "http://10.0.0.5:8000", reference: str | None = None) -> Path:
    inv = tmp_path / "inv.yaml"
    inv.write_text((f"reference: {reference}\n" if reference else "") + f"""name: sd
hosts:
  n1:
    address: 10.0.0.5
    watch: {{url: "{watch_url}"}}
    power: {{driver: tasmota, address: "127.0.0.1:9", credentials: {{env: PLUG_PW}}}}
""")
    return inv


def test_install_writes_environment_file_and_names_variables_not_values(launch, isolated, tmp_path):
    inv = _inventory(tmp_path)
    units = tmp_path / "units"
    r = launch("watchdog", str(inv), "--install", "systemd", "--period", "15", timeout=60,
               env={"LAUNCHER_SYSTEMD_DIR": str(units), "PLUG_PW": SECRET})
    assert r.returncode == 0, r.stderr
    text = (units / "launch-watchdog.service").read_text()
    env_file = isolated / "config" / "watchdog.env"
    assert f"EnvironmentFile=-{env_file}\n" in text and "--period=15" in text and "Restart=always" in text
    assert SECRET not in text + r.stdout + r.stderr
    assert "PLUG_PW=…" in r.stdout and str(env_file) in r.stdout and "0600" in r.stdout
    assert "enable --now launch-watchdog.service" in r.stdout


def test_install_dry_run_prints_the_unit_and_writes_nothing(launch, isolated, tmp_path):
    inv = _inventory(tmp_path)
    units = tmp_path / "units"
    r = launch("watchdog", str(inv), "--install", "systemd", "--dry-run", timeout=60,
               env={"LAUNCHER_SYSTEMD_DIR": str(units)})
    assert r.returncode == 0, r.stderr
    assert not (units / "launch-watchdog.service").exists() and not units.exists()
    assert "dry run" in r.stdout and "[Service]" in r.stdout and "ExecStart=" in r.stdout
    assert "EnvironmentFile=-" in r.stdout and "enable --now launch-watchdog.service" in r.stdout


def test_under_systemd_a_missing_credential_says_where_to_put_it(launch, isolated, tmp_path):
    from launcher.sim import SimConfig, VllmSim

    ok = VllmSim(SimConfig(quiet=True)).start()
    try:
        inv = _inventory(tmp_path, watch_url=ok.url, reference=ok.url)
        env = {"INVOCATION_ID": "0123456789abcdef", "PLUG_PW": ""}
        r = launch("watchdog", str(inv), "--once", "--dry-run", "--grace", "0", "--timeout", "2",
                   "--journal", str(tmp_path / "j.jsonl"), env=env, timeout=60)
    finally:
        ok.stop()
    assert r.returncode == 0, r.stderr
    err = " ".join(r.stderr.split())
    assert "n1: no usable power driver" in err
    assert "PLUG_PW=…" in err and str(isolated / "config" / "watchdog.env") in err
