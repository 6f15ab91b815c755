"""Configuration of the vLLM simulator: what it serves, its limits, fault switches and failure modes.

Fault names (one per row of the validation table in ../shared/reference/agents.md) and failure modes
(../shared/reference/vllm.md, "Failure text") are part of the public contract: tests elsewhere use them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, TextIO

# Request-time faults: the server starts fine, then answers wrongly in one way each.
FAULTS = frozenset({
    "auth-open",             # accepts any or no API key even though one is configured
    "wrong-model",           # /v1/models lists another id; the served name gets 404
    "prose-tool-call",       # tool call written in content text, tool_calls null, finish stop
    "reasoning-in-args",     # reasoning text inside the arguments string
    "reasoning-in-content",  # think text in content
    "invalid-json-args",     # arguments not valid JSON
    "tool-loop",             # calls the tool again after its result
    "length",                # reasoning spends the whole budget: finish length, no tool call
    "drop-body",             # a proxy drops POST bodies: every POST under /v1 gets vLLM's 400
    "no-auto-tool-choice",   # 400 "auto" tool choice requires --enable-auto-tool-choice …
    "stream-broken",         # streamed tool-call deltas do not assemble to the non-stream call
})

# Start-up / lifetime failure modes (`fail`).
FAIL_MODES = frozenset({
    "oom-weights", "no-kv", "kv-too-small", "bad-parser", "crash-after-ready", "hang", "wedge",
})

LOG_FORMATS = ("new", "split", "v0")
KV_ERROR_FORMATS = ("v1", "v0")
CONTEXT_ERROR_FORMATS = ("classic", "new")

ENV_FAULTS = "LAUNCHER_SIM_FAULTS"
ENV_FAIL = "LAUNCHER_SIM_FAIL"
ENV_KV_TOKENS = "LAUNCHER_SIM_KV_TOKENS"
ENV_LOAD_SECONDS = "LAUNCHER_SIM_LOAD_SECONDS"
ENV_LOG_FORMAT = "LAUNCHER_SIM_LOG_FORMAT"
ENV_LATENCY_MS = "LAUNCHER_SIM_LATENCY_MS"
ENV_RECORD = "LAUNCHER_SIM_RECORD"
ENV_CRASH_AFTER_S = "LAUNCHER_SIM_CRASH_AFTER_S"
ENV_API_KEY = "VLLM_API_KEY"

VLLM_VERSION = "0.11.2"


@dataclass
class SimConfig:
    """Everything a simulated vLLM server is. Defaults: the seed's Nemotron 3 Super, healthy.

    max_model_len None means "auto": min(kv_tokens, 262144) like `--max-model-len auto`.
    kv_tokens is the KV pool in tokens (what `GPU KV cache size: N tokens` reports).
    """

    served_model_name: str = "nvidia/nemotron-3-super"
    model: str = "nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-NVFP4"
    max_model_len: int | None = 262144
    kv_tokens: int = 643232
    block_size: int = 16
    kv_bytes_per_token: int = 4096    # for the GiB figures in the logs (Nemotron 3 Super, fp8 KV)
    gpu_memory_utilization: float = 0.85
    cache_dtype: str = "auto"
    tensor_parallel_size: int = 1
    load_seconds: float = 0.0         # total start-up time the log sequence is paced over
    fail: str | None = None           # one of FAIL_MODES
    faults: frozenset[str] = field(default_factory=frozenset)
    api_key: str | None = None
    latency_s: float = 0.0            # delay before the first token of each generation
    token_s: float = 0.0              # delay between streamed chunks
    tool_call_parser: str | None = "qwen3_coder"
    reasoning_parser: str | None = "nemotron_v3"
    # --tool-parser-plugin / --reasoning-parser-plugin: a file that registers more parser names (real vLLM
    # imports it before checking the names; here any name is accepted when the file exists)
    tool_parser_plugin: str | None = None
    reasoning_parser_plugin: str | None = None
    enable_auto_tool_choice: bool = True
    host: str = "127.0.0.1"
    port: int = 0                     # 0: a free port, chosen at construction
    record: str | None = None         # append every request as a JSON line to this file
    log_format: str = "new"           # KV capacity line: "new" (one line), "split" (two), "v0" (blocks)
    kv_error_format: str = "v1"       # kv-too-small wording: "v1" or "v0"
    context_error_format: str = "classic"  # 400 over max_model_len: "classic" or "new" wording
    crash_after_s: float = 2.0        # crash-after-ready: seconds of serving before the engine dies
    quiet: bool = False               # no log lines on stdout (they are still kept in .log_lines)
    log_stream: TextIO | None = None  # where log lines go (default sys.stdout)
    on_log: Callable[[str], None] | None = None  # called with every log line
    version: str = VLLM_VERSION
    pid: int | None = None            # pid shown in log prefixes (default os.getpid())

    def __post_init__(self) -> None:
        self.faults = frozenset(self.faults or ())
        unknown = self.faults - FAULTS
        if unknown:
            raise ValueError(f"unknown simulator fault(s) {sorted(unknown)}; known: {sorted(FAULTS)}")
        if self.fail is not None and self.fail not in FAIL_MODES:
            raise ValueError(f"unknown simulator failure mode {self.fail!r}; known: {sorted(FAIL_MODES)}")
        if self.log_format not in LOG_FORMATS:
            raise ValueError(f"log_format must be one of {LOG_FORMATS}")
        if self.kv_error_format not in KV_ERROR_FORMATS:
            raise ValueError(f"kv_error_format must be one of {KV_ERROR_FORMATS}")
        if self.context_error_format not in CONTEXT_ERROR_FORMATS:
            raise ValueError(f"context_error_format must be one of {CONTEXT_ERROR_FORMATS}")

    @property
    def effective_max_model_len(self) -> int:
        if self.max_model_len is None or self.max_model_len <= 0:
            return min(self.kv_tokens, 262144)
        return self.max_model_len

    @property
    def num_gpu_blocks(self) -> int:
        return self.kv_tokens // self.block_size

    @property
    def max_concurrency(self) -> float:
        return self.kv_tokens / self.effective_max_model_len

    def has(self, fault: str) -> bool:
        return fault in self.faults


def parse_faults(text: str | None) -> frozenset[str]:
    """`a,b , c` → {'a','b','c'}; unknown names raise ValueError."""
    names = frozenset(n.strip() for n in (text or "").split(",") if n.strip())
    unknown = names - FAULTS
    if unknown:
        raise ValueError(f"unknown simulator fault(s) {sorted(unknown)}; known: {sorted(FAULTS)}")
    return names


def env_overrides(environ: dict[str, str] | None = None) -> dict:
    """SimConfig keyword overrides from the simulator-only environment knobs."""
    env = os.environ if environ is None else environ
    out: dict = {}
    if env.get(ENV_KV_TOKENS):
        out["kv_tokens"] = int(env[ENV_KV_TOKENS].replace(",", "").replace("_", ""))
    if env.get(ENV_LOAD_SECONDS):
        out["load_seconds"] = float(env[ENV_LOAD_SECONDS])
    if env.get(ENV_FAIL):
        out["fail"] = env[ENV_FAIL].strip()
    if env.get(ENV_FAULTS):
        out["faults"] = parse_faults(env[ENV_FAULTS])
    if env.get(ENV_LOG_FORMAT):
        out["log_format"] = env[ENV_LOG_FORMAT].strip()
    if env.get(ENV_LATENCY_MS):
        out["latency_s"] = float(env[ENV_LATENCY_MS]) / 1000.0
    if env.get(ENV_RECORD):
        out["record"] = env[ENV_RECORD]
    if env.get(ENV_CRASH_AFTER_S):
        out["crash_after_s"] = float(env[ENV_CRASH_AFTER_S])
    return out
