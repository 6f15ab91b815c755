"""A systemd unit for the watchdog: Restart=always, with a start limit that stops a crash loop
(5 starts in 10 min) instead of hammering forever."""
from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

UNIT_NAME = "launch-watchdog.service"


def exec_start(inventory: str, args: list[str]) -> list[str]:
    launch = shutil.which("launch")
    base = [launch] if launch else [sys.executable, "-m", "launcher.cli.main"]
    return [*base, "watchdog", str(Path(inventory).resolve()) if Path(inventory).exists() else inventory, *args]


def unit_text(argv: list[str], *, user_unit: bool, description: str = "launch watchdog: power-cycle wedged nodes") -> str:
    wanted = "default.target" if user_unit else "multi-user.target"
    return (
        "[Unit]\n"
        f"Description={description}\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n"
        "StartLimitIntervalSec=600\n"
        "StartLimitBurst=5\n"
        "\n[Service]\n"
        "Type=simple\n"
        f"ExecStart={shlex.join(argv)}\n"
        "Restart=always\n"
        "RestartSec=10\n"
        "Environment=PYTHONUNBUFFERED=1\n"
        "\n[Install]\n"
        f"WantedBy={wanted}\n"
    )


def install(argv: list[str], *, unit_dir: str | Path | None = None) -> tuple[Path, list[str]]:
    """Write the unit; returns its path and the commands that enable it (not run here)."""
    user_unit = os.geteuid() != 0
    if unit_dir is None and os.environ.get("LAUNCHER_SYSTEMD_DIR"):  # tests, packagers
        unit_dir = os.environ["LAUNCHER_SYSTEMD_DIR"]
    if unit_dir is None:
        unit_dir = (Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "systemd" / "user"
                    if user_unit else Path("/etc/systemd/system"))
    path = Path(unit_dir) / UNIT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(unit_text(argv, user_unit=user_unit))
    ctl = ["systemctl", "--user"] if user_unit else ["systemctl"]
    steps = [shlex.join([*ctl, "daemon-reload"]), shlex.join([*ctl, "enable", "--now", UNIT_NAME])]
    if user_unit:
        steps.append(f"loginctl enable-linger {shlex.quote(os.environ.get('USER', 'USER'))}   # keep it running after logout")
    steps.append(shlex.join(["journalctl", *(["--user"] if user_unit else []), "-u", UNIT_NAME, "-f"]))
    return path, steps
