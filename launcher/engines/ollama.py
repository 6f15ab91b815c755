"""Ollama: `ollama serve` (local runtime) or attach to a running one. The context is fixed through a
derived model created with /api/create (OpenAI-compatible clients cannot set num_ctx).

Besides the command, this module holds the pure parts of driving Ollama: where the server is
(OLLAMA_HOST), the /api/pull NDJSON stream, /api/show's capabilities and parameters, and the derived
model's name (the KV math lives in launcher.fit, the shape in launcher.modelconfig). Nothing here does I/O.
Facts: ../shared/reference/laptop-engines.md.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass, field

from launcher.engines.base import Engine, NodeCtx, ProcSpec, _url_host

DEFAULT_PORT = 11434
AGENT_MIN_CONTEXT = 65536  # below this coding agents degrade (tool schemas + prompt + files)


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
    """How to get Ollama on this system (Linux: the install script; macOS: the app, which runs the server)."""
    system = system or platform.system()
    if system == "Darwin":
        return ("install the Ollama app from https://ollama.com/download and open it (it runs the server "
                "on 127.0.0.1:11434; `brew install ollama` + `ollama serve` also works), then retry")
    if system == "Windows":
        return "install Ollama from https://ollama.com/download/windows, then retry"
    return ("install Ollama: `curl -fsSL https://ollama.com/install.sh | sh` (it sets up `ollama serve` as a "
            "service), then retry")


def not_running_fix(url: str, origin: str, system: str | None = None) -> str:
    """What to do when no Ollama answers at url and launch cannot start one."""
    return (f"if Ollama is installed, start it (`ollama serve`, or open the Ollama app); if it listens "
            f"elsewhere, set OLLAMA_HOST to its address, e.g. OLLAMA_HOST=127.0.0.1:11434 (launch looked at {url}, "
            f"{origin}); "
            f"otherwise {install_hint(system)}")


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


def low_context_warning(ctx: int, server: str = "Ollama", more: str = "") -> str | None:
    """The warning for a context below what coding agents need, with the reason; None at ≥64k."""
    if ctx >= AGENT_MIN_CONTEXT:
        return None
    more = more or "free memory, use a smaller quantization, or set ollama.kv_cache_type: q8_0"
    return (f"context {ctx} tokens is below 65536: coding agents degrade here. Tool schemas, the system "
            f"prompt and the files read fill a small window fast, and {server} drops what does not fit "
            f"without telling the client (a 4096 context silently breaks tool calls). To get more: {more}.")
