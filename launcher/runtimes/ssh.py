"""SSH runtime: the system `ssh` client (so ~/.ssh/config, agents and ProxyJump work).

Start = a detached remote process: `nohup setsid sh -c WRAPPER LOG ARGV… > LOG 2>&1 &`, the log under
~/.cache/launcher/logs/ on the remote host, its exit status written to LOG.exit by the wrapper.
The pid and its /proc/<pid>/stat start time are recorded locally (state.py) so a reused pid is not
mistaken for ours. Remote command lines are built with shlex only, from constant scripts plus
arguments. Environment values (secrets included) never appear in any command line: they travel on
ssh's stdin as NAME=value lines that the remote shell exports before starting the process.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
from typing import Iterator

from launcher import state
from launcher.auth import redact
from launcher.errors import RuntimeFailure
from launcher.runtimes.base import CommandResult, ExitInfo, Handle, Runtime
from launcher.runtimes.common import check_env, exit_from_status, parse_stat
from launcher.runtimes.local import run_local

REMOTE_LOG_DIR = ".cache/launcher/logs"  # relative to the remote $HOME

# $1 inner script, $2 log dir (relative to $HOME), $3 log name, $4 the handle's description (one JSON
# line, no secrets); then the plan's argv. "$log.id" (pid, /proc stat line, description) lets `launch
# status INVENTORY` find the process from a machine without launch's notes.
START = r"""
inner=$1; d="$HOME/$2"; log="$d/$3.log"; meta=$4; shift 4
mkdir -p "$d" && chmod 700 "$d" || exit 90
while IFS= read -r l; do export "$l"; done
rm -f "$log.exit" "$log.id"; : > "$log"; chmod 600 "$log"
nohup setsid sh -c "$inner" "$log" "$@" > "$log" 2>&1 < /dev/null &
pid=$!
st=$(cat "/proc/$pid/stat")
echo "$pid"; echo "$log"; echo "$st"
(umask 077; printf '%s\n%s\n%s\n' "$pid" "$st" "$meta" > "$log.id.tmp" && mv -f "$log.id.tmp" "$log.id")
"""
# $1 log dir (relative to $HOME): every process launch started there, as its "$log.id" says.
FIND = r"""
for f in "$HOME/$1"/*.log.id; do
  [ -r "$f" ] || continue
  echo "id ${f%.id}"; cat "$f"; echo "end-id"
done
echo end
"""
# Runs detached; $0 is the log path, "$@" the argv.
INNER = '"$@"; echo $? > "$0.exit.tmp"; mv -f "$0.exit.tmp" "$0.exit"'
# $1 pid, $2 log
STATUS = r"""
[ -r "/proc/$1/stat" ] && echo "stat $(cat "/proc/$1/stat" 2>/dev/null)"
[ -r "$2.exit" ] && echo "exit $(cat "$2.exit")"
echo end
"""
# $1 pid (= its process group), $2 start time, $3 tenths of a second to wait before KILL, $4 its log.
# "Alive" ignores zombies (containers whose init does not reap them keep zombies around). The log's
# "$log.id" goes too, unless a newer process of the same name has replaced it.
STOP = r"""
log=$4
[ -n "$log" ] && [ "$(head -n 1 "$log.id" 2>/dev/null)" = "$1" ] && rm -f "$log.id"
st=$(cat "/proc/$1/stat" 2>/dev/null) || exit 0
rest=${st##*) }; set -- "$1" "$2" "$3" $rest
[ "${23}" = "$2" ] || exit 0
pg=$1; n=$3
members() {
  for f in /proc/[0-9]*/stat; do
    read -r l < "$f" 2>/dev/null || continue
    r=${l##*) }; set -- $r
    [ "$3" = "$pg" ] && [ "$1" != Z ] && return 0
  done
  return 1
}
kill -s TERM -- "-$pg" 2>/dev/null
i=0; while [ "$i" -lt "$n" ] && members; do sleep 0.1; i=$((i+1)); done
members && kill -s KILL -- "-$pg" 2>/dev/null
exit 0
"""
# $1 pid, $2 log, $3 tail count ("+1" = whole file)
FOLLOW = 'exec tail -n "$3" -F --pid="$1" "$2" 2>/dev/null'
CONNECT_HINT = ("check that `ssh {dest}` logs in without a prompt (BatchMode): the key in ssh-agent or "
                "ssh.identity_file in the inventory, and the host key in known_hosts")


def _handle_from_id(runtime: str, host: dict, log: str, lines: list[str]) -> Handle | None:
    """A Handle from a "$log.id" file's lines (pid, /proc stat line, JSON description); None if torn."""
    if len(lines) < 3 or not lines[0].strip().isdigit():
        return None
    st = parse_stat(lines[1])
    try:
        meta = json.loads(lines[2])
    except ValueError:
        return None
    if st is None or not isinstance(meta, dict) or not meta.get("recipe"):
        return None
    ref = {"pid": int(lines[0]), "start_time": st[1], "log": log, "ssh": host,
           **{k: meta[k] for k in ("endpoint", "served") if meta.get(k)}}
    return Handle(runtime=runtime, recipe=str(meta["recipe"]), plan_hash=str(meta.get("plan_hash", "")),
                  process=str(meta.get("process", "server")), role=str(meta.get("role", "")),
                  host=str(meta.get("host", "")), address=str(meta.get("address", host["address"])), ref=ref,
                  log_path=log)


def host_dest(host: dict) -> str:
    ssh = host.get("ssh") or {}
    user = f"{ssh['user']}@" if ssh.get("user") else ""
    return f"{user}{host.get('address', '?')}"


class SshRuntime(Runtime):
    name = "ssh"

    def __init__(self, *, ssh: str = "ssh", config_file: str | None = None, connect_timeout: float = 10,
                 log_dir: str = REMOTE_LOG_DIR):
        self.ssh = ssh
        self.config_file = config_file or os.environ.get("LAUNCHER_SSH_CONFIG") or None
        self.connect_timeout = connect_timeout
        self.log_dir = log_dir

    # -- the ssh command line ------------------------------------------------------------------
    def ssh_argv(self, host: dict) -> list[str]:
        """`ssh [options] DEST` for an inventory host dict ({address, ssh: {user, port, identity_file, options}})."""
        spec = host.get("ssh") or {}
        argv = [self.ssh]
        if self.config_file:
            argv += ["-F", self.config_file]
        argv += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(self.connect_timeout)}"]
        if spec.get("port") and int(spec["port"]) != 22:
            argv += ["-p", str(spec["port"])]
        if spec.get("identity_file"):
            argv += ["-i", os.path.expanduser(spec["identity_file"])]
        if spec.get("user"):
            argv += ["-l", spec["user"]]
        for opt in spec.get("options") or []:
            argv += ["-o", opt]
        return argv + [host["address"]]

    def _remote(self, host: dict, script: str, *args: str) -> str:
        return shlex.join(["sh", "-c", script, "sh", *args])

    def _ssh(self, host: dict, remote: str, *, timeout: float, input: str | None = None) -> CommandResult:
        return run_local([*self.ssh_argv(host), remote], timeout=timeout + self.connect_timeout, input=input)

    def _fail(self, host: dict, what: str, res: CommandResult) -> RuntimeFailure:
        err = redact(res.stderr.strip().splitlines()[-1]) if res.stderr.strip() else f"exit {res.code}"
        fix = CONNECT_HINT.format(dest=host_dest(host)) if res.code in (255, 124) else None
        return RuntimeFailure(f"{what}: {err}", where=f"ssh {host_dest(host)}", fix=fix)

    def check(self, host: dict, *, timeout: float = 10) -> str | None:
        """None when the host answers over ssh; else the error text (for preflight lists)."""
        res = self._ssh(host, "true", timeout=timeout)
        if res.code == 0:
            return None
        return self._fail(host, "cannot reach the host over ssh", res).render()

    # -- runtime contract ----------------------------------------------------------------------
    def start(self, proc, plan, secrets: dict[str, str]) -> Handle:
        host = {"address": proc.address, **(plan.hosts.get(proc.host) or {})}
        host = {"address": host["address"], "ssh": host.get("ssh") or {}}
        env = {**proc.env, **secrets}
        check_env(env, f"{plan.recipe}: process {proc.name}")
        name = f"{state.safe_name(plan.recipe)}-{state.safe_name(proc.name)}"
        meta = json.dumps({"recipe": plan.recipe, "plan_hash": plan.hash, "process": proc.name, "role": proc.role,
                           "host": proc.host, "address": proc.address, "endpoint": plan.endpoint,
                           "served": plan.served_name or ""}, separators=(",", ":"))
        remote = self._remote(host, START, INNER, self.log_dir, name, meta, *proc.argv)
        stdin = "".join(f"{k}={v}\n" for k, v in env.items())
        res = self._ssh(host, remote, timeout=30, input=stdin)
        lines = res.stdout.splitlines()
        parsed = parse_stat(lines[2]) if len(lines) >= 3 else None
        if res.code != 0 or parsed is None:
            raise self._fail(host, f"could not start {proc.name}", res)
        handle = Handle(runtime=self.name, recipe=plan.recipe, plan_hash=plan.hash, process=proc.name,
                        role=proc.role, host=proc.host, address=proc.address,
                        ref={"pid": int(lines[0]), "start_time": parsed[1], "log": lines[1], "ssh": host},
                        log_path=lines[1])
        state.record(handle)
        return handle

    def exit_info(self, handle: Handle) -> ExitInfo | None:
        host, pid, log = handle.ref["ssh"], handle.ref["pid"], handle.ref["log"]
        res = self._ssh(host, self._remote(host, STATUS, str(pid), log), timeout=15)
        if res.code != 0 or "end" not in res.stdout.split():
            raise self._fail(host, f"could not check {handle.process} (pid {pid})", res)
        status = None
        for line in res.stdout.splitlines():
            if line.startswith("stat "):
                st = parse_stat(line[5:])
                if st and st[1] == str(handle.ref["start_time"]) and st[0] not in ("Z", "X"):
                    return None
            elif line.startswith("exit "):
                try:
                    status = int(line[5:].strip())
                except ValueError:
                    pass
        if status is not None:
            return exit_from_status(status)
        return ExitInfo(reason="not running (exit status unknown: killed, or the host rebooted)")

    def stop(self, handle: Handle, timeout: float = 15.0) -> None:
        host = handle.ref["ssh"]
        remote = self._remote(host, STOP, str(handle.ref["pid"]), str(handle.ref["start_time"]),
                              str(max(1, int(timeout * 10))), str(handle.ref.get("log") or ""))
        res = self._ssh(host, remote, timeout=timeout + 10)
        if res.code != 0:
            raise self._fail(host, f"could not stop {handle.process} (pid {handle.ref['pid']})", res)
        state.forget(handle)

    def logs(self, handle: Handle, *, follow: bool = False, tail: int | None = None) -> Iterator[str]:
        host, log = handle.ref["ssh"], handle.ref["log"]
        count = "+1" if tail is None else str(tail)
        if follow:
            remote = self._remote(host, FOLLOW, str(handle.ref["pid"]), log, count)
        else:
            remote = shlex.join(["tail", "-n", count, log])
        p = subprocess.Popen([*self.ssh_argv(host), remote], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            for raw in p.stdout:
                yield raw.rstrip(b"\n").rstrip(b"\r").decode("utf-8", "replace")
        finally:
            if p.poll() is None:
                p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.stdout.close()

    def run(self, host: dict, argv: list[str], *, timeout: float = 10.0) -> CommandResult:
        """Run a short command over ssh. Timeout -> code 124; ssh's own failures -> code 255."""
        return self._ssh(host, shlex.join(argv), timeout=timeout)

    def find(self, recipe: str | None = None, *, hosts: dict[str, dict] | None = None) -> list[Handle]:
        """Recorded ssh processes, plus (with `hosts`: inventory name -> host dict) those each host's log
        directory describes, asked concurrently; a host that does not answer adds nothing. Dead ones
        included: check alive()/exit_info()."""
        out = state.load(recipe, runtime=self.name)
        if not hosts:
            return out
        from concurrent.futures import ThreadPoolExecutor

        seen = {(h.ref.get("ssh", {}).get("address"), h.ref.get("log"), h.ref.get("pid")) for h in out}
        items = list(hosts.items())
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(items)))) as pool:
            found = list(pool.map(lambda item: self._find_on(*item), items))
        for handles in found:
            for h in handles:
                key = (h.ref["ssh"]["address"], h.ref["log"], h.ref["pid"])
                if (recipe is None or h.recipe == recipe) and key not in seen:
                    seen.add(key)
                    out.append(h)
        return out

    def _find_on(self, name: str, host: dict) -> list[Handle]:
        host = {"address": host["address"], "ssh": host.get("ssh") or {}}
        res = self._ssh(host, self._remote(host, FIND, self.log_dir), timeout=15)
        if res.code != 0 or "end" not in res.stdout.split("\n"):
            return []
        out: list[Handle] = []
        block: list[str] | None = None
        log = ""
        for line in res.stdout.splitlines():
            if line.startswith("id "):
                block, log = [], line[3:]
            elif line == "end-id" and block is not None:
                h = _handle_from_id(self.name, host, log, block)
                if h is not None:
                    out.append(h)
                block = None
            elif block is not None:
                block.append(line)
        return out

