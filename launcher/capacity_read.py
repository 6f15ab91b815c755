"""Pure parsers: every way a server tells its KV capacity -> launcher.deployment.Capacity.

Facts: ../shared/reference/kv-capacity.md, vllm.md, laptop-engines.md. Nothing here does I/O; the
callers fetch the log lines / JSON / metrics text and hand them over.

vLLM wording drifts between versions; each variant below has a verbatim test line:
- newer, one line: ``GPU KV cache size: N tokens, Maximum concurrency for M tokens per request: C.CCx``
  (N = C x M)
- older, two lines: ``GPU KV cache size: 643,232 tokens`` + ``Maximum concurrency for 40,960 tokens per
  request: 15.70x``
- V0: ``# GPU blocks: N, # CPU blocks: M`` or, older, ``# CUDA blocks: N, …`` (tokens = N x block size,
  16 by default)
- ``Available KV cache memory: X GiB`` (kept as ``kv_memory_gib`` on the parser)
- ``Auto-fit max_model_len: reduced from A to B …`` (max_model_len = B)
For hybrid (Mamba + attention) and multi-group models the token count can be blocks x block size of
one group only: trust *Maximum concurrency x max_model_len* when the two disagree.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

from launcher.deployment import Capacity

_NUM = r"([0-9](?:[0-9,_]*[0-9])?)"  # a number never ends in its separator
_KV_SIZE = re.compile(r"GPU KV cache size:\s*" + _NUM + r"\s*tokens", re.I)
_CONCURRENCY = re.compile(
    r"Maximum concurrency for\s*" + _NUM + r"\s*tokens per request:\s*([0-9]+(?:\.[0-9]+)?)\s*x", re.I)
# "# GPU blocks: N, # CPU blocks: M" (V0); older builds name the device: "# CUDA blocks: N, # CPU blocks: M"
_V0_BLOCKS = re.compile(r"#\s*(?!CPU\b)\w+ blocks:\s*" + _NUM + r"(?:,\s*#\s*CPU blocks:\s*" + _NUM + ")?", re.I)
_KV_MEMORY = re.compile(r"Available KV cache memory:\s*([0-9]+(?:\.[0-9]+)?)\s*(GiB|GB|MiB|MB)", re.I)
_AUTO_FIT = re.compile(r"Auto-fit max_model_len:\s*reduced from\s*" + _NUM + r"\s*to\s*" + _NUM, re.I)
_MAX_SEQ_LEN = re.compile(r"max_seq_len=" + _NUM)
_BLOCK_SIZE_HYBRID = re.compile(r"Setting attention block size to\s*" + _NUM + r"\s*tokens", re.I)


def _int(text: str) -> int:
    return int(text.replace(",", "").replace("_", ""))


def _consistent(kv_tokens: int, concurrency: float, max_len: int) -> bool:
    """Whether N agrees with C x M up to the rounding of C to two decimals."""
    return abs(kv_tokens - concurrency * max_len) <= 0.006 * max_len + 1


class VllmLogCapacity:
    """Incremental reader of vLLM start-up log lines; ``.capacity`` is the best figure so far.

    >>> p = VllmLogCapacity()
    >>> p.feed("GPU KV cache size: 643,232 tokens")
    >>> p.feed("Maximum concurrency for 40,960 tokens per request: 15.70x")
    >>> p.capacity.kv_tokens, p.capacity.max_model_len
    (643232, 40960)
    """

    def __init__(self, *, block_size: int = 16):
        self.block_size = block_size
        self.kv_tokens_line: int | None = None  # N from "GPU KV cache size: N tokens"
        self.concurrency: float | None = None  # C from "Maximum concurrency ...: Cx"
        self.concurrency_len: int | None = None  # M from "... for M tokens per request"
        self.gpu_blocks: int | None = None  # V0
        self.cpu_blocks: int | None = None  # V0
        self.kv_memory_gib: float | None = None
        self.auto_fit: tuple[int, int] | None = None  # (from, to)
        self.hybrid = False  # saw the hybrid attention block-size line
        self.lines_matched = 0

    def feed(self, line: str) -> bool:
        """Read one log line; True when it carried a capacity figure."""
        hit = False
        m = _KV_SIZE.search(line)
        if m:
            self.kv_tokens_line = _int(m.group(1))
            hit = True
        m = _CONCURRENCY.search(line)
        if m:
            self.concurrency_len = _int(m.group(1))
            self.concurrency = float(m.group(2))
            hit = True
        m = _V0_BLOCKS.search(line)
        if m:
            self.gpu_blocks = _int(m.group(1))
            self.cpu_blocks = _int(m.group(2)) if m.group(2) else None
            hit = True
        m = _KV_MEMORY.search(line)
        if m:
            value = float(m.group(1))
            unit = m.group(2).lower()
            self.kv_memory_gib = value / 1024 if unit in ("mib", "mb") else value
            hit = True
        m = _AUTO_FIT.search(line)
        if m:
            self.auto_fit = (_int(m.group(1)), _int(m.group(2)))
            hit = True
        m = _BLOCK_SIZE_HYBRID.search(line)
        if m:
            self.hybrid = True
            hit = True
        if hit:
            self.lines_matched += 1
        return hit

    def feed_all(self, lines: Iterable[str]) -> "VllmLogCapacity":
        for line in lines:
            self.feed(line)
        return self

    @property
    def complete(self) -> bool:
        """The KV pool and the per-request length are both known."""
        c = self.capacity
        return c.kv_tokens is not None and c.max_model_len is not None

    @property
    def capacity(self) -> Capacity:
        max_len = self.concurrency_len
        if max_len is None and self.auto_fit:
            max_len = self.auto_fit[1]
        kv: int | None = None
        source = "vllm log"
        exact = self.kv_tokens_line
        if exact is None and self.gpu_blocks is not None:
            exact = self.gpu_blocks * self.block_size
            source = f"vllm log (V0: {self.gpu_blocks} GPU blocks x {self.block_size})"
        if self.concurrency is not None and self.concurrency_len:
            product = int(round(self.concurrency * self.concurrency_len))
            if exact is not None and _consistent(exact, self.concurrency, self.concurrency_len):
                kv = exact  # exact, and agrees with C x M
            else:
                # hybrid / multi-group: blocks x block size counts one group; C x M is what fits
                kv = product
                source = "vllm log (concurrency x max_model_len)"
        elif exact is not None:
            kv = exact
        conc = self.concurrency
        if conc is None and kv is not None and max_len:
            conc = round(kv / max_len, 2)
        return Capacity(kv_tokens=kv, max_concurrency=conc, max_model_len=max_len,
                        source=source if (kv is not None or max_len is not None) else "")


# ---------------------------------------------------------------- vLLM /metrics and /v1/models

_METRIC_LINE = re.compile(r"^vllm:cache_config_info\{(.*)\}\s+\S+\s*$", re.M)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def cache_config_labels(metrics_text: str) -> dict[str, str] | None:
    """The labels of ``vllm:cache_config_info{…}`` in a Prometheus /metrics text, or None."""
    m = _METRIC_LINE.search(metrics_text or "")
    if not m:
        return None
    return {k: v for k, v in _LABEL.findall(m.group(1))}


def _label_int(labels: dict[str, str], name: str) -> int | None:
    v = labels.get(name)
    if v in (None, "", "None", "none", "null"):
        return None
    try:
        return int(float(v))
    except ValueError:
        return None


def capacity_from_metrics(metrics_text: str) -> Capacity:
    """KV tokens from ``vllm:cache_config_info``: ``kv_cache_size_tokens`` (newer) or
    ``num_gpu_blocks`` x ``block_size``. max_model_len is not in /metrics."""
    labels = cache_config_labels(metrics_text)
    if not labels:
        return Capacity()
    tokens = _label_int(labels, "kv_cache_size_tokens")
    if tokens is not None:
        return Capacity(kv_tokens=tokens, source="/metrics kv_cache_size_tokens")
    blocks = _label_int(labels, "num_gpu_blocks")
    size = _label_int(labels, "block_size") or 16
    if blocks is not None:
        return Capacity(kv_tokens=blocks * size, source=f"/metrics num_gpu_blocks {blocks} x block_size {size}")
    return Capacity()


def max_model_len_from_models(models_json: dict | list | None, model: str | None = None) -> int | None:
    """``max_model_len`` of the served model in a /v1/models answer (the first entry without ``model``)."""
    rows = _rows(models_json)
    for row in rows:
        if model is None or row.get("id") == model or row.get("root") == model:
            v = row.get("max_model_len")
            return int(v) if v else None
    return None


def capacity_from_vllm(log_lines: Iterable[str] | None, metrics_text: str | None = None,
                       models_json: dict | list | None = None, *, model: str | None = None,
                       block_size: int = 16) -> Capacity:
    """Everything vLLM says, combined. The log's capacity line wins for KV tokens (its C x M rule
    handles hybrids); /metrics fills in when the log is unavailable (attached server); /v1/models'
    ``max_model_len`` is what the server enforces, so it wins for the length."""
    parser = VllmLogCapacity(block_size=block_size).feed_all(log_lines or ())
    cap = parser.capacity
    sources = [cap.source] if cap.source else []
    if cap.kv_tokens is None and metrics_text:
        m = capacity_from_metrics(metrics_text)
        if m.kv_tokens is not None:
            cap.kv_tokens = m.kv_tokens
            sources.append(m.source)
    served_len = max_model_len_from_models(models_json, model) if models_json is not None else None
    if served_len:
        if cap.max_model_len != served_len:
            sources.append("/v1/models max_model_len")
        cap.max_model_len = served_len
        if cap.kv_tokens is not None and (cap.max_concurrency is None or parser.concurrency_len != served_len):
            cap.max_concurrency = round(cap.kv_tokens / served_len, 2)
    cap.source = ", ".join(sources)
    return cap


# ---------------------------------------------------------------- llama-server


def llama_ctx_total(argv: Iterable[str] | None) -> int | None:
    """The ``-c/--ctx-size`` a llama-server argv asks for (the whole KV pool), or None. The last one
    counts, as in llama.cpp's argument parser (extra_args come after launch's own -c)."""
    args = list(argv or ())
    value = None
    for i, a in enumerate(args):
        if a in ("-c", "--ctx-size") and i + 1 < len(args):
            value = args[i + 1]
        elif a.startswith("--ctx-size="):
            value = a.split("=", 1)[1]
    try:
        return int(value) or None if value is not None else None
    except ValueError:
        return None


def capacity_from_llama(props: dict | None, slots: list | None = None, *,
                        ctx_total: int | None = None) -> Capacity:
    """llama-server: ``/props`` ``default_generation_settings.n_ctx`` is the context of one slot,
    ``total_slots`` the parallel requests; ``/slots[].n_ctx`` the same per slot.

    The KV pool depends on the cache layout (laptop-engines.md): without a unified cache the slots
    partition ``-c`` (each gets n_ctx / parallel, pool = slot n_ctx x slots); with a unified cache
    (``--kv-unified``, the default for ``-np auto``) every slot reports the whole pool and they share
    it (pool = slot n_ctx). The total comes from a top-level ``/props`` ``n_ctx`` when the build gives
    one, else ``ctx_total`` (the ``-c`` launcher started it with): slots that equal it share it, slots
    that partition it are multiplied. When neither tells, the pool is taken as shared (the smaller,
    safe figure: a partitioned pool is then under-counted, a unified one never over-counted)."""
    n_ctx: int | None = None
    n_slots: int | None = None
    source = []
    total = None
    if props:
        dgs = props.get("default_generation_settings") or {}
        n_ctx = dgs.get("n_ctx") or props.get("n_ctx")
        if dgs.get("n_ctx") and props.get("n_ctx"):
            total = int(props["n_ctx"])
        n_slots = props.get("total_slots")
        if n_ctx:
            source.append("/props n_ctx")
    if slots:
        per_slot = [s.get("n_ctx") for s in slots if isinstance(s, dict) and s.get("n_ctx")]
        if per_slot:
            if not n_ctx:
                n_ctx = min(per_slot)
                source.append("/slots n_ctx")
            if not n_slots:
                n_slots = len(slots)
    if not n_ctx:
        return Capacity(slots=n_slots, source="")
    n_ctx = int(n_ctx)
    n_slots = int(n_slots) if n_slots else 1
    if total is None and ctx_total:
        total, total_src = int(ctx_total), "-c"
    else:
        total_src = "/props n_ctx"
    if n_slots == 1:
        kv = n_ctx
    elif total is not None and n_ctx < total and n_ctx * n_slots <= total:
        kv = n_ctx * n_slots  # the slots partition the pool
        source.append(f"{n_slots} slots partition {total_src} {total:,}")
    else:
        kv = n_ctx  # unified: every slot sees the whole pool, they share it
        why = (f"each slot's n_ctx is the whole {total_src} {total:,}" if total == n_ctx else
               "unified KV cache assumed (the total is unknown)")
        source.append(f"{n_slots} slots share one pool ({why})")
    return Capacity(kv_tokens=kv, max_concurrency=round(kv / n_ctx, 2), max_model_len=n_ctx,
                    slots=n_slots, source=", ".join(source))


# ---------------------------------------------------------------- Ollama


def _ollama_names(name: str) -> set[str]:
    base = name.strip()
    out = {base}
    if ":" not in base.split("/")[-1]:
        out.add(base + ":latest")
    elif base.endswith(":latest"):
        out.add(base[: -len(":latest")])
    return out


def capacity_from_ollama_ps(ps_json: dict | None, model: str, *, parallel: int = 1) -> Capacity:
    """Ollama ``/api/ps``: ``context_length`` of the loaded model (0.9.7+) is the context each request
    gets; ``parallel`` (OLLAMA_NUM_PARALLEL) requests share the allocation. An empty Capacity when the
    model is not loaded or the server is older than 0.9.7."""
    wanted = _ollama_names(model)
    for row in (ps_json or {}).get("models") or []:
        names = {row.get("name") or "", row.get("model") or ""}
        if not (names & wanted):
            continue
        ctx = row.get("context_length")
        if not ctx:
            return Capacity(source="")
        ctx = int(ctx)
        return Capacity(kv_tokens=ctx * parallel, max_concurrency=float(parallel), max_model_len=ctx,
                        slots=parallel, source="ollama /api/ps context_length")
    return Capacity()


# ---------------------------------------------------------------- LM Studio


def _rows(doc: Any) -> list[dict]:
    if isinstance(doc, list):
        return [r for r in doc if isinstance(r, dict)]
    if isinstance(doc, dict):
        for key in ("data", "models"):
            if isinstance(doc.get(key), list):
                return [r for r in doc[key] if isinstance(r, dict)]
    return []


def capacity_from_lmstudio(models_json: dict | list | None, model: str) -> Capacity:
    """LM Studio: v1 ``/api/v1/models`` ``loaded_instances[].config.context_length`` (matched by
    ``key`` or instance ``id``), or v0 ``/api/v0/models`` ``loaded_context_length`` of the row with
    ``state == "loaded"`` (rows repeat per id). Empty Capacity when the model is not loaded."""
    for row in _rows(models_json):
        instances = row.get("loaded_instances")
        if isinstance(instances, list):  # v1
            for inst in instances:
                if row.get("key") == model or inst.get("id") == model:
                    cfg = inst.get("config") or {}
                    ctx = cfg.get("context_length")
                    if ctx:
                        par = int(cfg.get("parallel") or 1)
                        return Capacity(kv_tokens=int(ctx) * par, max_concurrency=float(par),
                                        max_model_len=int(ctx), slots=par,
                                        source="lmstudio /api/v1/models loaded_instances context_length")
            continue
        if row.get("id") == model and row.get("state") == "loaded" and row.get("loaded_context_length"):
            ctx = int(row["loaded_context_length"])
            return Capacity(kv_tokens=ctx, max_concurrency=1.0, max_model_len=ctx,
                            source="lmstudio /api/v0/models loaded_context_length")
    return Capacity()


def trained_context_from_lmstudio(models_json: dict | list | None, model: str) -> int | None:
    """``max_context_length`` (the model's trained length) from either LM Studio REST version."""
    for row in _rows(models_json):
        if model in (row.get("key"), row.get("id")) and row.get("max_context_length"):
            return int(row["max_context_length"])
    return None
