"""Preflight's fix hints: the ssh command a person can paste, as the inventory configures it."""
from __future__ import annotations

from types import SimpleNamespace

from launcher.preflight import check_host, ssh_command


def test_ssh_command_keeps_user_port_and_key():
    host = {"address": "spark1", "ssh": {"user": "ubuntu", "port": 2222, "identity_file": "~/.ssh/spark"}}
    assert ssh_command(host) == "ssh ubuntu@spark1 -p 2222 -i '~/.ssh/spark'"
    assert ssh_command({"address": "spark2", "ssh": {"port": 22}}) == "ssh spark2"


def test_unreachable_host_hint_names_the_user_and_port():
    class Rt:
        name = "ssh"

        def check(self, host, timeout):
            return "ssh: connect to host spark1 port 2222: Connection refused"

    plan = SimpleNamespace(runtime="ssh", processes=[SimpleNamespace(host="a", port=8000, argv=["vllm"],
                                                                     exec_in=None, env={}, docker_url=None)],
                           hosts={"a": {"address": "spark1", "ssh": {"user": "ubuntu", "port": 2222}}})
    [p] = check_host(plan, Rt(), "a")
    assert p.kind == "unreachable" and "`ssh ubuntu@spark1 -p 2222`" in p.fix
