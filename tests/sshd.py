"""A real OpenSSH server on a random 127.0.0.1 port, for tests of the ssh runtime (reusable).

Usage in a test module:   from sshd import sshd  # noqa: F401  (the fixture)
  sshd.host_spec()          -> inventory host dict {address, ssh: {user, port, identity_file, options}}
  sshd.ssh_argv()           -> ["ssh", ...options..., "127.0.0.1"] (then append a remote command)
  sshd.config_path / alias  -> an ssh_config file with `Host <alias>` (use `ssh -F config alias`,
                               or set LAUNCHER_SSH_CONFIG=config_path and address: <alias>)
  sshd.home                 -> the remote $HOME (sshd's SetEnv), so remote files stay in tmp
The server runs as the current user (-D -e -f tmp/sshd_config, UsePAM no, StrictModes no) with
generated ed25519 host and client keys; the client trusts only the generated host key
(own known_hosts, StrictHostKeyChecking=yes). Every process started through it carries
LAUNCHER_TEST_SSHD=<token> in its environment; the finalizer kills any left behind.
"""
from __future__ import annotations

import getpass
import os
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import free_port, require

SSHD = "/usr/sbin/sshd"


@dataclass
class SshServer:
    port: int
    user: str
    dir: Path
    home: Path
    identity: Path
    known_hosts: Path
    config_path: Path
    token: str
    alias: str = "launcher-test-sshd"
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def options(self) -> list[str]:
        return [f"UserKnownHostsFile={self.known_hosts}", "StrictHostKeyChecking=yes",
                "IdentitiesOnly=yes", "GlobalKnownHostsFile=/dev/null", "LogLevel=ERROR"]

    def host_spec(self, **extra) -> dict:
        return {"address": "127.0.0.1",
                "ssh": {"user": self.user, "port": self.port, "identity_file": str(self.identity),
                        "options": self.options()}, **extra}

    def ssh_argv(self) -> list[str]:
        argv = ["ssh", "-F", str(self.config_path), "-o", "BatchMode=yes"]
        return argv + [self.alias]

    def leftovers(self) -> list:
        """Live processes started through this server (found by the token in their environment)."""
        import psutil

        out = []
        for p in psutil.process_iter(["pid"]):
            try:
                if p.environ().get("LAUNCHER_TEST_SSHD") == self.token:
                    out.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
                continue
        return out

    def stop(self) -> None:
        import psutil

        for p in self.leftovers():
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "launcher-test", "-f", str(path)],
                   check=True, capture_output=True, timeout=30)


def start_sshd(base: Path, *, timeout: float = 10.0, env: dict[str, str] | None = None) -> SshServer:
    """Generate keys and configs under base and start sshd; returns once it accepts connections.
    env: more variables for every session (sshd's SetEnv; PATH included, which sshd sets last)."""
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o700)
    home = base / "home"
    home.mkdir(exist_ok=True)
    host_key, client_key = base / "host_ed25519", base / "client_ed25519"
    _keygen(host_key)
    _keygen(client_key)
    (base / "authorized_keys").write_text(Path(f"{client_key}.pub").read_text())
    port, user, token = free_port(), getpass.getuser(), secrets.token_hex(8)
    (base / "sshd_config").write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
AuthorizedKeysFile {base}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PidFile none
LogLevel ERROR
SetEnv HOME={home} LAUNCHER_TEST_SSHD={token}{"".join(f" {k}={v}" for k, v in (env or {}).items())}
""")
    known = base / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {Path(f'{host_key}.pub').read_text().split(' ')[0]} "
                     f"{Path(f'{host_key}.pub').read_text().split(' ')[1]}\n")
    server = SshServer(port=port, user=user, dir=base, home=home, identity=client_key, known_hosts=known,
                       config_path=base / "ssh_config", token=token)
    server.config_path.write_text(
        f"Host {server.alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n"
        f"  IdentityFile {client_key}\n" + "".join(f"  {o.replace('=', ' ', 1)}\n" for o in server.options()))
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    log = open(base / "sshd.log", "wb")
    server.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(base / "sshd_config")],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"sshd exited ({server.proc.returncode}): {(base / 'sshd.log').read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port} within {timeout} s")


@pytest.fixture
def sshd(tmp_path_factory):
    """A running sshd (function-scoped); stopped, with everything started through it, afterwards."""
    require("sshd (openssh-server)", SSHD, "apt-get install openssh-server")
    require("ssh client", "ssh", "apt-get install openssh-client")
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        server.stop()
