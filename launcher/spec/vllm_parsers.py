"""vLLM's tool-call and reasoning parser registry (2026 snapshot, ../shared/reference/vllm.md).

Older vLLM versions know fewer names; a recipe naming something outside this list is refused
before a 10-minute model load, not after it.
"""

TOOL_CALL_PARSERS = frozenset("""
deepseek_v3 deepseek_v31 deepseek_v32 deepseek_v4 cohere_command3 cohere_command4 ernie45
glm45 glm47 granite-20b-fc granite granite4 hermes poolside_v1 hunyuan_a13b hy_v3 internlm
jamba lfm2 kimi_k2 kimi_k3 llama3_json llama4_json llama4_pythonic longcat mimo minimax_m2
minimax_m3 minicpm5 mistral olmo3 openai phi4_mini_json pythonic qwen3_coder qwen3_xml
seed_oss step3 step3p5 inkling xlam gigachat3 functiongemma gemma4 apertus solar_open2
""".split())

REASONING_PARSERS = frozenset("""
deepseek_r1 deepseek_v3 deepseek_v4 poolside_v1 cohere_command3 cohere_command4 ernie45
gemma4 glm45 glm47 openai_gptoss granite holo2 hunyuan_a13b hy_v3 kimi_k2 kimi_k3 mimo
minimax_m2 minimax_m2_append_think minimax_m3 mistral nemotron_v3 olmo3 qwen3 seed_oss step3
step3p5 inkling solar_open2
""".split())

# `--kv-cache-dtype` choices: vLLM's `CacheDType` Literal (vllm/config/cache.py), the union over versions
# (0.10: auto, bfloat16, fp8, fp8_e4m3, fp8_e5m2, fp8_inc, fp8_ds_mla; later float16, the per-token-head,
# turboquant and nvfp4 kinds). An older vLLM may refuse a newer name, but at argument parsing, not after
# a model load.
KV_CACHE_DTYPES = frozenset("""
auto float16 bfloat16 fp8 fp8_e4m3 fp8_e5m2 fp8_inc fp8_ds_mla nvfp4_ds_mla turboquant_k8v4
turboquant_4bit_nc turboquant_k3v4_nc turboquant_3bit_nc int4_per_token_head int8_per_token_head
fp8_per_token_head nvfp4 nvfp4_4over6
""".split())

# Flags launch itself writes into `vllm serve` (or that decide where the server listens and what it is
# called, which readiness and the agent config rely on): flag -> what to write in the recipe instead.
# vLLM accepts `--max_model_len` for `--max-model-len` too; compare after replacing `_` with `-`.
_PP = "launch plans tensor parallelism only: use parallelism.tensor (and parallelism.nodes)"
MANAGED_FLAGS = {
    "--model": "set `model:`",
    "--served-model-name": "set `served_name:`",
    "--host": "launch always listens on 0.0.0.0; the port is `port:`",
    "--port": "set `port:`",
    "--tensor-parallel-size": "set `parallelism.tensor`",
    "-tp": "set `parallelism.tensor`",
    "--pipeline-parallel-size": _PP,
    "-pp": _PP,
    "--distributed-executor-backend": "set `parallelism.backend` (ray | mp)",
    "--nnodes": "set `parallelism.nodes`",
    "--node-rank": "launch numbers the nodes from `parallelism.nodes` and the inventory",
    "--master-addr": "launch uses the first inventory host (its `cluster_address`, else `address`)",
    "--headless": "launch runs every node but the first headless when `parallelism.nodes` > 1",
    "--max-model-len": "set `vllm.max_model_len`",
    "--gpu-memory-utilization": "set `vllm.gpu_memory_utilization`",
    "--kv-cache-dtype": "set `vllm.kv_cache_dtype`",
    "--tool-call-parser": "set `vllm.tool_call_parser`",
    "--tool-parser-plugin": "set `vllm.tool_parser_plugin`",
    "--enable-auto-tool-choice": "set `vllm.enable_auto_tool_choice: true`",
    "--reasoning-parser": "set `vllm.reasoning_parser`",
    "--reasoning-parser-plugin": "set `vllm.reasoning_parser_plugin`",
    "--api-key": "set `api_key: {env: VLLM_API_KEY}`",
}


def managed_flag(arg: str) -> str | None:
    """The managed flag an extra argument sets (`--port`, `--port=9000`, `--max_model_len 5`), or None."""
    if not arg.startswith("-"):
        return None
    name = arg.split("=", 1)[0]
    if name.startswith("--"):
        name = "--" + name[2:].replace("_", "-")
    return name if name in MANAGED_FLAGS else None
