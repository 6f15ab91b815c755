"""Escalation step one: restart the model server on a host whose SSH still answers.

In order:
1. the inventory's `watch.restart` command (run over ssh, or locally for a local host);
2. a server launch started there as a plain process (local or ssh runtime, recorded in the state dir,
   launcher.state): `launch down RECIPE` (the runtime stops the recorded processes) then
   `launch up RECIPE` (starts them again from the recipe's plan and waits until ready). The recipe is
   watch.recipe or the recorded one. (`launch up --replace` alone would attach to a running process
   of the same plan, wedged or not, so it is not a restart.)
3. else the containers launch started there (docker label `launcher.plan-hash`): `docker restart`.
"""
from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from launcher.spec.inventory import LOCAL_ADDRESSES

DOCKER_RESTART = ('ids=$(docker ps -aq --filter label=launcher.plan-hash); '
                  '[ -n "$ids" ] || { echo "no container started by launch on this host" >&2; exit 3; }; '
                  'docker restart $ids')
PROCESS_RUNTIMES = ("local", "ssh")


def _launch(args: list[str], timeout: float) -> tuple[int, str]:
    """Run `launch ARGS…` (this interpreter's launcher) and return (exit code, output)."""
    try:
        p = subprocess.run([sys.executable, "-m", "launcher.cli.main", *args], capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:g} s"
    return p.returncode, (p.stderr or p.stdout)


def _records():
    from launcher import state

    return [h for h in state.load() if h.runtime in PROCESS_RUNTIMES]


class Restarter:
    def __init__(self, hosts: dict, *, recipes: dict[str, str | None] | None = None, timeout: float = 120.0,
                 up_timeout: float = 1800.0, runner=None, launch=None, records=None):
        self.hosts = hosts  # name -> launcher.spec.inventory.Host
        self.recipes = recipes or {}  # name -> the recipe known to serve there (watch.recipe or a deployment)
        self.timeout = timeout
        self.up_timeout = up_timeout  # `launch up` waits for the model to load
        self.runner = runner  # (host, script, timeout) -> (code, output); tests inject one
        self.launch = launch or _launch  # (args, timeout) -> (code, output); tests inject one
        self.records = records or _records  # () -> [Handle] of local/ssh processes launch started

    # -- how ------------------------------------------------------------------------------------
    def handles(self, node: str) -> list:
        """Plain processes launch started on this node (local or ssh runtime records)."""
        host = self.hosts[node]
        try:
            recs = self.records()
        except Exception:  # noqa: BLE001 - unreadable state: no records
            return []
        return [h for h in recs if h.runtime in PROCESS_RUNTIMES and (
            h.address == host.address or (host.is_local and h.address in LOCAL_ADDRESSES))]

    def method(self, node: str) -> tuple[str, str]:
        """("command", script) | ("launch", recipe) | ("docker", script)."""
        host = self.hosts[node]
        if host.watch and host.watch.restart:
            return "command", host.watch.restart
        handles = self.handles(node)
        if handles:
            recipe = self.recipes.get(node) or next((h.recipe for h in handles if h.role == "server"), handles[0].recipe)
            return "launch", self.recipe_ref(recipe)
        return "docker", DOCKER_RESTART

    @staticmethod
    def recipe_ref(recipe: str) -> str:
        """The recipe's file as launch up recorded it (deploy.recall), else its name."""
        from launcher.deploy import recall

        meta = recall(recipe) or {}
        path = meta.get("recipe_path")
        return path if path and Path(path).is_file() else recipe

    def script(self, node: str) -> str:
        kind, what = self.method(node)
        return what if kind != "launch" else shlex.join(["launch", "down", what]) + " && " + shlex.join(["launch", "up", what])

    def can(self, node: str) -> bool:
        return node in self.hosts

    def describe(self, node: str) -> str:
        host = self.hosts[node]
        kind, what = self.method(node)
        if kind == "launch":
            pids = ", ".join(f"{h.process} pid {h.ref.get('pid')} ({h.runtime})" for h in self.handles(node))
            return (f"{shlex.join(['launch', 'down', what])} then {shlex.join(['launch', 'up', what])} "
                    f"(launch started it there: {pids})")
        where = "locally" if host.is_local else f"over ssh on {host.address}"
        return f"{shlex.join(['sh', '-c', what])} ({where})"

    # -- do -------------------------------------------------------------------------------------
    def restart(self, node: str) -> tuple[bool, str]:
        kind, what = self.method(node)
        if kind == "launch":
            return self._relaunch(what)
        host = self.hosts[node]
        if self.runner is not None:
            code, output = self.runner(host, what, self.timeout)
        elif host.is_local:
            try:
                p = subprocess.run(["/bin/sh", "-c", what], capture_output=True, text=True, timeout=self.timeout,
                                   stdin=subprocess.DEVNULL)
                code, output = p.returncode, (p.stderr or p.stdout)
            except subprocess.TimeoutExpired:
                code, output = 124, f"timed out after {self.timeout:g} s"
        else:
            from launcher.runtimes.ssh import SshRuntime

            res = SshRuntime().run(host.model_dump(), ["sh", "-c", what], timeout=self.timeout)
            code, output = res.code, (res.stderr or res.stdout)
        return code == 0, f"exit {code}" + _tail(output)

    def _relaunch(self, recipe: str) -> tuple[bool, str]:
        code, output = self.launch(["down", recipe], self.timeout)
        if code != 0:
            return False, f"`launch down {recipe}` exit {code}" + _tail(output)
        code, output = self.launch(["up", recipe], self.up_timeout)
        if code != 0:
            return False, f"`launch down {recipe}` ok; `launch up {recipe}` exit {code}" + _tail(output)
        return True, f"`launch down {recipe}` then `launch up {recipe}`: ready" + _tail(output)


def _tail(output: str) -> str:
    text = (output or "").strip()
    return f": {text.splitlines()[-1]}" if text else ""
