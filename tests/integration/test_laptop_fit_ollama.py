"""`launch fit RECIPE` for an Ollama recipe reads the model's shape from a running Ollama's /api/show
model_info (here the Ollama simulator, launcher/sim/ollama.py, whose model_info carries the documented
GGUF keys), never starting or pulling anything; offline it falls back to the recipe's `shape:` block."""
from __future__ import annotations

import json
import time

import pytest
import yaml

from conftest import free_port, run_launch
from launcher.fit import GIB
from launcher.sim.ollama import OllamaSim

# qwen3-coder:30b in the simulator: 48 blocks, 4 KV heads, key/value length 128 each, f16 cache:
# 48 x 4 x (128 + 128) x 2 B = 98,304 B/token; /api/tags size 18,556,701,210 B; trained 262,144.
SIM_BYTES_PER_TOKEN = 98304
SIM_WEIGHTS = 18556701210

SHAPE = {"architecture": "Qwen3MoeForCausalLM", "layers": 48, "kv_heads": 4, "head_dim": 128,
         "trained_context": 262144, "weights_gib": 17.7}


@pytest.fixture
def sim(isolated):
    s = OllamaSim(local=["qwen3-coder:30b"]).start()
    yield s
    s.stop()


def _recipe(tmp_path, name="fit-ollama", *, port=None, shape=None, model="qwen3-coder:30b", context=65536):
    body = {"name": name, "engine": "ollama", "model": model, "ollama": {"context": context}}
    if port is not None:
        body["port"] = port
    if shape is not None:
        body["shape"] = shape
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(body, sort_keys=False))
    return str(p)


def _fit(path, env=None):
    cp = run_launch("fit", path, "--json", "--memory-gib", "32", env=env or {})
    return cp, (json.loads(cp.stdout) if cp.returncode == 0 else None)


def _paths(sim):
    return [(m, p) for m, p, _ in sim.requests]


def test_no_shape_block_reads_the_running_ollama(sim, tmp_path):
    cp, rep = _fit(_recipe(tmp_path, port=sim.port))
    assert cp.returncode == 0, cp.stderr
    assert rep["shape_source"] == f"Ollama /api/show model_info at {sim.url}"
    assert rep["kv_bytes_per_token"] == SIM_BYTES_PER_TOKEN
    assert rep["trained_context"] == 262144
    assert rep["weights_gib"] == pytest.approx(SIM_WEIGHTS / GIB)  # from /api/tags, not a guess
    # 32 GiB x 0.9 - 17.28 GiB weights - 1.28 GiB reserve = 10.24 GiB of KV -> 111,872 tokens (256 steps)
    budget = 32 * 0.9 - SIM_WEIGHTS / GIB - 0.04 * 32
    assert rep["kv_budget_gib"] == pytest.approx(budget)
    assert rep["largest_context"]["1"] == int(budget * GIB / SIM_BYTES_PER_TOKEN) // 256 * 256
    # it only asked: nothing pulled, created or loaded
    assert set(_paths(sim)) <= {("POST", "/api/show"), ("GET", "/api/tags")}
    assert ("POST", "/api/show") in _paths(sim)
    assert sim.loaded == {}


def test_ollama_host_points_fit_at_the_server(sim, tmp_path):
    cp, rep = _fit(_recipe(tmp_path), env={"OLLAMA_HOST": f"0.0.0.0:{sim.port}"})
    assert cp.returncode == 0, cp.stderr
    assert rep["shape_source"] == f"Ollama /api/show model_info at http://127.0.0.1:{sim.port}"
    assert rep["kv_bytes_per_token"] == SIM_BYTES_PER_TOKEN


def test_disagreement_with_the_recipe_shape_is_reported(sim, tmp_path):
    cp, rep = _fit(_recipe(tmp_path, port=sim.port, shape={**SHAPE, "kv_heads": 8}))
    assert cp.returncode == 0, cp.stderr
    assert rep["shape_source"].startswith("Ollama /api/show")
    assert rep["shape_disagreements"] == ["kv_heads: recipe 8, config 4"]
    assert any("disagrees" in w and "kv_heads: recipe 8, config 4" in w for w in rep["warnings"])
    assert rep["kv_bytes_per_token"] == SIM_BYTES_PER_TOKEN  # the server's model wins


def test_offline_falls_back_to_the_recipe_shape_quickly(isolated, tmp_path):
    port = free_port()  # nothing listens here
    t0 = time.monotonic()
    cp, rep = _fit(_recipe(tmp_path, shape={**SHAPE, "kv_heads": 2}), env={"OLLAMA_HOST": f"127.0.0.1:{port}"})
    assert cp.returncode == 0, cp.stderr
    assert time.monotonic() - t0 < 30  # a refused connection, no waiting
    assert rep["shape_source"] == f"recipe shape: (no Ollama answers at http://127.0.0.1:{port})"
    assert rep["kv_bytes_per_token"] == 48 * 2 * 256 * 2  # the recipe's (here deliberately different) shape
    assert rep["weights_gib"] == 17.7


def test_model_not_pulled_falls_back_and_says_so(sim, tmp_path):
    cp, rep = _fit(_recipe(tmp_path, port=sim.port, model="qwen3:0.6b", shape=SHAPE))
    assert cp.returncode == 0, cp.stderr
    assert rep["shape_source"] == f"recipe shape: (the Ollama at {sim.url} has no model 'qwen3:0.6b' pulled)"
    assert ("POST", "/api/pull") not in _paths(sim)  # fit never pulls


def test_offline_without_a_shape_block_says_what_to_do(isolated, tmp_path):
    port = free_port()
    cp, _ = _fit(_recipe(tmp_path, port=port))
    assert cp.returncode == 2, cp.stdout + cp.stderr
    err = " ".join(cp.stderr.split())
    assert "no shape for model qwen3-coder:30b" in err and f"no Ollama answers at http://127.0.0.1:{port}" in err
    assert "ollama pull qwen3-coder:30b" in err and "shape:" in err
