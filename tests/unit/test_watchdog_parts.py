"""Probe parsing, the SSH banner probe, the journal, the systemd unit and hardening (fake runner)."""
from __future__ import annotations

import asyncio
import io
import json

from launcher.harden import CAVEAT, OOM_DROPIN, harden, steps
from launcher.watchdog.journal import Journal
from launcher.watchdog.probes import Prober, parse_metrics
from launcher.watchdog.systemd import install, unit_text

METRICS = """# HELP vllm:num_requests_running x
vllm:num_requests_running{engine="0",model_name="m"} 2.0
vllm:num_requests_running{engine="1",model_name="m"} 1.0
vllm:generation_tokens_total{engine="0",model_name="m"} 1234.0
vllm:prompt_tokens_total{model_name="m"} 5e3
"""


def test_parse_metrics_sums_labels():
    m = parse_metrics(METRICS)
    assert m["vllm:num_requests_running"] == 3.0 and m["vllm:generation_tokens_total"] == 1234.0
    assert m["vllm:prompt_tokens_total"] == 5000.0


def test_ssh_banner_probe_ok_silent_and_wrong():
    async def go():
        async def banner(reader, writer):
            writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n")
            await writer.drain()
            writer.close()

        async def silent(reader, writer):
            await asyncio.sleep(10)
            writer.close()
        s1 = await asyncio.start_server(banner, "127.0.0.1", 0)
        s2 = await asyncio.start_server(silent, "127.0.0.1", 0)
        p = Prober(timeout=2.0)  # a loaded CI machine must still see the banner in time
        ok = await p._timed("ssh", "x", p._ssh("127.0.0.1", s1.sockets[0].getsockname()[1]))
        hung = await p._timed("ssh", "x", p._ssh("127.0.0.1", s2.sockets[0].getsockname()[1]))
        s1.close()
        s2.close()
        return ok, hung
    ok, hung = asyncio.run(go())
    assert ok.ok and ok.detail.startswith("SSH-2.0-OpenSSH")
    assert not hung.ok and hung.detail == "timed out" and 1.9 < hung.elapsed < 6.0


def test_journal_jsonl_and_console_mask_secrets(tmp_path):
    from launcher.auth import register_secret

    register_secret("sekret-value-9")
    out = io.StringIO()
    j = Journal(tmp_path / "j.jsonl", console=out, wall=lambda: 0.0)
    j.write("probe", "n1", service_ok=True, reason="")
    j.write("decision", "n1", action="cycle", reason="wedged", sent="GET /cm?password=sekret-value-9")
    j.close()
    lines = [json.loads(x) for x in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert [e["event"] for e in lines] == ["probe", "decision"]
    assert "sekret-value-9" not in (tmp_path / "j.jsonl").read_text() + out.getvalue()
    assert "probe ok" not in out.getvalue() and "cycle: wedged" in out.getvalue()  # healthy probes stay quiet


def test_systemd_unit(tmp_path):
    text = unit_text(["/usr/bin/launch", "watchdog", "/etc/hosts dir/inv.yaml"], user_unit=False)
    assert "Restart=always" in text and "StartLimitBurst=5" in text and "StartLimitIntervalSec=600" in text
    assert "ExecStart=/usr/bin/launch watchdog '/etc/hosts dir/inv.yaml'" in text
    path, cmds = install(["launch", "watchdog", "inv"], unit_dir=tmp_path)
    assert path.read_text().startswith("[Unit]") and any("enable --now" in c for c in cmds)


class FakeHost:
    """A host as a dict of files plus installed/enabled flags; runs harden's scripts by matching them."""

    def __init__(self):
        self.files, self.installed, self.enabled, self.applied = {}, False, False, []

    def __call__(self, script, timeout):
        if "redhat-release" in script:
            return 0, "debian\n"
        for st in steps("debian"):
            if script == st.check:
                return (0 if self.done(st.name) else 1), ""
            if script == st.apply:
                self.applied.append(st.name)
                self.set(st.name)
                return 0, ""
        raise AssertionError(script)

    def done(self, name):
        return {"sshd OOM drop-in": "dropin" in self.files, "earlyoom installed": self.installed,
                "earlyoom prefers the model server, avoids sshd": "args" in self.files,
                "earlyoom enabled": self.enabled}[name]

    def set(self, name):
        if name == "sshd OOM drop-in":
            self.files["dropin"] = OOM_DROPIN
        elif name == "earlyoom installed":
            self.installed = True
        elif name.startswith("earlyoom prefers"):
            self.files["args"] = 1
        else:
            self.enabled = True


def test_harden_shows_applies_and_is_idempotent():
    host, said = FakeHost(), []
    shown = harden(host, apply=False, say=said.append)
    assert host.applied == [] and not any(r["already"] for r in shown)
    assert CAVEAT in said and any("--apply" in s for s in said)
    res = harden(host, apply=True, say=said.append)
    assert all(r["ok"] for r in res) and len(host.applied) == 4
    again = harden(host, apply=True, say=said.append)
    assert all(r["already"] for r in again) and len(host.applied) == 4  # nothing done twice


def test_harden_steps_content():
    deb, rhel = steps("debian"), steps("rhel")
    assert "/etc/systemd/system/ssh.service.d/oom.conf" in deb[0].apply
    assert "/etc/systemd/system/sshd.service.d/oom.conf" in rhel[0].apply
    assert "OOMScoreAdjust=-1000" in deb[0].apply
    assert "--avoid" in deb[2].apply and "sshd" in deb[2].apply and "--prefer" in deb[2].apply


def test_webhook_secret_path_never_in_journal_or_console(tmp_path):
    """Slack/Discord/Teams carry the token in the path: only scheme://host is ever shown."""
    from launcher.power.base import FakeClock
    from launcher.watchdog.budget import Alerter
    from launcher.watchdog.loop import Node, Watchdog
    from launcher.watchdog.probes import Target

    hooks = ["https://hooks.slack.com/services/T0AAA/B0BBB/Zk9sEcReTtOkEn1?x=1",
             "https://discord.com/api/webhooks/1234/DiScOrDsEcReT-2",
             "https://acme.webhook.office.com/webhookb2/TeAmSsEcReT3@x/IncomingWebhook/abc/def"]
    for hook in hooks:
        a = Alerter(webhook=hook)
        assert a.describe() == "webhook " + hook.split("/")[0] + "//" + hook.split("/")[2]
        out = io.StringIO()
        j = Journal(tmp_path / "j.jsonl", console=out, wall=lambda: 0.0, verbose=True)

        class P:
            now = 0

            async def probe_all(self, targets):
                return []

            async def reachable(self, r):
                pass

            async def aclose(self):
                pass
        wd = Watchdog([Node("n1", Target("n1", ["http://n1:8000"]))], journal=j, alerter=a, prober=P(),
                      clock=FakeClock())
        wd.dry_run = True  # the alert is journaled as "would alert via …", nothing is sent
        asyncio.run(wd.run(once=True))
        wd._alert(wd.nodes["n1"], "gave-up", "test")
        j.close()
        shown = (tmp_path / "j.jsonl").read_text() + out.getvalue()
        for secret in ("Zk9sEcReTtOkEn1", "DiScOrDsEcReT-2", "TeAmSsEcReT3", "/services/", "/api/webhooks/"):
            assert secret not in shown, (hook, secret)


def test_console_says_what_a_failed_power_device_and_a_paused_skip_mean():
    out = io.StringIO()
    j = Journal(None, console=out, wall=lambda: 0.0)
    j.write("cycle", "spark-2", ok=False, error="shelly gen2 http://192.168.1.52: reading the power state failed",
            switched=[], charged=False, retry_after_s=1200.0, member_of="spark-1")
    j.write("decision", "n1", action="none", skipped="paused", would="restart", reason="3 failures; paused")
    text = out.getvalue()
    assert "spark-2 (member of spark-1's deployment): power device FAILED: shelly" in text
    assert "nothing switched, not charged to the budget; next try after 1200 s" in text
    assert "n1: skipped (paused): 3 failures; paused" in text



def test_inventory_watchdog_restart_budget_and_stall_reach_the_policy(tmp_path):
    """`watchdog: {max_restarts, restart_window, stall}` in the inventory set the policy the loop uses."""
    from launcher.power.base import FakeClock
    from launcher.spec.load import load_inventory
    from launcher.watchdog import decide as D
    from launcher.watchdog.build import from_inventory
    from launcher.watchdog.journal import Journal

    inv = tmp_path / "hosts.yaml"
    inv.write_text("name: lab\nhosts:\n  n1:\n    address: 127.0.0.1\n    watch: {url: 'http://127.0.0.1:9'}\n"
                   "watchdog: {max_restarts: 1, restart_window: 600, stall: 120}\n")
    loaded = load_inventory(str(inv))
    wd = from_inventory(loaded.spec, policy=D.Policy(), where=loaded.where, state_dir=tmp_path / "wd",
                        journal=Journal(None, console=None), clock=FakeClock())
    assert (wd.policy.max_restarts, wd.policy.restart_window, wd.policy.stall) == (1, 600, 120)
