"""Readiness and API keys: a 401/403 from /v1/models (once /health is 200) is final, not "still
starting"; the timeout message carries the probe's last reason; the local runtime does not hand a
VLLM_API_KEY exported in this shell to a server whose recipe has no api_key.

Stands for real vLLM: with a key set (--api-key or env VLLM_API_KEY) only /v1 paths are protected,
/health stays open, a missing or wrong `Authorization: Bearer` gets 401 (../shared/reference/vllm.md)."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from launcher.errors import EXIT_SERVER
from launcher.sim import SimConfig, VllmSim
from launcher.watch import AuthRejected, ReadyProbe, watch_startup


@pytest.fixture
def keyed_sim():
    sim = VllmSim(SimConfig(quiet=True, api_key="server-secret-1234", served_model_name="m")).start()
    try:
        yield sim
    finally:
        sim.stop()


def _root(sim) -> str:
    return sim.url.removesuffix("/v1") if sim.url.endswith("/v1") else sim.url


def test_401_without_a_key_is_final_and_says_none_was_sent(keyed_sim):
    probe = ReadyProbe(_root(keyed_sim), "m", None, recipe="nemo")
    try:
        with pytest.raises(AuthRejected) as ei:
            probe()
    finally:
        probe.close()
    exc = ei.value
    assert exc.exit_code == EXIT_SERVER
    text = exc.render()
    assert _root(keyed_sim) + "/v1/models" in text and "401" in text
    assert "sent none" in text and "api_key" in exc.fix


def test_401_with_a_wrong_key_names_its_source_not_its_value(keyed_sim):
    probe = ReadyProbe(_root(keyed_sim), "m", "wrong-key-5678", key_source="env:MYKEY", recipe="nemo")
    try:
        with pytest.raises(AuthRejected) as ei:
            probe()
    finally:
        probe.close()
    text = ei.value.render()
    assert "env:MYKEY" in text and "refused" in text and "wrong-key-5678" not in text
    assert "launch down nemo" in text


def test_the_right_key_is_ready(keyed_sim):
    probe = ReadyProbe(_root(keyed_sim), "m", "server-secret-1234")
    try:
        end = time.monotonic() + 20
        while not probe() and time.monotonic() < end:  # the simulator may still be "loading"
            time.sleep(0.05)
        assert probe.why == "ready"
    finally:
        probe.close()


def test_a_401_stops_the_watch_at_once_instead_of_waiting_out_the_timeout(keyed_sim):
    probe = ReadyProbe(_root(keyed_sim), "m", None)
    t0 = time.monotonic()
    try:
        with pytest.raises(AuthRejected):
            watch_startup(iter([]), exited=lambda: None, probe=probe, timeout=600, slow_probe=0.05)
    finally:
        probe.close()
    assert time.monotonic() - t0 < 30


def test_timeout_message_carries_the_probes_last_reason():
    now = [1000.0]

    def clock():
        now[0] += 5.0
        return now[0]

    class Probe:
        why = "/v1/models lists ['other'], not m"

        def __call__(self):
            return False

    res = watch_startup(iter(["Starting vLLM API server 0 on http://0.0.0.0:8000"]), exited=lambda: None,
                        probe=Probe(), timeout=1800, clock=clock)
    assert not res.ready and res.failure.kind in ("timeout", "not-ready")
    assert any("last readiness check: /v1/models lists ['other'], not m" in d for d in res.failure.details)


def test_local_runtime_drops_an_inherited_server_key_when_the_recipe_has_none():
    from launcher.runtimes.local import inherited_env

    shell = {"PATH": "/bin", "VLLM_API_KEY": "exported-in-shell", "HOME": "/h"}
    no_key = SimpleNamespace(api_key=None, engine="vllm", recipe="r")
    assert "VLLM_API_KEY" not in inherited_env(no_key, shell)
    assert inherited_env(no_key, shell)["PATH"] == "/bin"
    with_key = SimpleNamespace(api_key=object(), engine="vllm", recipe="r")
    assert inherited_env(with_key, shell)["VLLM_API_KEY"] == "exported-in-shell"  # secrets override it anyway
