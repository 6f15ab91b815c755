"""LM Studio bring-up against the LM Studio simulator (launcher/sim/lmstudio.py, from LM Studio's REST
v1/v0 docs): load with the recipe's context and use what was really loaded (silently reduced)."""
from __future__ import annotations

import pytest

from conftest import free_port
from laptop_helpers import Steps, plan_recipe
from launcher.bringup import lmstudio
from launcher.errors import InputError, ServerFailed
from launcher.sim.lmstudio import LmStudioSim


def _recipe(tmp_path, port, context=65536, model="qwen/qwen3-coder-30b"):
    return plan_recipe(tmp_path, "t-lms", {"engine": "lmstudio", "model": model, "port": port,
                                           "lmstudio": {"context": context}})


def _paths(sim):
    return [p for _, p, _ in sim.requests]


def test_load_with_context(isolated, tmp_path):
    with LmStudioSim() as s:
        recipe, plan = _recipe(tmp_path, s.port)
        d = lmstudio.up(plan, recipe, progress=Steps())
        loads = [b for _, p, b in s.requests if p == "/api/v1/models/load"]
    assert loads == [{"model": "qwen/qwen3-coder-30b", "context_length": 65536}]
    assert d.model == "qwen/qwen3-coder-30b" and d.base_url == f"{s.url}/v1"
    assert d.capacity.max_model_len == 65536 and "loaded_instances" in d.capacity.source


@pytest.mark.parametrize("report_requested", [False, True])
def test_silent_reduction_is_read_back(isolated, tmp_path, monkeypatch, report_requested):
    """LM Studio loads 32768 when 65536 was asked for; with report_requested the load answer even
    echoes 65536, so only the models list tells the truth."""
    warned = []
    monkeypatch.setattr("launcher.ui.warn", warned.append)
    with LmStudioSim(max_loadable_context=32768, report_requested=report_requested) as s:
        recipe, plan = _recipe(tmp_path, s.port)
        d = lmstudio.up(plan, recipe, progress=Steps())
    assert d.capacity.max_model_len == 32768 and d.capacity.kv_tokens == 32768
    assert any("not the 65536 asked for" in w for w in warned)
    assert any("below 65536" in w for w in warned)


def test_already_loaded_with_another_context_is_reloaded(isolated, tmp_path):
    with LmStudioSim() as s:
        s.load("qwen/qwen3-coder-30b", 4096)  # e.g. a JIT load with the default context
        recipe, plan = _recipe(tmp_path, s.port)
        d = lmstudio.up(plan, recipe, progress=Steps())
        assert "/api/v1/models/unload" in _paths(s)
        assert list(s.loaded.values()) == [{"key": "qwen/qwen3-coder-30b", "context_length": 65536}]
    assert d.capacity.max_model_len == 65536


def test_v0_server_reads_loaded_context_length(isolated, tmp_path):
    """LM Studio 0.3.x: no /api/v1; the model is already loaded with the wanted context, read back
    through v0 `loaded_context_length` (rows repeat per id: the loaded row counts)."""
    with LmStudioSim(v1=False) as s:
        s.load("qwen/qwen3-coder-30b", 65536)
        recipe, plan = _recipe(tmp_path, s.port)
        d = lmstudio.up(plan, recipe, progress=Steps())
        assert "/api/v0/models" in _paths(s) and "/api/v1/models/load" not in _paths(s)
    assert d.capacity.max_model_len == 65536 and "v0" in d.capacity.source


SHAPE = {"layers": 48, "kv_heads": 4, "head_dim": 128, "trained_context": 262144}  # Qwen3-Coder-30B: 96 KiB/token


def _auto(tmp_path, port, shape=SHAPE):
    body = {"engine": "lmstudio", "model": "qwen/qwen3-coder-30b", "port": port, "lmstudio": {"context": "auto"}}
    if shape:
        body["shape"] = shape
    return plan_recipe(tmp_path, "t-lms", body)


def _asked(sim) -> list[int]:
    return [b["context_length"] for _, p, b in sim.requests if p == "/api/v1/models/load"]


def test_auto_is_sized_to_free_memory(isolated, tmp_path, monkeypatch):
    """auto asked for the full trained length (262,144) whatever the memory. Now: 32 GiB free, weights
    18,630,000,000 B (the models list's size_bytes), buffers 5 % + 512 MiB -> room 14,261,367,456 B
    / 98,304 B/token = 145,075 tokens -> 144,384 in 1k steps -> 139,264 in 8k steps."""
    monkeypatch.setenv("LAUNCHER_FREE_MEMORY", "32G")
    with LmStudioSim() as s:
        recipe, plan = _auto(tmp_path, s.port)
        d = lmstudio.up(plan, recipe, progress=Steps())
        assert _asked(s) == [139264]
    assert d.capacity.max_model_len == 139264


def test_auto_with_room_asks_for_the_trained_length_and_reads_back(isolated, tmp_path, monkeypatch):
    monkeypatch.setenv("LAUNCHER_FREE_MEMORY", "256G")
    with LmStudioSim(max_loadable_context=131072) as s:
        recipe, plan = _auto(tmp_path, s.port)
        d = lmstudio.up(plan, recipe, progress=Steps())
        assert _asked(s) == [262144]
    assert d.capacity.max_model_len == 131072  # silently reduced: the read-back wins


def test_auto_without_a_shape_asks_for_a_safe_figure_and_says_why(isolated, tmp_path, monkeypatch):
    warned = []
    monkeypatch.setattr("launcher.ui.warn", warned.append)
    with LmStudioSim() as s:
        recipe, plan = _auto(tmp_path, s.port, shape=None)
        lmstudio.up(plan, recipe, progress=Steps())
        assert _asked(s) == [32768]
    assert any("no `shape:` block" in w and "lmstudio.context" in w for w in warned)


def test_auto_with_no_room_for_the_weights(isolated, tmp_path, monkeypatch):
    monkeypatch.setenv("LAUNCHER_FREE_MEMORY", "16G")
    with LmStudioSim() as s:
        recipe, plan = _auto(tmp_path, s.port)
        with pytest.raises(InputError) as e:
            lmstudio.up(plan, recipe, progress=Steps())
        assert _asked(s) == []
    assert "leaving no room for a context in 16.0 GiB" in e.value.what and "lmstudio.context" in e.value.where


def test_model_not_downloaded(isolated, tmp_path):
    with LmStudioSim() as s:
        recipe, plan = _recipe(tmp_path, s.port, model="qwen/nosuch-7b")
        with pytest.raises(InputError) as e:
            lmstudio.up(plan, recipe, progress=Steps())
    assert "no model 'qwen/nosuch-7b'" in e.value.what and "qwen/qwen3-coder-30b" in e.value.what
    assert "lms get qwen/nosuch-7b" in e.value.fix


def test_no_server_and_no_lms(isolated, tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    recipe, plan = _recipe(tmp_path, free_port())
    with pytest.raises(ServerFailed) as e:
        lmstudio.up(plan, recipe, progress=Steps())
    assert "`lms` is not on PATH" in e.value.what and "lms bootstrap" in e.value.fix
