"""Every capacity format launch reads, with verbatim sample lines (../shared/reference/*.md)."""
from __future__ import annotations

import pytest

from launcher.capacity_read import (
    VllmLogCapacity,
    cache_config_labels,
    capacity_from_llama,
    capacity_from_lmstudio,
    capacity_from_metrics,
    capacity_from_ollama_ps,
    capacity_from_vllm,
    max_model_len_from_models,
    trained_context_from_lmstudio,
)

PREFIX = "(EngineCore_DP0 pid=4711) INFO 05-14 10:11:12 [kv_cache_utils.py:1087] "


def test_vllm_older_two_lines():
    p = VllmLogCapacity()
    assert p.feed(PREFIX + "GPU KV cache size: 643,232 tokens")
    assert not p.complete  # no per-request length yet
    assert p.feed(PREFIX + "Maximum concurrency for 40,960 tokens per request: 15.70x")
    c = p.capacity
    # 15.70 x 40,960 = 643,072: agrees with the exact count up to rounding, so the exact count is kept
    assert (c.kv_tokens, c.max_model_len, c.max_concurrency) == (643232, 40960, 15.70)
    assert c.source == "vllm log"
    assert p.complete


def test_vllm_newer_single_line():
    line = (PREFIX + "GPU KV cache size: 1,048,576 tokens, Maximum concurrency for 262,144 tokens per "
            "request: 4.00x")
    c = VllmLogCapacity().feed_all([line]).capacity
    assert (c.kv_tokens, c.max_model_len, c.max_concurrency) == (1048576, 262144, 4.0)


def test_vllm_hybrid_trusts_concurrency_times_length():
    # A hybrid model's token count can be one KV group's blocks x block size; the concurrency line is
    # what actually fits: 2.45 x 262,144 = 642,253 tokens, not 1,310,720.
    lines = [
        "Setting attention block size to 1056 tokens to ensure that attention page size is >= mamba page size.",
        "GPU KV cache size: 1,310,720 tokens",
        "Maximum concurrency for 262,144 tokens per request: 2.45x",
    ]
    p = VllmLogCapacity().feed_all(lines)
    assert p.hybrid
    c = p.capacity
    assert c.kv_tokens == 642253
    assert c.max_model_len == 262144
    assert "concurrency x max_model_len" in c.source


def test_vllm_v0_blocks():
    c = VllmLogCapacity().feed_all(["INFO 05-14 10:11:12 executor_base.py:110] # GPU blocks: 573, # CPU blocks: 2048"]).capacity
    assert c.kv_tokens == 573 * 16
    assert "V0" in c.source
    c32 = VllmLogCapacity(block_size=32).feed_all(["# GPU blocks: 100, # CPU blocks: 0"]).capacity
    assert c32.kv_tokens == 3200


def test_vllm_v0_device_named_blocks():
    # older V0 builds name the device instead of "GPU"; the CPU swap blocks are not the KV pool
    p = VllmLogCapacity()
    assert p.feed("INFO 03-02 09:00:01 worker.py:240] # CUDA blocks: 40201, # CPU blocks: 2048")
    assert (p.gpu_blocks, p.cpu_blocks) == (40201, 2048)
    assert p.capacity.kv_tokens == 40201 * 16
    p = VllmLogCapacity()
    p.feed("# CPU blocks: 2048")
    assert p.capacity.kv_tokens is None


def test_vllm_kv_memory_and_auto_fit():
    p = VllmLogCapacity()
    p.feed("Available KV cache memory: 31.52 GiB")
    p.feed("Available KV cache memory: 512.00 MiB (process-scoped)")
    assert p.kv_memory_gib == pytest.approx(0.5)
    p.feed("Auto-fit max_model_len: reduced from 262144 to 98304 to fit in available GPU memory "
           "(3.00 GiB available for KV cache)")
    assert p.auto_fit == (262144, 98304)
    assert p.capacity.max_model_len == 98304


def test_vllm_unrelated_lines_ignored():
    p = VllmLogCapacity()
    assert not p.feed("Loading weights took 42.10 seconds")
    assert p.capacity.kv_tokens is None and p.capacity.source == ""


METRICS = """# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",cache_dtype="auto",gpu_memory_utilization="0.82",num_gpu_blocks="573",num_cpu_blocks="None"} 1.0
vllm:num_requests_running{model_name="m"} 0.0
"""

METRICS_NEW = ('vllm:cache_config_info{block_size="1056",cache_dtype="fp8",kv_cache_size_tokens="642253",'
               'mamba_block_size="262144",kv_cache_memory_bytes="30000000000",num_gpu_blocks="608"} 1.0\n')


def test_metrics_blocks_and_newer_tokens():
    assert cache_config_labels(METRICS)["gpu_memory_utilization"] == "0.82"
    assert capacity_from_metrics(METRICS).kv_tokens == 573 * 16
    assert capacity_from_metrics(METRICS_NEW).kv_tokens == 642253  # newer label wins over blocks
    assert capacity_from_metrics("vllm:num_requests_running 0\n").kv_tokens is None


MODELS = {"object": "list", "data": [{"id": "nvidia/nemotron-3-super", "object": "model", "created": 1,
                                      "owned_by": "vllm", "root": "nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-NVFP4",
                                      "parent": None, "max_model_len": 262144, "permission": []}]}


def test_v1_models_and_combination():
    assert max_model_len_from_models(MODELS) == 262144
    assert max_model_len_from_models(MODELS, "nvidia/nemotron-3-super") == 262144
    assert max_model_len_from_models(MODELS, "other") is None
    # attached server: no log, /metrics + /v1/models
    c = capacity_from_vllm(None, METRICS_NEW, MODELS)
    assert (c.kv_tokens, c.max_model_len) == (642253, 262144)
    assert c.max_concurrency == pytest.approx(2.45)
    assert "/metrics" in c.source and "/v1/models" in c.source
    # log wins for KV tokens over /metrics
    c = capacity_from_vllm(["GPU KV cache size: 643,232 tokens, Maximum concurrency for 262,144 tokens per "
                            "request: 2.45x"], METRICS, MODELS)
    assert c.kv_tokens == 643232 and c.max_model_len == 262144


def test_llama_props_and_slots():
    props = {"default_generation_settings": {"n_ctx": 65536, "n_predict": -1}, "total_slots": 2,
             "model_path": "/m.gguf", "chat_template_caps": {"supports_tool_calls": True}}
    # -c 131072 -np 2 without a unified cache: the slots partition the pool
    c = capacity_from_llama(props, ctx_total=131072)
    assert (c.max_model_len, c.slots, c.kv_tokens, c.max_concurrency) == (65536, 2, 131072, 2.0)
    c = capacity_from_llama(None, [{"id": 0, "n_ctx": 32768, "is_processing": False},
                                   {"id": 1, "n_ctx": 32768, "is_processing": True}], ctx_total=65536)
    assert (c.max_model_len, c.slots, c.kv_tokens) == (32768, 2, 65536)


def test_llama_unified_cache_is_one_shared_pool():
    # -c 65536 -np auto (4 slots, --kv-unified): every slot reports the whole n_ctx; the pool is 65,536,
    # not 4 x 65,536
    props = {"default_generation_settings": {"n_ctx": 65536}, "total_slots": 4}
    slots = [{"id": i, "n_ctx": 65536} for i in range(4)]
    c = capacity_from_llama(props, slots, ctx_total=65536)
    assert (c.max_model_len, c.slots, c.kv_tokens, c.max_concurrency) == (65536, 4, 65536, 1.0)
    assert "share" in c.source
    # a build whose /props carries the total beside the per-slot figure
    c = capacity_from_llama({"default_generation_settings": {"n_ctx": 65536}, "n_ctx": 65536,
                             "total_slots": 4})
    assert c.kv_tokens == 65536
    c = capacity_from_llama({"default_generation_settings": {"n_ctx": 16384}, "n_ctx": 65536,
                             "total_slots": 4})
    assert (c.max_model_len, c.kv_tokens) == (16384, 65536)
    # total unknown (an attached server): never count more than one pool
    c = capacity_from_llama(props, slots)
    assert c.kv_tokens == 65536 and "unified" in c.source
    # a -c that matches neither layout (a foreign server on the port): the safe figure
    assert capacity_from_llama(props, slots, ctx_total=32768).kv_tokens == 65536


def test_llama_ctx_total_from_argv():
    from launcher.capacity_read import llama_ctx_total

    assert llama_ctx_total(["llama-server", "-m", "m.gguf", "-c", "8192", "-np", "2"]) == 8192
    assert llama_ctx_total(["llama-server", "--ctx-size=4096"]) == 4096
    assert llama_ctx_total(["llama-server", "-m", "m.gguf"]) is None
    assert llama_ctx_total(["llama-server", "-c", "8192", "-np", "2", "-c", "16384"]) == 16384  # the last wins
    assert llama_ctx_total(None) is None
    assert capacity_from_llama({}).max_model_len is None


def test_ollama_ps():
    ps = {"models": [{"name": "qwen3-coder:30b", "model": "qwen3-coder:30b", "size": 20_000_000_000,
                      "size_vram": 20_000_000_000, "context_length": 32768, "expires_at": "2026-01-01T00:00:00Z"},
                     {"name": "llama3.1:latest", "model": "llama3.1:latest", "context_length": 4096}]}
    c = capacity_from_ollama_ps(ps, "qwen3-coder:30b")
    assert (c.max_model_len, c.kv_tokens) == (32768, 32768)
    assert capacity_from_ollama_ps(ps, "llama3.1").max_model_len == 4096  # implicit :latest
    assert capacity_from_ollama_ps(ps, "qwen3-coder:30b", parallel=2).kv_tokens == 65536
    assert capacity_from_ollama_ps(ps, "absent").max_model_len is None
    # Ollama older than 0.9.7: no context_length field
    assert capacity_from_ollama_ps({"models": [{"name": "m:1"}]}, "m:1").max_model_len is None


def test_lmstudio_v1_and_v0():
    v1 = {"models": [{"key": "qwen/qwen3-coder-30b", "type": "llm", "max_context_length": 262144,
                      "capabilities": {"trained_for_tool_use": True},
                      "loaded_instances": [{"id": "qwen/qwen3-coder-30b",
                                            "config": {"context_length": 65536, "parallel": 1,
                                                       "flash_attention": True}}]},
                     {"key": "other", "loaded_instances": []}]}
    c = capacity_from_lmstudio(v1, "qwen/qwen3-coder-30b")
    assert (c.max_model_len, c.kv_tokens) == (65536, 65536)
    assert capacity_from_lmstudio(v1, "other").max_model_len is None
    assert trained_context_from_lmstudio(v1, "qwen/qwen3-coder-30b") == 262144
    v0 = {"object": "list", "data": [
        {"id": "qwen/qwen3-coder-30b", "type": "llm", "state": "not-loaded", "max_context_length": 262144},
        {"id": "qwen/qwen3-coder-30b", "type": "llm", "state": "loaded", "max_context_length": 262144,
         "loaded_context_length": 49152}]}
    c = capacity_from_lmstudio(v0, "qwen/qwen3-coder-30b")
    assert c.max_model_len == 49152 and "v0" in c.source
