"""A systemd unit for the watchdog: Restart=always, with a start limit that stops a crash loop
(5 starts in 10 min) instead of hammering forever.

systemd does not see the variables of the shell that installed the unit, so power credentials given
as `credentials: {env: NAME}` come from `EnvironmentFile=-<config dir>/watchdog.env` (mode 0600,
created by the user; the unit names the file, never a value). The unit runs as the invoking user
(`User=`; under sudo, the user who ran sudo), so its state dir, journal and budgets are that user's.
"""
from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

UNIT_NAME = "launch-watchdog.service"
ENV_FILE = "watchdog.env"


def exec_start(inventory: str, args: list[str]) -> list[str]:
    launch = shutil.which("launch")
    base = [launch] if launch else [sys.executable, "-m", "launcher.cli.main"]
    return [*base, "watchdog", str(Path(inventory).resolve()) if Path(inventory).exists() else inventory, *args]


def env_names(spec) -> list[str]:
    """The environment variables an inventory's credentials name (`{env: NAME}`), sorted; never values."""
    from pydantic import BaseModel

    from launcher.spec.keysource import KeySource

    found: set[str] = set()

    def walk(obj) -> None:
        if isinstance(obj, KeySource):
            if obj.env:
                found.add(obj.env)
        elif isinstance(obj, BaseModel):
            for name in type(obj).model_fields:
                walk(getattr(obj, name, None))
        elif isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, (list, tuple, set)):
            for v in obj:
                walk(v)

    walk(spec)
    return sorted(found)


def _escape(text: str) -> str:
    """A value for a unit file: `%` starts a specifier and `$` a variable there; both doubled."""
    return text.replace("%", "%%").replace("$", "$$")


def unit_text(argv: list[str], *, user_unit: bool, user: str | None = None, env_file: str | Path | None = None,
              description: str = "launch watchdog: power-cycle wedged nodes") -> str:
    wanted = "default.target" if user_unit else "multi-user.target"
    lines = [
        "[Unit]",
        f"Description={description}",
        "Wants=network-online.target",
        "After=network-online.target",
        "StartLimitIntervalSec=600",
        "StartLimitBurst=5",
        "",
        "[Service]",
        "Type=simple",
    ]
    if user:
        lines.append(f"User={user}")
    if env_file:
        # `-`: a missing file is not an error (an inventory without credentials needs none)
        lines.append(f"EnvironmentFile=-{_escape(str(env_file))}")
    lines += [
        f"ExecStart={_escape(shlex.join(argv))}",
        "Restart=always",
        "RestartSec=10",
        "Environment=PYTHONUNBUFFERED=1",
        "",
        "[Install]",
        f"WantedBy={wanted}",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class UnitPlan:
    path: Path
    text: str
    steps: list[str]
    env_file: Path
    user: str | None
    user_unit: bool
    env_names: list[str] = field(default_factory=list)

    def instructions(self, *, written: bool) -> str:
        head = f"wrote {self.path}" if written else (
            f"dry run: would write {self.path} (nothing written):\n\n{self.text}")
        out = [head]
        if self.env_names:
            names = ", ".join(self.env_names)
            owner = f" owned by {self.user}" if self.user and not self.user_unit else ""
            out += [
                f"power credentials: systemd does not see this shell's variables; the unit reads {names} from "
                f"{self.env_file}. Create it readable only by you (mode 0600{owner}), one NAME=value line each:",
                f"  install -D -m 600 /dev/null {shlex.quote(str(self.env_file))}" + (
                    f" && chown {shlex.quote(self.user)} {shlex.quote(str(self.env_file))}" if owner else ""),
                *(f"  {n}=…" for n in self.env_names),
            ]
        else:
            out.append(f"no credential variables needed; the unit would read any from {self.env_file} (mode 0600)")
        out.append("enable it with:")
        out += [f"  {s}" for s in self.steps]
        return "\n".join(out)


def _user_and_home(euid: int, environ) -> tuple[str | None, Path | None]:
    """The user the unit runs as (None: root) and that user's home."""
    import pwd

    if euid != 0:
        try:
            pw = pwd.getpwuid(euid)
            return pw.pw_name, Path(pw.pw_dir)
        except KeyError:
            return environ.get("USER"), Path.home()
    sudo_user = environ.get("SUDO_USER")
    if sudo_user and sudo_user != "root":
        try:
            return sudo_user, Path(pwd.getpwnam(sudo_user).pw_dir)
        except KeyError:
            pass
    return None, None


def plan(argv: list[str], *, unit_dir: str | Path | None = None, env_names: list[str] | tuple = (),
         euid: int | None = None, environ=None) -> UnitPlan:
    """What install() writes and prints. Non-root: a user unit; root: a system unit, run as the
    sudo user when there is one."""
    from launcher.paths import config_dir

    environ = os.environ if environ is None else environ
    euid = os.geteuid() if euid is None else euid
    user_unit = euid != 0
    user, home = _user_and_home(euid, environ)
    if environ.get("LAUNCHER_CONFIG_DIR"):
        cfg = Path(environ["LAUNCHER_CONFIG_DIR"])
    elif user and not user_unit and home is not None:
        cfg = home / ".config" / "launcher"  # what the unit, run as that user, will use (sudo keeps root's)
    else:
        cfg = config_dir()
    env_file = cfg / ENV_FILE
    if unit_dir is None and environ.get("LAUNCHER_SYSTEMD_DIR"):  # tests, packagers
        unit_dir = environ["LAUNCHER_SYSTEMD_DIR"]
    if unit_dir is None:
        unit_dir = (Path(environ.get("XDG_CONFIG_HOME") or (home or Path.home()) / ".config") / "systemd" / "user"
                    if user_unit else Path("/etc/systemd/system"))
    path = Path(unit_dir) / UNIT_NAME
    ctl = ["systemctl", "--user"] if user_unit else ["systemctl"]
    steps = [shlex.join([*ctl, "daemon-reload"]), shlex.join([*ctl, "enable", "--now", UNIT_NAME])]
    if user_unit:
        steps.append(f"loginctl enable-linger {shlex.quote(user or 'USER')}   # keep it running after logout")
    steps.append(shlex.join(["journalctl", *(["--user"] if user_unit else []), "-u", UNIT_NAME, "-f"]))
    # a user manager (systemctl --user) cannot switch credentials: User= there fails with 216/GROUP
    text = unit_text(argv, user_unit=user_unit, user=None if user_unit else user, env_file=env_file)
    return UnitPlan(path, text, steps, env_file, user, user_unit, sorted(set(env_names)))


def write(p: UnitPlan) -> Path:
    p.path.parent.mkdir(parents=True, exist_ok=True)
    p.path.write_text(p.text)
    return p.path


def install(argv: list[str], *, unit_dir: str | Path | None = None,
            env_names: list[str] | tuple = ()) -> tuple[Path, list[str]]:
    """Write the unit; returns its path and the commands that enable it (not run here)."""
    p = plan(argv, unit_dir=unit_dir, env_names=env_names)
    write(p)
    return p.path, p.steps
