"""Ollama: `ollama serve` (local runtime) or attach to a running one. The context is fixed through a
derived model created with /api/create (OpenAI-compatible clients cannot set num_ctx).

Besides the command, this module holds the pure parts of driving Ollama: where the server is
(OLLAMA_HOST), the /api/pull NDJSON stream, /api/show's capabilities and model_info, Ollama's own
KV-cache estimate, the largest context that fits, and the derived model's name. Nothing here does I/O.
Facts: ../shared/reference/laptop-engines.md.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass, field

from launcher.engines.base import Engine, NodeCtx, ProcSpec, _url_host

DEFAULT_PORT = 11434
AGENT_MIN_CONTEXT = 65536  # below this coding agents degrade (tool schemas + prompt + files)
# Ollama's own rounding of the KV-cache element size (llama.cpp's q8_0 is really 1.0625 bytes).
KV_TYPE_BYTES = {"f16": 2.0, "q8_0": 1.0, "q4_0": 0.5}


class Ollama(Engine):
    name = "ollama"
    api_key_env = None
    default_port = DEFAULT_PORT
    unsupported = {"tensor-parallel": "Ollama splits layers across local GPUs itself",
                   "multi-node": "Ollama serves from one machine"}

    def processes(self, recipe, nodes: list[NodeCtx], port: int) -> list[ProcSpec]:
        o = recipe.ollama
        env = {"OLLAMA_HOST": f"{_url_host(nodes[0].address)}:{port}",
               "OLLAMA_NUM_PARALLEL": str(o.num_parallel)}
        if o.keep_alive:
            env["OLLAMA_KEEP_ALIVE"] = o.keep_alive
        if o.kv_cache_type:
            env["OLLAMA_KV_CACHE_TYPE"] = o.kv_cache_type
            env["OLLAMA_FLASH_ATTENTION"] = "1"
        return [ProcSpec("server", nodes[0].name, "server", ["ollama", "serve"], env=env, port=port)]


ENGINE = Ollama()


# ---------------------------------------------------------------- where the server is

def url_from_ollama_host(value: str | None) -> str | None:
    """OLLAMA_HOST as Ollama reads it ("0.0.0.0", "host:port", "http://host:port", ":port") -> a URL a
    client can reach (0.0.0.0 -> 127.0.0.1). None when unset or empty."""
    if not value or not value.strip():
        return None
    v = value.strip().rstrip("/")
    scheme = "http"
    if "://" in v:
        scheme, v = v.split("://", 1)
    v = v.split("/", 1)[0]
    host, port = v, str(DEFAULT_PORT if scheme == "http" else 443)
    if v.startswith("["):  # [ipv6]:port
        end = v.find("]")
        host, rest = v[1:end], v[end + 1:]
        if rest.startswith(":") and rest[1:]:
            port = rest[1:]
    elif v.count(":") == 1:
        host, p = v.split(":")
        port = p or port
    if host in ("", "0.0.0.0", "::", "localhost"):
        host = "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}"


def install_hint(system: str | None = None) -> str:
    system = system or platform.system()
    if system == "Darwin":
        return "install Ollama: `brew install ollama` (or the app from https://ollama.com/download), then retry"
    if system == "Windows":
        return "install Ollama from https://ollama.com/download/windows, then retry"
    return "install Ollama: `curl -fsSL https://ollama.com/install.sh | sh`, then retry"


# ---------------------------------------------------------------- /api/pull and /api/create streams

@dataclass
class PullState:
    """Progress of one /api/pull NDJSON stream, summed over the layers (each has its digest).

    `completed` may be missing from a layer's first lines: that layer counts 0 until it appears."""

    status: str = ""
    totals: dict[str, int] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    success: bool = False

    def feed(self, obj: dict) -> None:
        if not isinstance(obj, dict):
            return
        if obj.get("error"):
            self.error = str(obj["error"])
            return
        self.status = str(obj.get("status") or self.status)
        digest = obj.get("digest")
        if digest:
            if obj.get("total"):
                self.totals[digest] = int(obj["total"])
            if obj.get("completed") is not None:
                self.done[digest] = int(obj["completed"])
        if self.status == "success":
            self.success = True

    @property
    def total(self) -> int | None:
        return sum(self.totals.values()) or None

    @property
    def completed(self) -> int:
        return sum(min(self.done.get(d, 0), t) for d, t in self.totals.items())

    @property
    def percent(self) -> float | None:
        t = self.total
        return round(100.0 * self.completed / t, 1) if t else None


def stream_error(obj) -> str | None:
    """The message of an `{"error": …}` line in an NDJSON stream, else None."""
    if isinstance(obj, dict) and obj.get("error"):
        return str(obj["error"])
    return None


def missing_model_error(message: str) -> bool:
    """Whether a pull error means the name does not exist in the registry."""
    m = message.lower()
    return "file does not exist" in m or "not found" in m or "manifest unknown" in m


# ---------------------------------------------------------------- /api/show

def capabilities(show: dict) -> list[str] | None:
    """/api/show capabilities, or None when the server predates the field (cannot tell)."""
    caps = show.get("capabilities") if isinstance(show, dict) else None
    return [str(c) for c in caps] if isinstance(caps, list) else None


def parse_parameters(text: str | None) -> dict[str, list[str]]:
    """/api/show `parameters` ("num_ctx 2048\\nstop \\"<|im_end|>\\"") -> {name: [values]}."""
    out: dict[str, list[str]] = {}
    for line in (text or "").splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            out.setdefault(parts[0], []).append(parts[1].strip().strip('"'))
    return out


def _arch_key(info: dict, name: str):
    arch = info.get("general.architecture")
    return info.get(f"{arch}.{name}") if arch else None


def trained_context(model_info: dict) -> int | None:
    v = _arch_key(model_info or {}, "context_length")
    return int(v) if v else None


def kv_bytes_per_token(model_info: dict, kv_type: str | None = "f16") -> float | None:
    """Ollama's own KV estimate per token of context, one sequence: Σ over attention layers of
    (key_length + value_length) × head_count_kv[layer] × bytes. Layers with head_count_kv 0 are
    recurrent (no per-token KV). key/value lengths default to embedding_length / head_count.
    Sliding-window layers are counted at full length (an upper bound). None when model_info lacks
    the shape."""
    info = model_info or {}
    layers = _arch_key(info, "block_count")
    heads = _arch_key(info, "attention.head_count")
    kv_heads = _arch_key(info, "attention.head_count_kv")
    emb = _arch_key(info, "embedding_length")
    if not layers:
        return None
    if isinstance(heads, list):
        heads = max((h for h in heads if h), default=0)
    default_dim = (int(emb) // int(heads)) if emb and heads else None
    k = _arch_key(info, "attention.key_length") or default_dim
    v = _arch_key(info, "attention.value_length") or default_dim
    if kv_heads is None:
        kv_heads = heads
    if not (k and v) or kv_heads is None:
        return None
    per_layer = kv_heads if isinstance(kv_heads, list) else [kv_heads] * int(layers)
    bytes_el = KV_TYPE_BYTES.get(kv_type or "f16", 2.0)
    return float(sum(int(h or 0) for h in per_layer) * (int(k) + int(v)) * bytes_el)


def fit_context(free_bytes: float, weights_bytes: float, bytes_per_token: float, *, parallel: int = 1,
                trained: int | None = None, overhead_bytes: float = 0.0, step: int = 1024) -> int:
    """The largest context (a multiple of `step`) whose KV cache for `parallel` sequences fits what is
    left of free memory after the weights and an overhead; capped by the trained length. 0 when
    nothing fits."""
    room = free_bytes - weights_bytes - overhead_bytes
    if room <= 0 or bytes_per_token <= 0:
        return 0
    ctx = int(room // (bytes_per_token * max(1, parallel)))
    if trained:
        ctx = min(ctx, int(trained))
    return (ctx // step) * step if ctx >= step else 0


def kv_bytes(ctx: int, bytes_per_token: float, parallel: int = 1) -> float:
    return ctx * bytes_per_token * max(1, parallel)


# ---------------------------------------------------------------- the derived model and /api/ps

def derived_name(model: str, num_ctx: int) -> str:
    """qwen3-coder:30b + 65536 -> qwen3-coder:30b-64k; llama3 + 32768 -> llama3:32k."""
    suffix = f"{num_ctx // 1024}k" if num_ctx % 1024 == 0 else f"ctx{num_ctx}"
    last = model.rsplit("/", 1)[-1]
    return f"{model}-{suffix}" if ":" in last else f"{model}:{suffix}"


def same_model(a: str, b: str) -> bool:
    """Ollama names compare with an implied `:latest` tag."""
    def norm(n: str) -> str:
        n = n.strip()
        return n if ":" in n.rsplit("/", 1)[-1] else n + ":latest"
    return norm(a) == norm(b)


def tags_entry(tags: dict, model: str) -> dict | None:
    for row in (tags or {}).get("models") or []:
        if same_model(row.get("name") or "", model) or same_model(row.get("model") or "", model):
            return row
    return None


def low_context_warning(ctx: int) -> str | None:
    """The warning for a context below what coding agents need, with the reason; None at ≥64k."""
    if ctx >= AGENT_MIN_CONTEXT:
        return None
    return (f"context {ctx} tokens is below 65536: coding agents degrade here. Tool schemas, the system "
            f"prompt and the files read fill a small window fast, and Ollama drops the oldest tokens "
            f"without telling the client (a 4096 context silently breaks tool calls). Free memory, "
            f"use a smaller quantization, or set OLLAMA_KV_CACHE_TYPE=q8_0 to get more.")
