"""Ollama bring-up details against the simulator (launcher/sim/ollama.py): the model's per-layer shape
read with /api/show "verbose" (real Ollama elides arrays longer than 5 without it), an attached
server's own KV type / parallelism, and `ollama serve` started where OLLAMA_HOST points."""
from __future__ import annotations

import os
import stat
import sys

import pytest

from conftest import free_port
from laptop_helpers import Steps, plan_recipe
from launcher.bringup import ollama
from launcher.sim.ollama import OllamaSim


@pytest.fixture
def sim(isolated):
    s = OllamaSim().start()
    yield s
    s.stop()


def test_sim_elides_long_arrays_without_verbose(sim):
    import httpx

    quiet = httpx.post(f"{sim.url}/api/show", json={"model": "granite4:tiny-h"})
    assert quiet.status_code == 404  # not pulled yet: pull it through the API first
    with httpx.stream("POST", f"{sim.url}/api/pull", json={"model": "granite4:tiny-h"}, timeout=30) as r:
        r.read()
    quiet = httpx.post(f"{sim.url}/api/show", json={"model": "granite4:tiny-h"}).json()
    loud = httpx.post(f"{sim.url}/api/show", json={"model": "granite4:tiny-h", "verbose": True}).json()
    assert quiet["model_info"]["granitehybrid.attention.head_count_kv"] == []
    assert len(loud["model_info"]["granitehybrid.attention.head_count_kv"]) == 40


def test_auto_context_reads_per_layer_kv_heads(sim, tmp_path, monkeypatch):
    """A hybrid model lists head_count_kv per layer (4 attention layers of 40). Without "verbose" the
    array came back [] and was read as zero attention layers: 0 KiB/token and the trained 1M context."""
    monkeypatch.setenv("LAUNCHER_FREE_MEMORY", "8G")
    recipe, plan = plan_recipe(tmp_path, "t-hybrid", {"engine": "ollama", "model": "granite4:tiny-h",
                                                      "port": sim.port, "ollama": {"context": "auto"}})
    d = ollama.up(plan, recipe, progress=Steps())
    shows = [b for m, p, b in sim.requests if p == "/api/show"]
    assert shows and all(b.get("verbose") is True for b in shows)
    # 4 layers x 4 KV heads x (128 + 128) x 2 B = 8 KiB/token; room = 8 GiB - 3.9 GiB weights - buffers
    assert 262144 <= d.capacity.max_model_len < 1048576, d.capacity.max_model_len


def test_elided_kv_heads_are_an_unknown_shape_not_zero_layers():
    from launcher.bringup import ollama_context
    from launcher.sim.ollama import _granite_hybrid_info, elide_arrays

    show = {"model_info": elide_arrays(_granite_hybrid_info())}
    choice = ollama_context.choose("auto", show=show, weights=4e9, free=64 * 1024 ** 3, free_how="test",
                                   parallel=1, kv_type=None, where="r.yaml: ollama.context")
    assert choice.num_ctx == ollama_context.AUTO_FALLBACK and "shape unknown" in choice.reason
    assert choice.warnings and "cannot size the context" in choice.warnings[0]


def test_attached_server_is_sized_with_its_defaults_not_the_recipe_settings(sim, tmp_path, monkeypatch):
    """kv_cache_type / num_parallel reach only a server launch starts (through its environment); an
    attached server runs with its own, so the sizing assumes Ollama's defaults (f16, 1) and says so."""
    monkeypatch.setenv("LAUNCHER_FREE_MEMORY", "32G")
    warned = []
    monkeypatch.setattr("launcher.ui.warn", warned.append)
    recipe, plan = plan_recipe(tmp_path, "t-att", {"engine": "ollama", "model": "qwen3-coder:30b", "port": sim.port,
                                                   "ollama": {"context": "auto", "kv_cache_type": "q8_0",
                                                              "num_parallel": 2}})
    d = ollama.up(plan, recipe, progress=Steps())
    assert d.attached
    # f16 and 1 parallel in 32 GiB: 139,264 tokens (the figure test_laptop_ollama checks for a plain recipe);
    # q8_0 x 2 parallel would have given another context
    assert d.model == "qwen3-coder:30b-136k" and d.capacity.max_model_len == 139264
    assert d.capacity.slots == 1
    w = " ".join(warned)
    assert "ollama.kv_cache_type: q8_0 and ollama.num_parallel: 2 only apply to an Ollama server launch starts" in w
    assert sim.url in w


def test_attached_with_default_settings_does_not_warn(sim, tmp_path, monkeypatch):
    monkeypatch.setenv("LAUNCHER_FREE_MEMORY", "32G")
    warned = []
    monkeypatch.setattr("launcher.ui.warn", warned.append)
    recipe, plan = plan_recipe(tmp_path, "t-att2", {"engine": "ollama", "model": "qwen3-coder:30b",
                                                    "port": sim.port, "ollama": {"context": 65536}})
    ollama.up(plan, recipe, progress=Steps())
    assert not any("only apply to an Ollama server launch starts" in w for w in warned)


def test_ollama_serve_starts_where_ollama_host_points(isolated, tmp_path, monkeypatch):
    """No port in the recipe and OLLAMA_HOST set: nothing answers there, so launch starts `ollama serve`
    on that address (not on 11434) and waits there. The `ollama` here is a stand-in script serving the
    simulator on the port OLLAMA_HOST names, as `ollama serve` would."""
    from launcher import runtimes

    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "ollama"
    fake.write_text(f"#!/bin/sh\n[ \"$1\" = serve ] || exit 2\necho \"OLLAMA_HOST=$OLLAMA_HOST\"\n"
                    f"exec {sys.executable} -m launcher.cli.main sim ollama "
                    f"--port \"${{OLLAMA_HOST##*:}}\" --local qwen3:0.6b\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LAUNCHER_FREE_MEMORY", "64G")
    port = free_port()
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{port}")
    recipe, plan = plan_recipe(tmp_path, "t-host", {"engine": "ollama", "model": "qwen3:0.6b",
                                                    "ollama": {"context": 32768}})
    assert plan.endpoint.endswith(":11434")
    rt = runtimes.get("local")
    try:
        d = ollama.up(plan, recipe, progress=Steps(), timeout=30)
        assert d.attached is False and d.base_url == f"http://127.0.0.1:{port}/v1"
        assert d.capacity.max_model_len == 32768
    finally:
        for h in rt.find("t-host"):
            rt.stop(h, timeout=5)
    assert not any(rt.alive(h) for h in rt.find("t-host"))


def test_thinking_capability_marks_the_deployment_reasoning(sim, tmp_path, monkeypatch):
    monkeypatch.setenv("LAUNCHER_FREE_MEMORY", "64G")
    recipe, plan = plan_recipe(tmp_path, "t-think", {"engine": "ollama", "model": "qwen3:0.6b", "port": sim.port,
                                                     "ollama": {"context": 32768}})
    assert ollama.up(plan, recipe, progress=Steps()).reasoning is True  # capabilities list "thinking"
    recipe, plan = plan_recipe(tmp_path, "t-nothink", {"engine": "ollama", "model": "qwen3-coder:30b",
                                                       "port": sim.port, "ollama": {"context": 32768}})
    assert ollama.up(plan, recipe, progress=Steps()).reasoning is False
