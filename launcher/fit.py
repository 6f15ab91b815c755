"""Estimates before launch: KV bytes per token, per-sequence state, and the largest context that fits.

Formulas (../shared/reference/kv-capacity.md):
- GQA/MHA: per attention layer (key_len + value_len) x kv_heads x dtype bytes per token;
- MLA: per layer one latent of kv_lora_rank + qk_rope_head_dim elements (no x2, no heads);
  vLLM's fp8_ds_mla is 656 bytes per token per layer;
- sliding-window layers hold min(window, context) tokens;
- Mamba layers hold a fixed state per sequence: layers x heads x head_dim x state_size x bytes
  (fp32) + the conv state layers x (conv_kernel - 1) x (heads x head_dim + 2 x groups x state) x bytes;
- tensor parallelism splits KV heads (per GPU = total / TP when kv_heads >= TP; otherwise each GPU
  keeps one replicated head); MLA's latent is replicated on every GPU; Mamba heads are split.
Measured figures beat these: they choose flags before a start, nothing more.
"""
from __future__ import annotations

from dataclasses import dataclass

from launcher.errors import InputError
from launcher.spec.shape import ModelShape

GIB = 1024 ** 3
MIB = 1024 ** 2

DTYPE_BYTES = {
    "auto": 2.0, "bf16": 2.0, "bfloat16": 2.0, "fp16": 2.0, "f16": 2.0, "float16": 2.0, "half": 2.0,
    "fp32": 4.0, "f32": 4.0, "float32": 4.0, "float": 4.0,
    "fp8": 1.0, "fp8_e4m3": 1.0, "fp8_e5m2": 1.0, "fp8_inc": 1.0,
    "q8_0": 1.0625, "q4_0": 0.5625, "q4_1": 0.625, "q5_0": 0.6875, "q5_1": 0.75, "iq4_nl": 0.5625,
    # vLLM's newer kinds (spec/vllm_parsers.KV_CACHE_DTYPES): nvfp4 is 4-bit values plus an fp8 scale per
    # 16; the per-token-head and turboquant kinds by their bit widths (K and V averaged), scales not counted
    "nvfp4": 0.5625, "nvfp4_4over6": 0.5625, "int8_per_token_head": 1.0, "fp8_per_token_head": 1.0,
    "int4_per_token_head": 0.5, "turboquant_k8v4": 0.75, "turboquant_4bit_nc": 0.5,
    "turboquant_k3v4_nc": 0.4375, "turboquant_3bit_nc": 0.375,
}
OLLAMA_DTYPE_BYTES = {"f16": 2.0, "q8_0": 1.0, "q4_0": 0.5}  # Ollama's own estimate rounds these
FP8_DS_MLA_BYTES_PER_LAYER = 656


def dtype_bytes(name: str | None, *, engine: str | None = None) -> float:
    """Bytes per KV element for a cache dtype name (None/"auto" = the model's bf16)."""
    key = (name or "auto").lower()
    if engine == "ollama" and key in OLLAMA_DTYPE_BYTES:
        return OLLAMA_DTYPE_BYTES[key]
    if key == "fp8_ds_mla":
        return 1.0
    if key not in DTYPE_BYTES:
        raise InputError(f"unknown KV cache dtype '{name}'",
                         fix=f"use one of {', '.join(sorted(DTYPE_BYTES))}")
    return DTYPE_BYTES[key]


@dataclass
class KvFigures:
    """Per-token and per-sequence memory of one model at one cache dtype, whole model and per GPU."""

    dtype: str
    full_bytes_per_token: float  # layers that hold every token (the model's total)
    sliding_bytes_per_token: float  # layers that hold at most `window` tokens
    window: int | None
    state_bytes_per_seq: float  # Mamba SSM + conv state, fixed per sequence
    tp: int = 1
    kv_split: float = 1.0  # how many ways the attention KV is split across the TP group
    state_split: float = 1.0

    @property
    def per_gpu_bytes_per_token(self) -> float:
        return self.full_bytes_per_token / self.kv_split

    @property
    def per_gpu_sliding_bytes_per_token(self) -> float:
        return self.sliding_bytes_per_token / self.kv_split

    @property
    def per_gpu_state_bytes_per_seq(self) -> float:
        return self.state_bytes_per_seq / self.state_split

    def seq_bytes(self, ctx: int, *, per_gpu: bool = True) -> float:
        """Memory one sequence of ``ctx`` tokens needs (per GPU by default)."""
        full = self.per_gpu_bytes_per_token if per_gpu else self.full_bytes_per_token
        sliding = self.per_gpu_sliding_bytes_per_token if per_gpu else self.sliding_bytes_per_token
        state = self.per_gpu_state_bytes_per_seq if per_gpu else self.state_bytes_per_seq
        window = min(self.window, ctx) if self.window else ctx
        return full * ctx + sliding * window + state

    def largest_context(self, budget_bytes: float, sessions: int = 1, *, cap: int | None = None,
                        granularity: int = 256) -> int:
        """Largest context each of ``sessions`` sequences can have in ``budget_bytes`` (per GPU)."""
        avail = budget_bytes / sessions - self.per_gpu_state_bytes_per_seq
        if avail <= 0:
            return 0
        full, sliding = self.per_gpu_bytes_per_token, self.per_gpu_sliding_bytes_per_token
        ctx: float
        if self.window and sliding:
            if (full + sliding) * self.window >= avail:
                ctx = avail / (full + sliding)
            else:
                ctx = (avail - sliding * self.window) / full if full else float("inf")
        else:
            per = full + sliding
            ctx = avail / per if per else float("inf")
        if cap is not None:
            ctx = min(ctx, cap)
        if ctx == float("inf"):
            return cap or 0
        return int(ctx) // granularity * granularity if ctx >= granularity else int(ctx)


def kv_figures(shape: ModelShape, cache_dtype: str | None = None, *, tp: int = 1,
               engine: str | None = None, model_dtype_bytes: float = 2.0) -> KvFigures:
    """KV bytes per token and per-sequence state for ``shape`` at ``cache_dtype``, split by TP."""
    name = cache_dtype or "auto"
    b = dtype_bytes(name, engine=engine) if name != "auto" else model_dtype_bytes
    attn = shape.attention_layers if shape.attention_layers is not None else shape.layers
    sliding_layers = min(shape.sliding_layers, attn) if shape.sliding_window else 0
    full_layers = attn - sliding_layers
    if shape.mla is not None:
        if name.lower() == "fp8_ds_mla":
            per_layer = float(FP8_DS_MLA_BYTES_PER_LAYER)
        else:
            per_layer = (shape.mla.kv_lora_rank + shape.mla.qk_rope_head_dim) * b
        kv_split = 1.0  # the latent is replicated on every GPU
    else:
        v = shape.v_head_dim or shape.head_dim
        per_layer = (shape.head_dim + v) * shape.kv_heads * b
        kv_split = float(tp) if shape.kv_heads >= tp else float(shape.kv_heads)
    state = 0.0
    state_split = 1.0
    if shape.mamba is not None:
        m = shape.mamba
        ssm = m.layers * m.heads * m.head_dim * m.state_size * m.state_dtype_bytes
        conv_dim = m.heads * m.head_dim + 2 * m.n_groups * m.state_size
        conv = m.layers * (m.conv_kernel - 1) * conv_dim * m.conv_dtype_bytes
        state = ssm + conv
        state_split = float(tp) if m.heads >= tp else float(m.heads)
    return KvFigures(dtype=name, full_bytes_per_token=per_layer * full_layers,
                     sliding_bytes_per_token=per_layer * sliding_layers,
                     window=shape.sliding_window if sliding_layers else None,
                     state_bytes_per_seq=state, tp=tp, kv_split=kv_split, state_split=state_split)


# bytes per parameter by checkpoint format, for a shape that gives params_b but not weights_gib
PARAM_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "nvfp4": 0.5625, "mxfp4": 0.53,
               "awq": 0.56, "gptq": 0.56, "q8_0": 1.0625, "q4_k_m": 0.6, "q4_0": 0.5625}


def weights_gib(shape: ModelShape, model: str = "") -> float | None:
    """shape.weights_gib, else params_b x bytes per parameter guessed from the model name."""
    if shape.weights_gib is not None:
        return shape.weights_gib
    if not shape.params_b:
        return None
    lowered = model.lower()
    per = next((v for k, v in PARAM_BYTES.items() if k.replace("_", "") in lowered.replace("_", "").replace("-", "")),
               2.0)
    return shape.params_b * 1e9 * per / GIB


def activation_reserve_gib(memory_gib: float) -> float:
    """Activation peak + CUDA graphs + non-torch memory: a rough per-GPU reserve (4 %, at least 1 GiB)."""
    return max(1.0, 0.04 * memory_gib)


def kv_budget_gib(memory_gib: float, utilization: float, weights_per_gpu_gib: float) -> float:
    """Memory left for KV per GPU: memory x utilization - weights - reserve."""
    return memory_gib * utilization - weights_per_gpu_gib - activation_reserve_gib(memory_gib)
