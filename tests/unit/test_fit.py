"""KV bytes per token and per-sequence state on real model configs, against hand-computed figures."""
from __future__ import annotations

from pathlib import Path

import pytest

from launcher.errors import InputError
from launcher.fit import GIB, MIB, dtype_bytes, kv_figures, weights_gib
from launcher.modelconfig import shape_from_config_path, shape_from_hf_config, load_json
from launcher.spec.shape import ModelShape

CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "configs"


def shape(name: str) -> ModelShape:
    return shape_from_config_path(CONFIGS / f"{name}.json")


def test_llama_3_1_8b_gqa():
    s = shape("llama-3.1-8b")
    assert (s.layers, s.kv_heads, s.head_dim, s.trained_context) == (32, 8, 128, 131072)
    # 32 layers x (128 + 128) x 8 heads x 2 B = 131,072 B/token
    f = kv_figures(s)
    assert f.full_bytes_per_token == 32 * 256 * 8 * 2 == 131072
    assert kv_figures(s, "fp8").full_bytes_per_token == 65536
    # TP 2: heads split, 65,536 per GPU; TP 16 > 8 heads: each GPU keeps one head, 16,384
    assert kv_figures(s, tp=2).per_gpu_bytes_per_token == 65536
    assert kv_figures(s, tp=16).per_gpu_bytes_per_token == 16384
    # a 131,072-token sequence: 16 GiB
    assert f.seq_bytes(131072) == 16 * GIB


def test_qwen3_coder_30b_a3b_and_llama_cpp_dtypes():
    s = shape("qwen3-coder-30b-a3b")
    assert (s.layers, s.kv_heads, s.head_dim, s.trained_context) == (48, 4, 128, 262144)
    assert kv_figures(s).full_bytes_per_token == 48 * 256 * 4 * 2 == 98304
    # q8_0 is 1.0625 B/element: 48 x 256 x 4 x 1.0625 = 52,224; q4_0 0.5625: 27,648
    assert kv_figures(s, "q8_0").full_bytes_per_token == 52224
    assert kv_figures(s, "q4_0").full_bytes_per_token == 27648
    # Ollama's estimate rounds to 1 and 0.5
    assert kv_figures(s, "q8_0", engine="ollama").full_bytes_per_token == 49152
    assert kv_figures(s, "q4_0", engine="ollama").full_bytes_per_token == 24576


def test_deepseek_v3_mla():
    s = shape("deepseek-v3")
    assert s.mla is not None and (s.mla.kv_lora_rank, s.mla.qk_rope_head_dim) == (512, 64)
    # one latent per layer: 61 x (512 + 64) x 2 B = 70,272 (no x2 for K and V, no heads)
    f = kv_figures(s)
    assert f.full_bytes_per_token == 61 * 576 * 2 == 70272
    assert kv_figures(s, "fp8").full_bytes_per_token == 35136
    assert kv_figures(s, "fp8_ds_mla").full_bytes_per_token == 61 * 656 == 40016
    # the latent is replicated on every GPU: TP does not divide it
    assert kv_figures(s, tp=8).per_gpu_bytes_per_token == 70272


def test_gemma_3_27b_sliding_window():
    s = shape("gemma-3-27b")  # text_config nested in a multimodal config
    # 62 layers, pattern 6: layers 5, 11, …, 59 are global (10), 52 are local with a 1,024 window
    assert (s.layers, s.sliding_layers, s.sliding_window, s.kv_heads, s.head_dim) == (62, 52, 1024, 16, 128)
    f = kv_figures(s)
    per_layer = 256 * 16 * 2  # 8,192 B/token per layer
    assert f.full_bytes_per_token == 10 * per_layer == 81920
    assert f.sliding_bytes_per_token == 52 * per_layer == 425984
    # 131,072 tokens: 10 GiB in the global layers + 52 layers x 1,024 tokens x 8 KiB = 416 MiB
    assert f.seq_bytes(131072) == 10 * GIB + 416 * MIB
    # a short sequence holds every token in every layer: 500 x 62 x 8,192
    assert f.seq_bytes(500) == 500 * 62 * per_layer


def test_gpt_oss_120b_alternating():
    s = shape("gpt-oss-120b")
    assert (s.layers, s.sliding_layers, s.sliding_window, s.kv_heads, s.head_dim) == (36, 18, 128, 8, 64)
    f = kv_figures(s)
    per_layer = 128 * 8 * 2  # (64 + 64) x 8 heads x 2 B = 2,048
    assert f.full_bytes_per_token == 18 * per_layer == 36864
    assert f.seq_bytes(131072) == 36864 * 131072 + 36864 * 128


def test_nemotron_3_super_hybrid():
    s = shape("nemotron-3-super")
    assert (s.layers, s.attention_layers, s.kv_heads, s.head_dim) == (88, 8, 2, 128)
    assert s.mamba is not None and s.mamba.layers == 40
    # 8 attention layers x 2 (K, V) x 2 heads x 128 x 2 B
    assert kv_figures(s).full_bytes_per_token == 8 * 2 * 2 * 128 * 2 == 8192
    f8 = kv_figures(s, "fp8")
    assert f8.full_bytes_per_token == 4096
    # SSM state: 40 layers x 128 heads x 64 head_dim x 128 state x 4 B (fp32) = 160 MiB
    ssm = 40 * 128 * 64 * 128 * 4
    assert ssm == 160 * MIB
    # conv state: 40 x (4 - 1) x (128 x 64 + 2 x 8 x 128) x 2 B = 2,457,600 B (~2.3 MiB)
    conv = 40 * 3 * (8192 + 2048) * 2
    assert f8.state_bytes_per_seq == ssm + conv
    # TP 2 (the seed): 2,048 B/token and half the state per GPU
    t2 = kv_figures(s, "fp8", tp=2)
    assert t2.per_gpu_bytes_per_token == 2048
    assert t2.per_gpu_state_bytes_per_seq == (ssm + conv) / 2
    # 256k context in fp8 is ~1 GiB of KV: the pool, not the context, is rarely the limit
    assert 4096 * 262144 == GIB


def test_shipped_recipe_shape_matches_the_config():
    from launcher.modelconfig import disagreements
    from launcher.spec.load import load_recipe

    nem = load_recipe("nemotron").spec
    assert disagreements(nem.shape, shape("nemotron-3-super")) == []
    assert kv_figures(nem.shape).full_bytes_per_token == 8192
    qwen = load_recipe("qwen3-coder-vllm").spec
    assert disagreements(qwen.shape, shape("qwen3-coder-30b-a3b")) == []
    # a wrong recipe is reported field by field
    wrong = nem.shape.model_copy(update={"kv_heads": 8})
    assert disagreements(wrong, shape("nemotron-3-super")) == ["kv_heads: recipe 8, config 2"]


def test_largest_context():
    s = shape("llama-3.1-8b")
    f = kv_figures(s)
    # 8 GiB for KV at 128 KiB/token = 65,536 tokens; 2 sessions 32,768 each
    assert f.largest_context(8 * GIB, 1) == 65536
    assert f.largest_context(8 * GIB, 2) == 32768
    assert f.largest_context(80 * GIB, 1, cap=131072) == 131072
    # hybrid: the per-sequence state comes off first: (1 GiB - 162.34 MiB) / 4,096 B
    n = kv_figures(shape("nemotron-3-super"), "fp8")
    assert n.largest_context(GIB, 1) == int((GIB - n.state_bytes_per_seq) / 4096) // 256 * 256
    assert n.largest_context(100 * MIB, 1) == 0  # not even the state fits


def test_dtypes_and_weights():
    assert dtype_bytes("bf16") == 2 and dtype_bytes("fp8") == 1
    assert dtype_bytes("q8_0") == 1.0625 and dtype_bytes("q4_0") == 0.5625
    with pytest.raises(InputError):
        dtype_bytes("fp3")
    assert weights_gib(ModelShape(layers=1, kv_heads=1, head_dim=1, weights_gib=12.5)) == 12.5
    # 8B params in bf16 = 14.9 GiB; an -FP8 name: 1 B/param
    assert weights_gib(ModelShape(layers=1, kv_heads=1, head_dim=1, params_b=8), "x") == pytest.approx(14.90, 0.01)
    assert weights_gib(ModelShape(layers=1, kv_heads=1, head_dim=1, params_b=8), "org/M-FP8") == pytest.approx(7.45, 0.01)


def test_hf_cache_lookup_and_bad_files(tmp_path, monkeypatch):
    from launcher.modelconfig import find_hf_config, weights_gib_near

    snap = tmp_path / "hub" / "models--meta-llama--Llama-3.1-8B" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text((CONFIGS / "llama-3.1-8b.json").read_text())
    (snap / "model.safetensors.index.json").write_text('{"metadata": {"total_size": 16060522496}}')
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    p = find_hf_config("meta-llama/Llama-3.1-8B")
    assert p == snap / "config.json"
    assert weights_gib_near(p) == pytest.approx(16060522496 / GIB)
    assert find_hf_config("meta-llama/absent") is None
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError):
        load_json(tmp_path / "bad.json")
    with pytest.raises(InputError):
        load_json(tmp_path / "missing.json")


def test_hf_config_without_head_dim():
    s = shape_from_hf_config({"num_hidden_layers": 2, "num_attention_heads": 8, "hidden_size": 512})
    assert (s.kv_heads, s.head_dim) == (8, 64)  # MHA, hidden / heads
