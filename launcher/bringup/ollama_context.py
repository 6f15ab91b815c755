"""Choosing Ollama's num_ctx: the recipe's number (checked against free memory) or `auto`, the
largest context whose KV cache fits free memory after the weights, times OLLAMA_NUM_PARALLEL, capped
by the trained length. Ollama's own estimate is used (engines.ollama.kv_bytes_per_token)."""
from __future__ import annotations

from dataclasses import dataclass

from launcher.engines import ollama as eng
from launcher.errors import InputError
from launcher.laptop_mem import gib

AUTO_FALLBACK = 32768  # when the model's shape is unknown


@dataclass
class ContextChoice:
    num_ctx: int
    reason: str
    bytes_per_token: float | None = None
    trained: int | None = None
    warnings: list[str] | None = None


def overhead_bytes(weights: float) -> float:
    """Compute graph and runtime buffers beside weights and KV: ~5% of the weights + 512 MiB (an
    estimate; Ollama measures its own after loading)."""
    return 0.05 * weights + 512 * 1024 ** 2


def choose(requested, *, model_info: dict, weights: float, free: float, free_how: str, parallel: int,
           kv_type: str | None, where: str) -> ContextChoice:
    """requested: an int or "auto". Raises InputError when the context cannot fit in memory."""
    bpt = eng.kv_bytes_per_token(model_info, kv_type)
    trained = eng.trained_context(model_info)
    over = overhead_bytes(weights)
    warnings: list[str] = []
    kv_note = f"KV {kv_type or 'f16'}, {parallel} parallel"
    if requested == "auto":
        if bpt is None:
            ctx = min(trained or AUTO_FALLBACK, AUTO_FALLBACK)
            warnings.append(f"model_info lacks the attention shape: cannot size the context from memory, "
                            f"using {ctx}; set ollama.context to a number to choose")
            return ContextChoice(ctx, "fallback (shape unknown)", None, trained, warnings)
        ctx = eng.fit_context(free, weights, bpt, parallel=parallel, trained=trained, overhead_bytes=over)
        if ctx >= 16384:
            ctx -= ctx % 8192  # a round figure (the derived model's name says it: -136k)
        if ctx < 2048:
            raise InputError(
                f"the model needs {gib(weights + over)} for weights and buffers, leaving no room for a "
                f"context in {gib(free)} free memory ({free_how})", where=where,
                fix="close other programs, pick a smaller model or quantization, or lower "
                    "OLLAMA_NUM_PARALLEL / set ollama.kv_cache_type: q8_0")
        capped = trained is not None and ctx == trained
        reason = (f"auto: {'the trained length ' if capped else 'largest that fits '}{ctx} "
                  f"({gib(free)} free, weights {gib(weights)}, {bpt / 1024:.0f} KiB/token, {kv_note})")
        return ContextChoice(ctx, reason, bpt, trained, warnings)
    ctx = int(requested)
    if trained and ctx > trained:
        warnings.append(f"ollama.context {ctx} is above the model's trained length {trained}: "
                        f"quality drops past it")
    if bpt is not None:
        need = weights + over + eng.kv_bytes(ctx, bpt, parallel)
        if need > free:
            fits = eng.fit_context(free, weights, bpt, parallel=parallel, trained=trained, overhead_bytes=over)
            raise InputError(
                f"ollama.context {ctx} needs about {gib(need)} (weights {gib(weights)} + KV "
                f"{gib(eng.kv_bytes(ctx, bpt, parallel))} for {kv_note} + buffers) but {gib(free)} is free "
                f"({free_how})", where=where,
                fix=(f"lower ollama.context to {fits} or less, or use `context: auto`" if fits
                     else "this model does not fit: pick a smaller model or quantization")
                + " (ollama.kv_cache_type: q8_0 halves the KV)")
    return ContextChoice(ctx, f"recipe ollama.context {ctx}", bpt, trained, warnings)
