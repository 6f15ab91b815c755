"""Choosing Ollama's num_ctx: the recipe's number (checked against free memory) or `auto`, the
largest context whose KV cache fits free memory after the weights, times OLLAMA_NUM_PARALLEL, capped
by the trained length. The shape comes from /api/show model_info (launcher.modelconfig) and the KV
bytes from launcher.fit with Ollama's own element sizes (f16 2, q8_0 1, q4_0 0.5)."""
from __future__ import annotations

from dataclasses import dataclass, field

from launcher.errors import InputError
from launcher.laptop_mem import gib

AUTO_FALLBACK = 32768  # when the model's shape is unknown


@dataclass
class ContextChoice:
    num_ctx: int
    reason: str
    trained: int | None = None
    warnings: list[str] = field(default_factory=list)


def overhead_bytes(weights: float) -> float:
    """Compute graph and runtime buffers beside weights and KV: ~5% of the weights + 512 MiB (an
    estimate; Ollama measures its own after loading)."""
    return 0.05 * weights + 512 * 1024 ** 2


def _shape(show: dict):
    from launcher.modelconfig import shape_from_ollama_show

    try:
        return shape_from_ollama_show(show)
    except (InputError, KeyError, TypeError, ValueError):
        return None


def _figures(show: dict, kv_type: str | None):
    from launcher.fit import kv_figures

    shape = _shape(show)
    if shape is None:
        return None, None
    return kv_figures(shape, kv_type or "f16", engine="ollama"), shape.trained_context


def choose(requested, *, show: dict, weights: float, free: float, free_how: str, parallel: int,
           kv_type: str | None, where: str) -> ContextChoice:
    """requested: an int or "auto". Raises InputError when the context cannot fit in memory."""
    figs, trained = _figures(show, kv_type)
    over = overhead_bytes(weights)
    room = free - weights - over
    kv_note = f"KV {kv_type or 'f16'}, {parallel} parallel"

    def largest() -> int:
        return figs.largest_context(max(0.0, room), parallel, cap=trained, granularity=1024) if room > 0 else 0

    if requested == "auto":
        if figs is None:
            ctx = min(trained or AUTO_FALLBACK, AUTO_FALLBACK)
            return ContextChoice(ctx, "fallback (shape unknown)", trained, [
                f"/api/show model_info lacks the attention shape: cannot size the context from memory, "
                f"using {ctx}; set ollama.context to a number to choose"])
        ctx = largest()
        if ctx >= 16384 and ctx != trained:
            ctx -= ctx % 8192  # a round figure (the derived model's name says it: -136k)
        if ctx < 2048:
            raise InputError(
                f"the model needs {gib(weights + over)} for weights and buffers, leaving no room for a "
                f"context in {gib(free)} free memory ({free_how})", where=where,
                fix="close other programs, pick a smaller model or quantization, or lower "
                    "OLLAMA_NUM_PARALLEL / set ollama.kv_cache_type: q8_0")
        capped = trained is not None and ctx == trained
        reason = (f"auto: {'the trained length' if capped else 'the largest that fits'} "
                  f"({gib(free)} free, weights {gib(weights)}, "
                  f"{figs.full_bytes_per_token / 1024:.0f} KiB/token, {kv_note})")
        return ContextChoice(ctx, reason, trained)
    ctx = int(requested)
    warnings = []
    if trained and ctx > trained:
        warnings.append(f"ollama.context {ctx} is above the model's trained length {trained}: "
                        f"quality drops past it")
    if figs is not None:
        kv = figs.seq_bytes(ctx, per_gpu=False) * parallel
        need = weights + over + kv
        if need > free:
            fits = largest()
            fits_text = (f"the largest context that fits is {fits:,}" if fits >= 2048
                         else "no useful context fits (under 2,048 tokens)")
            q8 = ""
            if (kv_type or "f16") == "f16" and room > 0:
                from launcher.fit import kv_figures

                half = kv_figures(_shape(show), "q8_0", engine="ollama")
                q8 = (f"; ollama.kv_cache_type: q8_0 halves the KV (up to "
                      f"{half.largest_context(room, parallel, cap=trained, granularity=1024):,})")
            raise InputError(
                f"ollama.context {ctx:,} needs about {gib(need)} ({need:,.0f} bytes: weights {gib(weights)} + "
                f"KV {gib(kv)} for {kv_note} + buffers {gib(over)}) but only {gib(free)} ({free:,.0f} bytes) "
                f"is free ({free_how}); {fits_text}", where=where,
                fix=(f"lower ollama.context to {fits} or less, or use `context: auto`" if fits >= 2048
                     else "this model does not fit: pick a smaller model or quantization, or free memory")
                + q8)
    return ContextChoice(ctx, f"recipe ollama.context {ctx}", trained, warnings)
