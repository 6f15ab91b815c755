"""Ollama bring-up against the Ollama simulator (launcher/sim/ollama.py, built from Ollama's documented
API): attach, pull with progress, tools check, num_ctx from memory, derived model, /api/ps read-back,
and the bad inputs (no tools, unknown model, no server and no `ollama`, a context bigger than memory)."""
from __future__ import annotations

import os
import stat
import sys

import pytest

from conftest import free_port
from laptop_helpers import Steps, plan_recipe
from launcher.bringup import ollama
from launcher.errors import InputError, ServerFailed
from launcher.sim.ollama import OllamaSim


@pytest.fixture
def sim(isolated):
    s = OllamaSim().start()
    yield s
    s.stop()


def _recipe(tmp_path, port, **ollama_opts):
    model = ollama_opts.pop("model", "qwen3-coder:30b")
    body = {"engine": "ollama", "model": model, "port": port, "ollama": {"context": 65536, **ollama_opts}}
    return plan_recipe(tmp_path, "t-ollama", body)


def test_attach_pull_create_and_read_back(sim, tmp_path, monkeypatch):
    monkeypatch.setenv("LAUNCHER_FREE_MEMORY", "64G")
    recipe, plan = _recipe(tmp_path, sim.port)
    steps = Steps()
    d = ollama.up(plan, recipe, progress=steps)
    assert d.attached is True and d.version == "0.12.6"
    assert d.base_url == f"{sim.url}/v1"
    assert d.model == "qwen3-coder:30b-64k"
    assert d.capacity.max_model_len == 65536 and d.capacity.kv_tokens == 65536
    assert "/api/ps" in d.capacity.source
    # the pull streamed bytes: percent reaches 100 over the summed layers, and a layer's first line
    # (which has no `completed`) did not break the count
    pulls = steps.pulls()
    assert pulls[0].completed == 0 and pulls[-1].percent == 100.0
    assert pulls[-1].total == 18556701210 + 1482 + 182  # the three layers the simulator serves
    assert any(s.rate is not None for s in pulls)
    create = [b for m, p, b in sim.requests if p == "/api/create"]
    assert create == [{"model": "qwen3-coder:30b-64k", "from": "qwen3-coder:30b", "parameters": {"num_ctx": 65536}}]
    assert [p for m, p, _ in sim.requests].index("/api/create") < [p for m, p, _ in sim.requests].index("/api/generate")
    assert "qwen3-coder:30b-64k" in sim.loaded


def test_already_pulled_model_is_not_pulled_again(isolated, tmp_path, monkeypatch):
    monkeypatch.setenv("LAUNCHER_FREE_MEMORY", "64G")
    with OllamaSim(local=["qwen3-coder:30b"]) as s:
        recipe, plan = _recipe(tmp_path, s.port)
        ollama.up(plan, recipe, progress=Steps())
        assert "/api/pull" not in [p for _, p, _ in s.requests]


def test_auto_context_fits_free_memory(sim, tmp_path, monkeypatch):
    # qwen3-coder:30b: 48 layers x 4 KV heads x (128+128) x 2 B = 96 KiB/token; weights 17.3 GiB.
    monkeypatch.setenv("LAUNCHER_FREE_MEMORY", "32G")
    recipe, plan = _recipe(tmp_path, sim.port, context="auto")
    d = ollama.up(plan, recipe, progress=Steps())
    # room = 32 GiB - 17.28 GiB weights - (5% of weights + 0.5 GiB) = 13.4 GiB -> 146,431 tokens,
    # rounded down to 8k steps: 139264 (136k)
    assert d.model == "qwen3-coder:30b-136k" and d.capacity.max_model_len == 139264
    # two parallel sequences share the room: 73,215 tokens each -> 65536 (num_parallel reaches only a
    # server launch starts; this attached one is sized with Ollama's default, see test_laptop_ollama_attach)
    from launcher.bringup import ollama_context

    show = sim.requests[[p for _, p, _ in sim.requests].index("/api/show")][2]
    import httpx

    show = httpx.post(f"{sim.url}/api/show", json={**show, "verbose": True}).json()
    two = ollama_context.choose("auto", show=show, weights=18556701210, free=32 * 1024 ** 3, free_how="test",
                                parallel=2, kv_type=None, where="r.yaml")
    assert two.num_ctx == 65536


def test_auto_is_capped_by_the_trained_length(isolated, tmp_path, monkeypatch):
    monkeypatch.setenv("LAUNCHER_FREE_MEMORY", "256G")
    with OllamaSim() as s:
        recipe, plan = _recipe(tmp_path, s.port, context="auto", model="qwen3:0.6b")
        d = ollama.up(plan, recipe, progress=Steps())
    assert d.capacity.max_model_len == 40960 and d.model == "qwen3:0.6b-40k"


def test_ollama_steps_down_and_low_context_warns(isolated, tmp_path, monkeypatch):
    monkeypatch.setenv("LAUNCHER_FREE_MEMORY", "64G")
    with OllamaSim(max_context=32768) as s:
        recipe, plan = _recipe(tmp_path, s.port)
        warned = []
        monkeypatch.setattr("launcher.ui.warn", warned.append)
        d = ollama.up(plan, recipe, progress=Steps())
    assert d.capacity.max_model_len == 32768  # the /api/ps reading, not the 65536 asked for
    assert any("not the 65536 asked for" in w for w in warned)
    assert any("below 65536" in w and "tool calls" in w for w in warned)


def test_old_ollama_without_ps_context(isolated, tmp_path, monkeypatch):
    monkeypatch.setenv("LAUNCHER_FREE_MEMORY", "64G")
    with OllamaSim(ps_context=False, version="0.9.0") as s:
        recipe, plan = _recipe(tmp_path, s.port)
        d = ollama.up(plan, recipe, progress=Steps())
    assert d.capacity.max_model_len == 65536 and "reports no context_length" in d.capacity.source


def test_ollama_host_is_used_when_the_recipe_has_no_port(sim, tmp_path, monkeypatch):
    monkeypatch.setenv("LAUNCHER_FREE_MEMORY", "64G")
    monkeypatch.setenv("OLLAMA_HOST", f"0.0.0.0:{sim.port}")
    recipe, plan = plan_recipe(tmp_path, "t-env", {"engine": "ollama", "model": "qwen3:0.6b",
                                                   "ollama": {"context": 32768}})
    assert plan.endpoint.endswith(":11434")
    d = ollama.up(plan, recipe, progress=Steps())
    assert d.base_url == f"http://127.0.0.1:{sim.port}/v1" and d.attached


# ------------------------------------------------------------------------------ bad input

def test_model_without_tools_is_refused(sim, tmp_path, monkeypatch):
    monkeypatch.setenv("LAUNCHER_FREE_MEMORY", "64G")
    recipe, plan = _recipe(tmp_path, sim.port, model="gemma3:4b")
    with pytest.raises(InputError) as e:
        ollama.up(plan, recipe, progress=Steps())
    assert "cannot call tools" in e.value.what and "completion, vision" in e.value.what
    assert "tools" in e.value.fix
    assert "/api/create" not in [p for _, p, _ in sim.requests]


def test_unknown_model_reports_the_pull_error(sim, tmp_path):
    recipe, plan = _recipe(tmp_path, sim.port, model="qwen9-nosuch:1b")
    with pytest.raises(InputError) as e:
        ollama.up(plan, recipe, progress=Steps())
    assert "pull model manifest: file does not exist" in e.value.what
    assert e.value.where.endswith("/api/pull") and "ollama.com/library" in e.value.fix


def test_context_larger_than_memory(sim, tmp_path, monkeypatch):
    monkeypatch.setenv("LAUNCHER_FREE_MEMORY", "24G")
    recipe, plan = _recipe(tmp_path, sim.port)
    recipe.ollama.context = 262144
    with pytest.raises(InputError) as e:
        ollama.up(plan, recipe, progress=Steps())
    # By hand: 48 layers x 4 KV heads x (128 + 128) x 2 B = 98,304 B/token; 262,144 tokens = 24 GiB of KV.
    # need = weights 18,556,701,210 + buffers (5 % of weights + 512 MiB = 1,464,705,972.5) + KV 25,769,803,776
    #      = 45,791,210,958.5 B (42.6 GiB) against 24 GiB = 25,769,803,776 B free.
    # room for KV = 25,769,803,776 - 18,556,701,210 - 1,464,705,972.5 = 5,748,396,593.5 B
    #      -> 58,476 tokens -> 58,368 in 1k steps; q8_0 (49,152 B/token) -> 116,952 -> 116,736.
    what = e.value.what
    assert "ollama.context 262,144 needs about 42.6 GiB (45,791,210,958 bytes" in what
    assert "weights 17.3 GiB + KV 24.0 GiB" in what
    assert "only 24.0 GiB (25,769,803,776 bytes) is free (LAUNCHER_FREE_MEMORY)" in what
    assert "the largest context that fits is 58,368" in what
    assert "ollama.context" in e.value.where
    assert "lower ollama.context to 58368 or less" in e.value.fix and "context: auto" in e.value.fix
    assert "q8_0 halves the KV (up to 116,736)" in e.value.fix
    assert "/api/create" not in [p for _, p, _ in sim.requests]


def test_no_server_and_no_ollama_binary(isolated, tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    recipe, plan = _recipe(tmp_path, free_port())
    with pytest.raises(ServerFailed) as e:
        ollama.up(plan, recipe, progress=Steps())
    assert "`ollama` is not on PATH" in e.value.what and "cannot start one" in e.value.what
    assert "from the recipe's port" in e.value.what and e.value.where == plan.endpoint
    fix = e.value.fix
    assert "OLLAMA_HOST" in fix and "`ollama serve`" in fix  # what to do when it is installed elsewhere
    if sys.platform == "darwin":
        assert "Ollama app from https://ollama.com/download" in fix
    else:
        assert "`curl -fsSL https://ollama.com/install.sh | sh`" in fix


def test_no_server_names_ollama_host(isolated, tmp_path, monkeypatch):
    """No port in the recipe: launch looked where OLLAMA_HOST points, and says so."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    port = free_port()
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{port}")
    recipe, plan = plan_recipe(tmp_path, "t-env", {"engine": "ollama", "model": "qwen3:0.6b",
                                                   "ollama": {"context": 32768}})
    with pytest.raises(ServerFailed) as e:
        ollama.up(plan, recipe, progress=Steps())
    assert f"no Ollama server answers at http://127.0.0.1:{port} (from OLLAMA_HOST=127.0.0.1:{port})" in e.value.what
    assert f"launch looked at http://127.0.0.1:{port}" in e.value.fix
    monkeypatch.delenv("OLLAMA_HOST")
    recipe, plan = plan_recipe(tmp_path, "t-env2", {"engine": "ollama", "model": "qwen3:0.6b", "port": port,
                                                    "ollama": {"context": 32768}})
    with pytest.raises(ServerFailed) as e:
        ollama.up(plan, recipe, progress=Steps())
    assert "from the recipe's port" in e.value.what


def test_install_hints_per_system():
    from launcher.engines.ollama import install_hint, not_running_fix

    assert "`curl -fsSL https://ollama.com/install.sh | sh`" in install_hint("Linux")
    mac = install_hint("Darwin")
    assert "Ollama app" in mac and "https://ollama.com/download" in mac and "curl" not in mac
    fix = not_running_fix("http://127.0.0.1:11434", "the default: OLLAMA_HOST is unset", "Linux")
    assert "OLLAMA_HOST" in fix and "ollama serve" in fix and "install.sh" in fix


def test_starts_ollama_serve_when_nothing_answers(isolated, tmp_path, monkeypatch):
    """`ollama` here is a stand-in script that serves the simulator on OLLAMA_HOST (as `ollama serve`
    would): this exercises the local-runtime start and the bounded /api/version wait."""
    from launcher import runtimes

    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "ollama"
    fake.write_text(f"#!/bin/sh\n[ \"$1\" = serve ] || exit 2\nexec {sys.executable} -m launcher.cli.main sim ollama "
                    f"--port \"${{OLLAMA_HOST##*:}}\" --local qwen3:0.6b\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LAUNCHER_FREE_MEMORY", "64G")
    port = free_port()
    recipe, plan = _recipe(tmp_path, port, model="qwen3:0.6b", context=32768)
    rt = runtimes.get("local")
    try:
        d = ollama.up(plan, recipe, progress=Steps(), timeout=60)
        assert d.attached is False and d.base_url == f"http://127.0.0.1:{port}/v1"
        assert d.model == "qwen3:0.6b-32k" and d.capacity.max_model_len == 32768
        handles = [h for h in rt.find("t-ollama") if rt.alive(h)]
        assert len(handles) == 1
    finally:
        for h in rt.find("t-ollama"):
            rt.stop(h, timeout=5)
    assert not any(rt.alive(h) for h in rt.find("t-ollama"))
