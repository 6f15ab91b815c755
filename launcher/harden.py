"""`launch harden HOST`: keep a node reachable under memory pressure.

- sshd never chosen by the OOM killer: drop-in `/etc/systemd/system/ssh.service.d/oom.conf`
  (`sshd.service` on RHEL) with `[Service]\\nOOMScoreAdjust=-1000`.
- earlyoom kills early and picks the model server, never sshd/systemd:
  `--prefer '(^|/)(vllm|python3?)$' --avoid '(^|/)(init|sshd|sshd-session|systemd)$'`.
Each step checks first, so running it twice changes nothing (idempotent).
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Callable

OOM_DROPIN = "[Service]\nOOMScoreAdjust=-1000\n"
AVOID = "(^|/)(init|sshd|sshd-session|systemd)$"
PREFER = "(^|/)(vllm|python3?)$"
EARLYOOM_DEFAULTS = "/etc/default/earlyoom"
CAVEAT = ("Sessions forked by sshd inherit OOMScoreAdjust=-1000: a model server started by hand from an SSH "
          "shell would become unkillable by the OOM killer. Run the model server in its own systemd unit or "
          "container (launch does: docker or a detached process with its own oom score), never from an SSH shell.")


def earlyoom_args(prefer: str = PREFER) -> str:
    return shlex.join(["-m", "10", "-s", "10", "-r", "3600", "--avoid", AVOID, "--prefer", prefer])


@dataclass
class Step:
    name: str
    check: str  # exit 0 = already done
    apply: str
    why: str


def steps(family: str = "debian", prefer: str = PREFER) -> list[Step]:
    unit = "sshd.service" if family == "rhel" else "ssh.service"
    dropin = f"/etc/systemd/system/{unit}.d/oom.conf"
    install = "dnf install -y earlyoom" if family == "rhel" else "DEBIAN_FRONTEND=noninteractive apt-get install -y earlyoom"
    line = f"EARLYOOM_ARGS={shlex.quote(earlyoom_args(prefer))}"
    return [
        Step("sshd OOM drop-in",
             f"test \"$(cat {dropin} 2>/dev/null)\" = {shlex.quote(OOM_DROPIN.rstrip())}",
             f"sudo -n mkdir -p {shlex.quote(dropin.rsplit('/', 1)[0])} && printf %s {shlex.quote(OOM_DROPIN)} | "
             f"sudo -n tee {dropin} >/dev/null && sudo -n systemctl daemon-reload && sudo -n systemctl try-restart {unit}",
             f"{dropin}: sshd gets OOMScoreAdjust=-1000, so the OOM killer never takes SSH away"),
        Step("earlyoom installed", "command -v earlyoom >/dev/null", f"sudo -n sh -c {shlex.quote(install)}",
             "earlyoom acts before the kernel's OOM killer freezes the box"),
        Step("earlyoom prefers the model server, avoids sshd",
             f"grep -qxF {shlex.quote(line)} {EARLYOOM_DEFAULTS}",
             f"printf '%s\\n' {shlex.quote(line)} | sudo -n tee {EARLYOOM_DEFAULTS} >/dev/null && "
             "sudo -n systemctl restart earlyoom",
             f"{EARLYOOM_DEFAULTS}: {line}"),
        Step("earlyoom enabled", "systemctl is-enabled --quiet earlyoom && systemctl is-active --quiet earlyoom",
             "sudo -n systemctl enable --now earlyoom", "earlyoom runs now and after every boot"),
    ]


FAMILY_CHECK = "if [ -f /etc/redhat-release ] || [ -f /etc/fedora-release ]; then echo rhel; else echo debian; fi"

Runner = Callable[[str, float], tuple[int, str]]  # (shell script, timeout) -> (exit code, output)


def ssh_runner(host) -> Runner:
    """Run a script on an inventory Host (or a bare address) over the system ssh client."""
    def run(script: str, timeout: float) -> tuple[int, str]:
        from launcher.runtimes.ssh import SshRuntime

        spec = host.model_dump() if hasattr(host, "model_dump") else {"address": str(host)}
        res = SshRuntime().run(spec, ["sh", "-c", script], timeout=timeout)
        return res.code, (res.stdout + res.stderr)
    return run


def harden(run: Runner, *, apply: bool = False, prefer: str = PREFER, say: Callable[[str], None] = print) -> list[dict]:
    """Show each step (done / to do); with apply, do the ones not done and check them again."""
    code, out = run(FAMILY_CHECK, 30)
    family = out.strip().splitlines()[-1] if code == 0 and out.strip() else "debian"
    results = []
    for st in steps(family, prefer):
        done = run(st.check, 30)[0] == 0
        rec = {"step": st.name, "already": done, "why": st.why, "command": st.apply, "applied": False, "ok": done}
        if done:
            say(f"ok       {st.name}: already in place")
        elif not apply:
            say(f"to do    {st.name}: {st.why}\n         would run: {st.apply}")
        else:
            c, o = run(st.apply, 300)
            ok = c == 0 and run(st.check, 30)[0] == 0
            rec.update(applied=True, ok=ok, output=o.strip()[-300:])
            say(f"{'done' if ok else 'FAILED':8} {st.name}" + ("" if ok else f": exit {c}: {o.strip()[-200:]}"))
        results.append(rec)
    say(CAVEAT)
    if not apply and not all(r["already"] for r in results):
        say("Nothing was changed; run again with --apply (needs passwordless sudo on the host).")
    return results
