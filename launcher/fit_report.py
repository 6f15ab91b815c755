"""`launch fit`: from a recipe, its inventory and the model's shape to a memory/context estimate.

The shape comes from, in order: ``--config PATH`` (config.json, its folder or a .gguf), a config.json
in the local HF cache, the recipe's GGUF file (llama.cpp), a running Ollama's /api/show model_info
(Ollama recipes; launcher.fit_ollama, never starts anything), then the recipe's ``shape:`` block. A
config found locally takes precedence over the recipe and any disagreement is reported.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from launcher import fit as F
from launcher import modelconfig as mc
from launcher.errors import InputError
from launcher.spec.shape import ModelShape

SESSIONS = (1, 2, 4)
AUTO_FIELD = "vllm.max_model_len auto"  # auto / -1: vLLM picks the largest length that fits
DEFAULT_UTILIZATION = 0.9  # vLLM's default gpu_memory_utilization


@dataclass
class ShapeFound:
    shape: ModelShape
    source: str
    disagreements: list[str] = field(default_factory=list)


def resolve_shape(recipe, *, config_path: str | None = None, hf_cache: str | None = None) -> ShapeFound:
    """The model's shape for ``recipe`` (see the module docstring for the order)."""
    found: ModelShape | None = None
    source = ""
    offline = ""  # why a live source (Ollama) gave nothing
    if config_path:
        found, source = mc.shape_from_config_path(config_path), str(config_path)
    elif recipe.engine in ("vllm", "openai"):
        p = mc.find_hf_config(recipe.model, hf_cache)
        if p is not None:
            found, source = mc.shape_from_config_path(p), str(p)
    elif recipe.engine == "llamacpp" and recipe.llamacpp:
        g = Path(recipe.llamacpp.gguf).expanduser()
        if g.is_file():
            found, source = mc.shape_from_gguf(g), str(g)
    elif recipe.engine == "ollama":
        from launcher.fit_ollama import shape_from_running_ollama

        live = shape_from_running_ollama(recipe)
        if live.shape is not None:
            found, source = live.shape, f"Ollama /api/show model_info at {live.url}"
        offline = live.note
    if found is None:
        if recipe.shape is None:
            pull = (f"; or start Ollama and `ollama pull {recipe.model}` so fit reads it from /api/show"
                    if recipe.engine == "ollama" else "")
            raise InputError(
                f"no shape for model {recipe.model}: the recipe has no `shape:` block and no local config "
                "was found" + (f" ({offline})" if offline else ""), where=f"recipe {recipe.name}",
                fix="add a `shape:` block to the recipe (layers, kv_heads, head_dim, …), or give "
                    "`--config PATH` (a config.json or .gguf)" + pull)
        return ShapeFound(recipe.shape, "recipe shape:" + (f" ({offline})" if offline else ""))
    diffs: list[str] = []
    if recipe.shape is not None:
        diffs = mc.disagreements(recipe.shape, found)
        fill = {k: getattr(recipe.shape, k) for k in ("weights_gib", "params_b")
                if getattr(found, k) is None and getattr(recipe.shape, k) is not None}
        if fill:
            found = found.model_copy(update=fill)
    return ShapeFound(found, source, diffs)


def _cache_dtype(recipe) -> tuple[str | None, float | None]:
    """(dtype name, bytes override) of the recipe's KV cache."""
    if recipe.engine == "vllm" and recipe.vllm:
        return recipe.vllm.kv_cache_dtype, None
    if recipe.engine == "llamacpp" and recipe.llamacpp:
        k, v = recipe.llamacpp.cache_type_k or "f16", recipe.llamacpp.cache_type_v or "f16"
        if k == v:
            return k, None
        return f"{k}/{v}", (F.dtype_bytes(k) + F.dtype_bytes(v)) / 2
    if recipe.engine == "ollama" and recipe.ollama:
        return recipe.ollama.kv_cache_type, None
    return None, None


def _requested_context(recipe, shape: ModelShape) -> tuple[int | None, int, str]:
    """(tokens one start must hold, sequences, the recipe field) for the engine's context setting."""
    e = recipe.engine
    if e == "vllm" and recipe.vllm:
        mml = recipe.vllm.max_model_len
        if isinstance(mml, int) and mml > 0:
            return mml, 1, "vllm.max_model_len"
        if mml == "auto" or isinstance(mml, int):  # auto / -1: vLLM fits the length to memory
            return None, 1, AUTO_FIELD
        return shape.trained_context, 1, "vllm.max_model_len (model default)"
    if e == "llamacpp" and recipe.llamacpp:
        return recipe.llamacpp.ctx, 1, "llamacpp.ctx"  # -c is the total over all slots
    if e == "ollama" and recipe.ollama and isinstance(recipe.ollama.context, int):
        return recipe.ollama.context, recipe.ollama.num_parallel, "ollama.context"
    if e == "lmstudio" and recipe.lmstudio and isinstance(recipe.lmstudio.context, int):
        return recipe.lmstudio.context, 1, "lmstudio.context"
    return None, 1, ""


@dataclass
class Hosts:
    gpus: int  # GPUs on the recipe's nodes (what tensor parallelism can use without more nodes)
    memory_gib: float | None  # per GPU (the pool for unified memory)
    unified: bool
    names: list[str]
    gpus_per_node: list[int] = field(default_factory=list)  # every GPU host of the inventory, in order


def hosts_memory(recipe, inventory) -> Hosts:
    """Per-GPU memory over the hosts the recipe runs on (the first `parallelism.nodes` with GPUs)."""
    if inventory is None:
        return Hosts(1, None, False, [])
    hosts = [(n, h) for n, h in inventory.hosts.items() if h.gpus.count > 0] or list(inventory.hosts.items())
    used = hosts[: max(1, recipe.parallelism.nodes)]
    mems = [h.gpus.memory_gib for _, h in used if h.gpus.memory_gib]
    return Hosts(gpus=sum(h.gpus.count for _, h in used), memory_gib=min(mems) if mems else None,
                 unified=any(h.gpus.unified_memory for _, h in used), names=[n for n, _ in used],
                 gpus_per_node=[h.gpus.count for _, h in hosts])


@dataclass
class FitReport:
    recipe: str
    engine: str
    model: str
    shape_source: str
    shape_disagreements: list[str]
    tp: int
    hosts: list[str]
    gpus_available: int
    memory_gib: float | None
    memory_source: str
    unified_memory: bool
    utilization: float
    reserve_gib: float | None
    weights_gib: float | None
    weights_per_gpu_gib: float | None
    kv_budget_gib: float | None  # per GPU
    kv_cache_dtype: str
    kv_bytes_per_token: float  # the model's total over layers holding every token
    kv_bytes_per_token_per_gpu: float
    sliding_window: int | None
    sliding_bytes_per_token: float
    sliding_bytes_per_token_per_gpu: float
    state_bytes_per_sequence: float
    state_bytes_per_sequence_per_gpu: float
    trained_context: int | None
    requested_context: int | None
    requested_field: str
    requested_sequences: int
    kv_tokens_estimate: int | None  # tokens of full context the per-GPU budget holds
    largest_context: dict[str, int | None]
    fits: bool | None
    warnings: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def _largest(fig: F.KvFigures, budget_gib: float | None, sessions: int, cap: int | None) -> int | None:
    if budget_gib is None:
        return None
    return fig.largest_context(max(0.0, budget_gib) * F.GIB, sessions, cap=cap)


def local_memory_gib() -> tuple[float, str]:
    """What a model may use on this machine now (free VRAM + available RAM; launcher.laptop_mem)."""
    from launcher.laptop_mem import GIB, free_bytes

    n, how = free_bytes()
    return n / GIB, f"this machine: {how}"


def estimate(recipe, inventory=None, *, config_path: str | None = None, memory_gib: float | None = None,
             hf_cache: str | None = None, probe_local: bool = False) -> FitReport:
    """Everything `launch fit` prints, computed offline. ``probe_local`` reads this machine's free
    memory when the inventory gives none and every host the recipe uses is local."""
    if hf_cache is None and inventory is not None:
        first = next(iter(inventory.hosts.values()))
        hf_cache = first.hf_cache if first.is_local else None
    sf = resolve_shape(recipe, config_path=config_path, hf_cache=hf_cache)
    shape = sf.shape
    tp = recipe.parallelism.tensor if recipe.engine == "vllm" else 1
    dtype, bytes_override = _cache_dtype(recipe)
    fig = F.kv_figures(shape, None if bytes_override else dtype, tp=tp, engine=recipe.engine)
    if bytes_override:  # llama.cpp with different K and V types
        scale = bytes_override / 2.0
        fig.full_bytes_per_token *= scale
        fig.sliding_bytes_per_token *= scale
        fig.dtype = dtype or "f16"
    hosts = hosts_memory(recipe, inventory)
    mem = memory_gib or hosts.memory_gib
    mem_source = "--memory-gib" if memory_gib else ("inventory gpus.memory_gib" if mem else "")
    if mem is None and probe_local and inventory is not None and all(
            inventory.hosts[n].is_local for n in hosts.names):
        mem, mem_source = local_memory_gib()
    util = (recipe.vllm.gpu_memory_utilization if recipe.vllm and recipe.vllm.gpu_memory_utilization
            else DEFAULT_UTILIZATION)
    w = F.weights_gib(shape, recipe.model)
    w_gpu = w / tp if w is not None else None
    reserve = F.activation_reserve_gib(mem) if mem else None
    budget = F.kv_budget_gib(mem, util, w_gpu or 0.0) if mem and w_gpu is not None else None
    cap = shape.trained_context
    largest = {str(s): _largest(fig, budget, s, cap) for s in SESSIONS}
    req, seqs, req_field = _requested_context(recipe, shape)
    kv_tokens = None
    if budget is not None and fig.per_gpu_bytes_per_token:
        kv_tokens = int(max(0.0, budget) * F.GIB // fig.per_gpu_bytes_per_token)
    rep = FitReport(
        recipe=recipe.name, engine=recipe.engine, model=recipe.model, shape_source=sf.source,
        shape_disagreements=sf.disagreements, tp=tp, hosts=hosts.names, gpus_available=hosts.gpus,
        memory_gib=mem, memory_source=mem_source, unified_memory=hosts.unified, utilization=util, reserve_gib=reserve,
        weights_gib=w, weights_per_gpu_gib=w_gpu, kv_budget_gib=budget, kv_cache_dtype=fig.dtype,
        kv_bytes_per_token=fig.full_bytes_per_token, kv_bytes_per_token_per_gpu=fig.per_gpu_bytes_per_token,
        sliding_window=fig.window, sliding_bytes_per_token=fig.sliding_bytes_per_token,
        sliding_bytes_per_token_per_gpu=fig.per_gpu_sliding_bytes_per_token,
        state_bytes_per_sequence=fig.state_bytes_per_seq,
        state_bytes_per_sequence_per_gpu=fig.per_gpu_state_bytes_per_seq,
        trained_context=shape.trained_context, requested_context=req, requested_field=req_field,
        requested_sequences=seqs, kv_tokens_estimate=kv_tokens, largest_context=largest, fits=None)
    _judge(rep, recipe, shape, fig, budget, hosts)
    return rep


def _judge(rep: FitReport, recipe, shape: ModelShape, fig: F.KvFigures, budget: float | None, hosts: Hosts) -> None:
    if sf_diffs := rep.shape_disagreements:
        rep.warnings.append(f"the recipe's shape: disagrees with {rep.shape_source}: " + "; ".join(sf_diffs)
                            + " (using the local config)")
    if rep.memory_gib is None:
        rep.warnings.append("host GPU memory unknown: set gpus.memory_gib in the inventory or pass --memory-gib")
        return
    if rep.weights_gib is None:
        rep.warnings.append("weights size unknown: set shape.weights_gib (or params_b) in the recipe")
        return
    if rep.requested_context and shape.trained_context and rep.requested_context > shape.trained_context:
        rep.warnings.append(f"{rep.requested_field} {rep.requested_context:,} is above the model's trained "
                            f"length {shape.trained_context:,}")
    if budget is None or budget <= 0:
        rep.fits = False
        rep.warnings.append(
            f"the weights ({rep.weights_per_gpu_gib:.1f} GiB per GPU) leave no memory for the KV cache: "
            f"{rep.memory_gib:g} GiB x {rep.utilization:g} - reserve {rep.reserve_gib:.1f} GiB")
        _suggest_tp(rep, recipe, shape, hosts)
        return
    req, seqs = rep.requested_context, rep.requested_sequences
    if rep.requested_field == AUTO_FIELD:
        # nothing to judge: vLLM sizes the length to the memory it finds (trained length at most)
        one = rep.largest_context["1"] or 0
        rep.fits = one > 0
        rep.notes.append(f"vllm.max_model_len auto: vLLM will pick about {one:,} tokens (the largest "
                         f"context that fits one sequence)")
        return
    if not req:
        rep.fits = True
        return
    need = seqs * fig.seq_bytes(req) / F.GIB
    rep.fits = need <= budget
    if rep.fits:
        return
    one = rep.largest_context["1"] or 0
    rep.warnings.append(f"{rep.requested_field} {req:,} cannot fit: {seqs} sequence(s) need {need:.1f} GiB of KV "
                        f"per GPU, {budget:.1f} GiB is left (largest context about {one:,})")
    if recipe.engine == "vllm":
        if (recipe.vllm.kv_cache_dtype or "auto").lower() in ("auto", "bf16", "fp16", "bfloat16", "float16"):
            f8 = F.kv_figures(shape, "fp8", tp=rep.tp, engine="vllm")
            rep.suggestions.append(f"vllm.kv_cache_dtype: fp8 (halves KV: largest context about "
                                   f"{f8.largest_context(budget * F.GIB, 1, cap=shape.trained_context):,})")
        if one:
            rep.suggestions.append(f"vllm.max_model_len: {one // 1024 * 1024 or one}")
        if rep.utilization < 0.9 and not rep.unified_memory:
            rep.suggestions.append("vllm.gpu_memory_utilization: 0.9 (more memory for the KV cache)")
        _suggest_tp(rep, recipe, shape, hosts)
    elif recipe.engine == "llamacpp":
        rep.suggestions.append(f"llamacpp.ctx: {one // 1024 * 1024 or one}")
        if (recipe.llamacpp.cache_type_k or "f16") in ("f16", "bf16", "f32"):
            rep.suggestions.append("llamacpp.cache_type_k/cache_type_v: q8_0 (with flash_attn: on)")
    elif recipe.engine == "ollama":
        rep.suggestions.append(f"ollama.context: {one // 1024 * 1024 or one}")
        if not recipe.ollama.kv_cache_type:
            rep.suggestions.append("ollama.kv_cache_type: q8_0")
    else:
        rep.suggestions.append(f"{rep.requested_field}: {one // 1024 * 1024 or one}")


def _suggest_tp(rep: FitReport, recipe, shape: ModelShape, hosts: Hosts) -> None:
    """Twice the tensor parallelism, when the GPUs are there: on the recipe's own nodes as is, else
    over more of the inventory's nodes (then the suggestion carries `nodes:` and a backend)."""
    if recipe.engine != "vllm" or rep.memory_gib is None or rep.weights_gib is None:
        return
    tp2 = rep.tp * 2
    nodes = max(1, recipe.parallelism.nodes)
    if hosts.gpus < tp2:
        # the fewest of the inventory's GPU hosts (in order, as the plan picks them) holding tp2 GPUs
        have, need = 0, 0
        for count in hosts.gpus_per_node:
            have, need = have + count, need + 1
            if have >= tp2:
                break
        if have < tp2:
            return
        nodes = need
    budget2 = F.kv_budget_gib(rep.memory_gib, rep.utilization, rep.weights_gib / tp2)
    fig2 = F.kv_figures(shape, recipe.vllm.kv_cache_dtype, tp=tp2, engine="vllm")
    largest = fig2.largest_context(max(0.0, budget2) * F.GIB, 1, cap=shape.trained_context)
    flags = f"parallelism.tensor: {tp2}"
    if nodes > max(1, recipe.parallelism.nodes):
        flags += f", parallelism.nodes: {nodes}, parallelism.backend: ray"
    rep.suggestions.append(f"{flags} (largest context about {largest:,})")


def gib(x: float | None) -> str:
    return "?" if x is None else f"{x:,.1f} GiB"


def human_bytes(b: float) -> str:
    if b >= F.GIB:
        return f"{b / F.GIB:,.2f} GiB"
    if b >= F.MIB:
        return f"{b / F.MIB:,.1f} MiB"
    return f"{b:,.0f} B" if b == math.floor(b) else f"{b:,.1f} B"
