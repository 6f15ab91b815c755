"""llama.cpp bring-up against a REAL llama-server (built by scripts/build_llama_server.sh; path in
LAUNCHER_TEST_LLAMA_SERVER) serving a tiny random-weight GGUF: start through the local runtime with
the key only in the environment, wait on /health, read n_ctx from /props and /slots, attach, stop."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from conftest import free_port
from laptop_helpers import Steps, plan_recipe
from runtime_helpers import still_running
from launcher import runtimes
from launcher.bringup import llamacpp
from launcher.errors import InputError, ServerFailed

KEY = "llama-test-key-5f2c9e"

pytestmark = pytest.mark.slow


def _binary() -> str:
    from llama_server import llama_server_binary

    return llama_server_binary()


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory) -> Path:
    from llama_server import tiny_model

    return tiny_model(tmp_path_factory, binary=_binary())


@pytest.fixture
def llama_env(isolated, tiny_gguf, monkeypatch):
    binary = _binary()
    monkeypatch.setenv("PATH", f"{Path(binary).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LAUNCHER_TEST_LLAMA_KEY", KEY)
    rt = runtimes.get("local")
    yield {"gguf": tiny_gguf, "binary": binary, "rt": rt}
    for h in rt.find():
        rt.stop(h, timeout=5)


def _recipe(tmp_path, gguf, port, **opts):
    body = {"engine": "llamacpp", "model": "tiny", "served_name": "tiny-served", "port": port,
            "api_key": {"env": "LAUNCHER_TEST_LLAMA_KEY"},
            "llamacpp": {"gguf": str(gguf), "ctx": 2048, "parallel": 2, "extra_args": ["-t", "1"], **opts}}
    return plan_recipe(tmp_path, "t-llama", body)


def _servers(port: int) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if cmd and Path(cmd[0]).name == "llama-server" and str(port) in cmd:
            out.append(p)
    return out


def _port_closed(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0)
        return False
    except httpx.HTTPError:
        return True


def test_start_measure_attach_stop(llama_env, tmp_path):
    port = free_port()
    recipe, plan = _recipe(tmp_path, llama_env["gguf"], port)
    steps = Steps()
    d = llamacpp.up(plan, recipe, progress=steps, timeout=120)
    assert d.attached is False and d.base_url == f"http://127.0.0.1:{port}/v1"
    assert d.model == "tiny-served" and d.api_key_env == "LLAMA_API_KEY"
    # -c 2048 -np 2 without a unified cache: each slot gets 1024, the pool holds 2048
    assert d.capacity.max_model_len == 1024 and d.capacity.slots == 2 and d.capacity.kv_tokens == 2048
    assert "ready" in steps.stages()

    procs = _servers(port)
    assert len(procs) == 1
    server = procs[0]
    assert not any(KEY in part for part in server.cmdline()), "the key must not be in argv"
    assert "--api-key" not in server.cmdline()
    assert server.environ().get("LLAMA_API_KEY") == KEY
    # and the server really enforces it
    ok = httpx.get(f"{d.base_url}/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=5)
    assert ok.status_code == 200 and ok.json()["data"][0]["id"] == "tiny-served"
    assert httpx.post(f"{d.base_url}/chat/completions", json={"messages": []}, timeout=5).status_code == 401

    again = llamacpp.up(plan, recipe, progress=Steps(), timeout=60)
    assert again.attached is True and again.capacity.max_model_len == 1024
    assert [p.pid for p in _servers(port)] == [server.pid]  # nothing restarted

    rt = llama_env["rt"]
    for h in rt.find("t-llama"):
        rt.stop(h, timeout=10)
    assert not still_running(server)
    assert _servers(port) == [] and _port_closed(port)


def test_attach_to_an_outside_llama_server(llama_env, tmp_path):
    port = free_port()
    env = {**os.environ, "LLAMA_API_KEY": KEY}
    proc = subprocess.Popen([llama_env["binary"], "-m", str(llama_env["gguf"]), "--host", "127.0.0.1",
                             "--port", str(port), "-c", "4096", "-np", "1", "-t", "1", "-a", "outside"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        recipe, plan = _recipe(tmp_path, llama_env["gguf"], port)
        for _ in range(200):  # until it listens (it may still say "Loading model": up() waits that out)
            if not _port_closed(port):
                break
            time.sleep(0.05)
        d = llamacpp.up(plan, recipe, progress=Steps(), timeout=60)
        assert d.attached is True and d.model == "outside" and d.capacity.max_model_len == 4096
        assert llama_env["rt"].find("t-llama") == []  # launcher owns nothing here
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_broken_gguf_fails_fast_with_the_log(llama_env, tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(4096))
    port = free_port()
    recipe, plan = _recipe(tmp_path, bad, port)
    t0 = time.monotonic()
    with pytest.raises(ServerFailed) as e:
        llamacpp.up(plan, recipe, progress=Steps(), timeout=120)
    assert time.monotonic() - t0 < 60  # returned when the process died, not at the timeout
    assert "exited" in e.value.what and e.value.log_tail
    assert not any(KEY in line for line in e.value.log_tail)
    assert _servers(port) == []


def test_missing_gguf_is_bad_input(llama_env, tmp_path):
    recipe, plan = _recipe(tmp_path, tmp_path / "nope.gguf", free_port())
    with pytest.raises(InputError) as e:
        llamacpp.up(plan, recipe, progress=Steps())
    assert "does not exist" in e.value.what and "llamacpp.gguf" in e.value.where
