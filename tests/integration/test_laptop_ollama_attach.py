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
