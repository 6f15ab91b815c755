"""Escalation step one: restart the model server on a host whose SSH still answers.

The inventory's `watch.restart` command when given; else the containers launch started there
(docker label `launcher.plan-hash`). Runs over the system ssh client (launcher.runtimes.ssh), or
locally for a local host.
"""
from __future__ import annotations

import shlex
import subprocess

DOCKER_RESTART = ('ids=$(docker ps -aq --filter label=launcher.plan-hash); '
                  '[ -n "$ids" ] || { echo "no container started by launch on this host" >&2; exit 3; }; '
                  'docker restart $ids')


class Restarter:
    def __init__(self, hosts: dict, *, timeout: float = 120.0, runner=None):
        self.hosts = hosts  # name -> launcher.spec.inventory.Host
        self.timeout = timeout
        self.runner = runner  # (host, script, timeout) -> (code, output); tests inject one

    def script(self, node: str) -> str:
        host = self.hosts[node]
        cmd = host.watch.restart if host.watch and host.watch.restart else None
        return cmd or DOCKER_RESTART

    def can(self, node: str) -> bool:
        return node in self.hosts

    def describe(self, node: str) -> str:
        host = self.hosts[node]
        where = "locally" if host.is_local else f"over ssh on {host.address}"
        return f"{shlex.join(['sh', '-c', self.script(node)])} ({where})"

    def restart(self, node: str) -> tuple[bool, str]:
        host, script = self.hosts[node], self.script(node)
        if self.runner is not None:
            code, output = self.runner(host, script, self.timeout)
        elif host.is_local:
            try:
                p = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=self.timeout,
                                   stdin=subprocess.DEVNULL)
                code, output = p.returncode, (p.stderr or p.stdout)
            except subprocess.TimeoutExpired:
                code, output = 124, f"timed out after {self.timeout:g} s"
        else:
            from launcher.runtimes.ssh import SshRuntime

            res = SshRuntime().run(host.model_dump(), ["sh", "-c", script], timeout=self.timeout)
            code, output = res.code, (res.stderr or res.stdout)
        tail = output.strip().splitlines()[-1] if output.strip() else ""
        return code == 0, f"exit {code}" + (f": {tail}" if tail else "")
