"""`launch fit`: shapes from GGUF / Ollama /api/show, the estimate on shipped recipes, warnings and
suggested flags, and the CLI's --json."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from launcher.fit import GIB, kv_figures
from launcher.fit_report import estimate
from launcher.modelconfig import read_gguf_metadata, shape_from_gguf, shape_from_ollama_show
from launcher.spec.load import load_inventory, load_recipe

CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "configs"


def _write_gguf(path: Path, arch: str, kv: dict) -> None:
    gguf = pytest.importorskip("gguf")  # a test dependency in pyproject
    import numpy as np

    w = gguf.GGUFWriter(str(path), arch)
    for key, value in kv.items():
        if isinstance(value, list):
            w.add_array(f"{arch}.{key}", value)
        elif isinstance(value, int):
            w.add_uint32(f"{arch}.{key}", value)
        else:
            w.add_string(f"{arch}.{key}", value)
    w.add_array("tokenizer.ggml.tokens", [f"t{i}" for i in range(10)])
    w.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_gguf_shape(tmp_path):
    p = tmp_path / "qwen3moe.gguf"
    _write_gguf(p, "qwen3moe", {"block_count": 48, "context_length": 262144, "embedding_length": 2048,
                                "attention.head_count": 32, "attention.head_count_kv": 4,
                                "attention.key_length": 128, "attention.value_length": 128})
    md = read_gguf_metadata(p)
    assert md["general.architecture"] == "qwen3moe"
    s = shape_from_gguf(p)
    assert (s.layers, s.kv_heads, s.head_dim, s.trained_context) == (48, 4, 128, 262144)
    assert kv_figures(s, "q8_0").full_bytes_per_token == 52224  # same as the HF config's figure
    assert s.weights_gib == pytest.approx(p.stat().st_size / GIB)


def test_gguf_not_a_gguf(tmp_path):
    from launcher.errors import InputError

    p = tmp_path / "x.gguf"
    p.write_bytes(b"nope")
    with pytest.raises(InputError):
        shape_from_gguf(p)


def test_ollama_show_model_info():
    show = {"capabilities": ["completion", "tools"], "model_info": {
        "general.architecture": "qwen3moe", "qwen3moe.block_count": 48, "qwen3moe.context_length": 262144,
        "qwen3moe.embedding_length": 2048, "qwen3moe.attention.head_count": 32,
        "qwen3moe.attention.head_count_kv": 4, "qwen3moe.attention.key_length": 128,
        "qwen3moe.attention.value_length": 128}}
    s = shape_from_ollama_show(show)
    assert kv_figures(s, "q8_0", engine="ollama").full_bytes_per_token == 48 * 256 * 4 * 1
    # a hybrid: per-layer head_count_kv, 0 marks recurrent layers (Ollama's rule)
    hybrid = {"model_info": {"general.architecture": "nemotron_h", "nemotron_h.block_count": 6,
                             "nemotron_h.attention.head_count": 32,
                             "nemotron_h.attention.head_count_kv": [0, 0, 2, 0, 0, 2],
                             "nemotron_h.attention.key_length": 128, "nemotron_h.embedding_length": 4096}}
    h = shape_from_ollama_show(hybrid)
    assert (h.attention_layers, h.kv_heads) == (2, 2)
    assert kv_figures(h).full_bytes_per_token == 2 * 256 * 2 * 2


def _recipe(name):
    return load_recipe(name).spec


def _inv(name):
    return load_inventory(name).spec


def test_nemotron_on_two_sparks():
    inv = _inv("dgx")
    rep = estimate(_recipe("nemotron"), inv, hf_cache="/nonexistent")
    assert rep.shape_source == "recipe shape:"
    assert rep.kv_bytes_per_token == 4096  # fp8 over the model
    assert rep.kv_bytes_per_token_per_gpu == 2048  # TP 2
    assert rep.state_bytes_per_sequence == pytest.approx(170229760)  # 160 MiB SSM + ~2.3 MiB conv
    mem = inv.hosts["spark-1"].gpus.memory_gib  # 128 GB of unified memory (119 GiB, or 128 as written)
    assert mem in (119, 128)
    assert rep.memory_gib == mem and rep.unified_memory and rep.tp == 2
    # mem x 0.85 - 75/2 - 4 % reserve: 128 -> 66.18 GiB per GPU, 119 -> 58.89
    assert rep.kv_budget_gib == pytest.approx(mem * 0.85 - 37.5 - 0.04 * mem)
    assert rep.fits is True and rep.warnings == []
    assert rep.largest_context == {"1": 262144, "2": 262144, "4": 262144}  # capped at trained length


def test_does_not_fit_warns_and_suggests_flags():
    r = _recipe("qwen3-coder-vllm")  # bf16 KV, max_model_len 131,072, weights 29 GiB
    rep = estimate(r, _inv("dgx"), memory_gib=40, hf_cache="/nonexistent")
    # 40 x 0.85 - 29 - 1.6 = 3.4 GiB: 3.4 GiB / 96 KiB per token = 37,137 tokens
    assert rep.kv_budget_gib == pytest.approx(3.4)
    assert rep.largest_context["1"] == int(3.4 * GIB / 98304) // 256 * 256
    assert rep.fits is False
    assert any("vllm.max_model_len 131,072 cannot fit" in w for w in rep.warnings)
    assert any(s.startswith("vllm.kv_cache_dtype: fp8") for s in rep.suggestions)
    assert any(s.startswith("vllm.max_model_len: ") for s in rep.suggestions)
    assert any(s.startswith("parallelism.tensor: 2") for s in rep.suggestions)  # dgx has 2 GPUs


def test_local_config_wins_and_disagreement_is_reported(tmp_path):
    cfg = json.loads((CONFIGS / "nemotron-3-super.json").read_text())
    cfg["num_key_value_heads"] = 8
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    rep = estimate(_recipe("nemotron"), _inv("dgx"), config_path=str(tmp_path / "config.json"))
    assert rep.kv_bytes_per_token == 4 * 4096  # the local config's 8 heads, not the recipe's 2
    assert rep.shape_disagreements == ["kv_heads: recipe 2, config 8"]
    assert any("disagrees" in w for w in rep.warnings)
    assert rep.weights_gib == 75  # filled in from the recipe: no safetensors beside the config


def test_hf_cache_config_found(tmp_path):
    snap = tmp_path / "hub" / "models--nvidia--NVIDIA-Nemotron-3-Super-120B-A12B-NVFP4" / "snapshots" / "r1"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text((CONFIGS / "nemotron-3-super.json").read_text())
    rep = estimate(_recipe("nemotron"), _inv("dgx"), hf_cache=str(tmp_path))
    assert rep.shape_source == str(snap / "config.json")
    assert rep.shape_disagreements == []


def test_cli_fit_json(launch):
    res = launch("fit", "nemotron", "--json")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["kv_bytes_per_token"] == 4096 and d["kv_bytes_per_token_per_gpu"] == 2048
    assert set(d["largest_context"]) == {"1", "2", "4"}
    res = launch("fit", "qwen3-coder-vllm", "--memory-gib", "40")
    assert res.returncode == 0, res.stderr
    assert "suggested flags" in res.stdout and "kv_cache_dtype: fp8" in res.stdout


@pytest.mark.parametrize("mml", ["auto", -1])
def test_max_model_len_auto_reports_what_vllm_will_pick(mml):
    r = _recipe("qwen3-coder-vllm")
    r = r.model_copy(update={"vllm": r.vllm.model_copy(update={"max_model_len": mml})})
    rep = estimate(r, _inv("dgx"), memory_gib=40, hf_cache="/nonexistent")
    one = rep.largest_context["1"]
    assert one and one < 131072  # 3.4 GiB of KV: far below the trained length
    # not judged against the trained length: vLLM fits the length to memory
    assert rep.warnings == [] and rep.fits is True
    assert rep.requested_context is None
    assert rep.notes == [f"vllm.max_model_len auto: vLLM will pick about {one:,} tokens (the largest "
                         f"context that fits one sequence)"]


def _one_gpu_per_node_memory(inv, memory_gib, counts):
    hosts = {}
    for (name, h), n in zip(inv.hosts.items(), counts):
        hosts[name] = h.model_copy(update={"gpus": h.gpus.model_copy(update={"count": n,
                                                                             "memory_gib": memory_gib})})
    return inv.model_copy(update={"hosts": hosts})


def test_tensor_suggestion_counts_the_recipes_nodes():
    r = _recipe("qwen3-coder-vllm")  # one node; dgx has one GPU on each of two nodes
    assert r.parallelism.nodes == 1
    rep = estimate(r, _inv("dgx"), memory_gib=40, hf_cache="/nonexistent")
    tp = [s for s in rep.suggestions if s.startswith("parallelism.tensor")]
    assert len(tp) == 1 and tp[0].startswith("parallelism.tensor: 2, parallelism.nodes: 2, parallelism.backend: ray")
    assert rep.gpus_available == 1  # the GPUs of the recipe's one node
    # two GPUs on the recipe's own node: tensor 2 alone
    inv = _one_gpu_per_node_memory(_inv("dgx"), 40, [2, 1])
    rep = estimate(r, inv, hf_cache="/nonexistent")
    tp = [s for s in rep.suggestions if s.startswith("parallelism.tensor")]
    assert len(tp) == 1 and tp[0].startswith("parallelism.tensor: 2 (") and "nodes" not in tp[0]
    # one GPU in the whole inventory: no tensor parallelism to suggest
    inv = _one_gpu_per_node_memory(_inv("dgx"), 40, [1, 0])
    rep = estimate(r, inv, hf_cache="/nonexistent")
    assert not [s for s in rep.suggestions if s.startswith("parallelism.tensor")]


def test_every_kv_cache_dtype_a_recipe_accepts_has_a_size_in_fit():
    """A recipe that loads must not make `launch fit` fail on its kv_cache_dtype (one list of names:
    spec/vllm_parsers.KV_CACHE_DTYPES; nvfp4_ds_mla's MLA layout is not modelled yet and says so)."""
    from launcher.errors import InputError
    from launcher.fit import dtype_bytes
    from launcher.spec.vllm_parsers import KV_CACHE_DTYPES

    unknown = []
    for name in sorted(KV_CACHE_DTYPES):
        try:
            assert 0 < dtype_bytes(name) <= 2.0
        except InputError:
            unknown.append(name)
    assert unknown == ["nvfp4_ds_mla"]
    assert dtype_bytes("nvfp4") < dtype_bytes("fp8") < dtype_bytes("auto")
