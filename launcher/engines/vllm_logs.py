"""vLLM's log lines → start-up stages and failures (pure; no I/O).

Facts: ../shared/reference/vllm.md ("Startup log lines", "Failure text"). Wording drifts between
versions, so every pattern is tolerant (case, spacing, optional prefixes like `(APIServer pid=…)` and
`INFO mm-dd hh:mm:ss [file.py:N]`) and tests/unit/test_vllm_logs.py keeps one test per variant.

`LogReader` is the stateful part: it remembers the current stage (so a CUDA OOM during weight loading
is told apart from one during graph capture) and the first decisive failure.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# Stage names, in start-up order. The display shows `label`.
STAGES = ("image", "starting", "weights", "kv", "graphs", "api", "ready")
STAGE_LABELS = {
    "image": "pulling image", "starting": "starting", "weights": "loading weights",
    "kv": "profiling KV cache", "graphs": "capturing CUDA graphs", "api": "API server starting",
    "ready": "ready",
}


@dataclass(frozen=True)
class Stage:
    name: str  # one of STAGES
    percent: float | None = None  # weights: shard bar percent; None where unknown
    detail: str = ""  # e.g. "v0.11.2", "12/17 shards", "643,232 tokens"

    @property
    def label(self) -> str:
        return STAGE_LABELS.get(self.name, self.name)


@dataclass(frozen=True)
class Failure:
    kind: str  # oom-weights | oom | no-kv | kv-too-small | profiling | bad-parser | oom-killed |
    #            exited | ray-worker | timeout | not-ready
    cause: str
    fix: str
    suggested_max_len: int | None = None  # vLLM's own estimate, when it printed one
    details: tuple[str, ...] = field(default_factory=tuple)


def _rx(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.IGNORECASE)


def _int(text: str) -> int:
    return int(re.sub(r"[,_\s]", "", text))


# -- stages --------------------------------------------------------------------------------------
RX_VERSION = _rx(r"vLLM API server version\s+v?([0-9][\w.+\-]*)")
RX_IMAGE = _rx(r"\b(pulling (?:from|image|fs layer)|unable to find image|downloaded newer image|"
               r"digest: sha256|pull complete)")
RX_LOAD_START = _rx(r"Starting to load model\s+(\S+?)(?:\.\.\.|$|\s)")
RX_SHARDS = _rx(r"Loading (?:safetensors|pt|bin|\w+) checkpoint shards:\s*(\d{1,3})%[^|]*\|[^0-9]*(\d+)\s*/\s*(\d+)")
RX_WEIGHTS_DONE = _rx(r"(Loading weights took\s+[\d.]+\s*s|Model loading took\s+[\d.]+\s*GiB)")
RX_KV_START = _rx(r"(Memory profiling takes|Available KV cache memory|Determined number of KV cache blocks|"
                  r"GPU KV cache size|#\s*GPU blocks:|Setting attention block size)")
RX_GRAPHS = _rx(r"(Capturing CUDA graphs?|CUDA graph capturing|Capturing cudagraphs|Graph capturing finished)")
RX_ENGINE_DONE = _rx(r"init engine \(profile, create kv cache, warmup model\) took")
# The API-up line: the readiness probe fires immediately when one of these appears.
RX_API_UP = _rx(r"(Starting vLLM (?:API )?server(?:\s+\d+)? on https?://|Available routes are|"
                r"Application startup complete|Uvicorn running on)")

# -- failures ------------------------------------------------------------------------------------
RX_OOM_LOAD = _rx(r"Failed to load model\s*-\s*not enough GPU memory")
RX_CUDA_OOM = _rx(r"(torch\.(?:cuda\.)?OutOfMemoryError|CUDA out of memory|CUDA error: out of memory)")
RX_NO_KV = _rx(r"No available memory for the cache blocks")
RX_KV_V1 = _rx(r"max seq len \((\d[\d,]*)\),?\s*\(?\s*([\d.]+)\s*Gi?B KV cache is needed.*?"
               r"available KV cache memory \(([\d.]+)\s*Gi?B\)(?:.*?estimated maximum model length is\s+(\d[\d,]*))?")
RX_KV_V1_EST = _rx(r"estimated maximum model length is\s+(\d[\d,]*)")
RX_KV_V0 = _rx(r"max seq len \((\d[\d,]*)\) is larger than the maximum number of tokens that can be stored "
               r"in KV cache \((\d[\d,]*)\)")
RX_AUTOFIT_FAIL = _rx(r"Cannot auto-fit max_model_len:?\s*(.*)")
RX_PROFILING = _rx(r"Error in memory profiling")
RX_BAD_PARSER = _rx(r"invalid (tool call|reasoning) parser:\s*([\w.\-]+)\s*(?:\(chose from\s*\{?\s*([^})]*)\}?\s*\))?")
RX_RAY_NO_RES = _rx(r"(Current node has no GPU available|placement group.*(?:cannot be|not be) (?:created|scheduled)|"
                    r"Ray does not allocate any GPUs on the driver node)")

FIX_MORE_MEMORY = ("use more GPUs (parallelism.tensor / parallelism.nodes) or a smaller / more quantized "
                   "checkpoint, and make sure nothing else holds GPU memory (nvidia-smi); on unified-memory "
                   "hosts (DGX Spark) drop the page cache first: sync; echo 3 | sudo tee /proc/sys/vm/drop_caches")


def oom_weights() -> Failure:
    return Failure("oom-weights", "the model's weights do not fit in GPU memory (CUDA out of memory while "
                   "loading weights)", FIX_MORE_MEMORY)


def classify(line: str, stage: str | None = None) -> Failure | None:
    """The failure one line shows, if any. `stage` tells OOM while loading weights from later OOMs."""
    if RX_OOM_LOAD.search(line):
        return oom_weights()
    if RX_NO_KV.search(line):
        return Failure("no-kv", "after loading the weights no GPU memory was left for the KV cache "
                       "(No available memory for the cache blocks)",
                       "raise vllm.gpu_memory_utilization (e.g. 0.85 → 0.9), use kv_cache_dtype: fp8, "
                       "lower max_num_seqs, or use more GPUs; check nothing else holds GPU memory (nvidia-smi)")
    m = RX_KV_V1.search(line)
    if m:
        want, need, have = _int(m.group(1)), m.group(2), m.group(3)
        est = _int(m.group(4)) if m.group(4) else None
        return _kv_too_small(want, est, f"{need} GiB of KV cache needed, {have} GiB available")
    m = RX_KV_V0.search(line)
    if m:
        return _kv_too_small(_int(m.group(1)), _int(m.group(2)), "V0 engine wording")
    m = RX_AUTOFIT_FAIL.search(line)
    if m:
        return Failure("kv-too-small", f"vLLM could not fit max_model_len to memory: {m.group(1).strip()}",
                       "set vllm.max_model_len to a fixed smaller value, raise gpu_memory_utilization, or use "
                       "kv_cache_dtype: fp8")
    if RX_PROFILING.search(line):
        return Failure("profiling", "vLLM's memory profiling failed: GPU memory changed while it measured "
                       "(another process allocated or freed GPU memory)",
                       "stop other GPU processes (nvidia-smi) and start again; on unified memory drop the "
                       "page cache first (sync; echo 3 | sudo tee /proc/sys/vm/drop_caches)")
    m = RX_BAD_PARSER.search(line)
    if m:
        kind, name, choices = m.group(1).lower(), m.group(2), (m.group(3) or "").strip()
        key = "tool_call_parser" if kind.startswith("tool") else "reasoning_parser"
        names = ", ".join(c.strip().strip("'\"") for c in choices.split(",") if c.strip())
        return Failure("bad-parser", f"vLLM does not know the {kind} parser '{name}'",
                       f"set vllm.{key} to one this vLLM knows" + (f": {names}" if names else
                                                                  " (see `vllm serve --help`)"))
    if RX_CUDA_OOM.search(line):
        if stage in (None, "starting", "weights"):
            return oom_weights()
        where = {"kv": "while profiling memory for the KV cache", "graphs": "while capturing CUDA graphs"}
        return Failure("oom", f"CUDA out of memory {where.get(stage, 'after loading the weights')}",
                       "lower vllm.gpu_memory_utilization a little (e.g. 0.85 → 0.8) or max_num_seqs; during "
                       "graph capture `--enforce-eager` (vllm.extra_args) avoids the graphs' memory")
    if RX_RAY_NO_RES.search(line):
        return ray_worker_missing(None, None, line.strip())
    return None


def _kv_too_small(want: int, suggested: int | None, detail: str) -> Failure:
    hint = (f"set vllm.max_model_len to {suggested} or less (vLLM's own estimate)" if suggested
            else "lower vllm.max_model_len")
    return Failure("kv-too-small",
                   f"max_model_len {want} needs more KV cache than fits in GPU memory ({detail})",
                   hint + ", or max_model_len: auto; or raise gpu_memory_utilization / use kv_cache_dtype: fp8",
                   suggested_max_len=suggested)


def ray_worker_missing(host: str | None, seen: str | None, detail: str = "") -> Failure:
    who = f"the Ray worker on {host}" if host else "a Ray worker"
    return Failure("ray-worker", f"{who} never joined the Ray cluster" + (f" (ray status: {seen})" if seen else ""),
                   "check the worker's log (`launch logs RECIPE`), that it can reach the head's Ray port "
                   "(firewall, the inventory address), that `interface` names the right NIC "
                   "(NCCL/GLOO/UCX), and that every node runs the same image and Ray version",
                   details=(detail,) if detail else ())


def exit_failure(code: int | None, signal: int | None, oom_killed: bool, reason: str = "") -> Failure:
    """How a process ended, when its log named no better cause."""
    if oom_killed or code == 137 or signal == 9:
        what = reason or ("container OOMKilled (exit 137)" if oom_killed else
                          "killed by SIGKILL (exit 137)" if code == 137 or signal == 9 else "killed")
        return Failure("oom-killed", f"the server was killed by the out-of-memory killer: {what}",
                       "host RAM ran out: lower vllm.gpu_memory_utilization (on unified-memory hosts the GPU "
                       "share is host RAM), close other programs, or give the container more memory; "
                       "`dmesg | grep -i oom` shows the kill")
    how = reason or (f"signal {signal}" if signal else f"exit code {code}")
    return Failure("exited", f"the server exited before it was ready ({how})",
                   "read the log lines below; run the same command by hand (`launch plan RECIPE` prints it)")


def timeout_failure(seconds: float, stage: str | None, api_up: bool) -> Failure:
    if api_up:
        return Failure("not-ready", f"the API server said it started but was not ready within {seconds:.0f} s "
                       "(/health or /v1/models never answered as expected)",
                       "check the served name (served_name) and the API key; a hung engine (NCCL, GB10) "
                       "needs a restart: `launch down RECIPE` then `launch up RECIPE`")
    last = STAGE_LABELS.get(stage or "", stage or "no stage seen")
    return Failure("timeout", f"no readiness within {seconds:.0f} s (last stage: {last})",
                   "if the load is just slow (large weights, slow disk, first download), raise --timeout or "
                   "the recipe's startup_timeout; otherwise the log lines below show where it stopped")


def parse_stage(line: str) -> Stage | None:
    """The stage one line announces, if any."""
    m = RX_SHARDS.search(line)
    if m:
        return Stage("weights", float(m.group(1)), f"{m.group(2)}/{m.group(3)} shards")
    m = RX_VERSION.search(line)
    if m:
        return Stage("starting", None, f"vLLM {m.group(1)}")
    m = RX_LOAD_START.search(line)
    if m:
        return Stage("weights", 0.0, m.group(1))
    if RX_WEIGHTS_DONE.search(line):
        return Stage("weights", 100.0, "loaded")
    if RX_API_UP.search(line):
        return Stage("api")
    if RX_ENGINE_DONE.search(line):
        return Stage("graphs", 100.0, "engine initialised")
    if RX_GRAPHS.search(line):
        pm = re.search(r"(\d{1,3})%", line)
        return Stage("graphs", float(pm.group(1)) if pm else None)
    if RX_KV_START.search(line):
        return Stage("kv")
    if RX_IMAGE.search(line):
        return Stage("image")
    return None


class LogReader:
    """Feeds lines, yields events. Stages only move forward; the first failure is kept."""

    def __init__(self):
        self.stage: str | None = None
        self.percent: float | None = None
        self.failure: Failure | None = None
        self.api_up = False
        self.version: str | None = None

    def feed(self, raw: str) -> list[Stage | Failure]:
        events: list[Stage | Failure] = []
        # tqdm redraws with carriage returns: every segment is a line of its own
        for line in raw.split("\r"):
            if not line.strip():
                continue
            fail = classify(line, self.stage)
            if fail is not None:
                if self.failure is None:
                    self.failure = fail
                    events.append(fail)
                continue
            st = parse_stage(line)
            if st is None:
                continue
            if st.name == "starting" and st.detail.startswith("vLLM "):
                self.version = st.detail[5:]
            if st.name == "api":
                self.api_up = True
            if self._advances(st):
                self.stage, self.percent = st.name, st.percent
                events.append(st)
        return events

    def _advances(self, st: Stage) -> bool:
        if self.stage is None:
            return True
        old, new = STAGES.index(self.stage), STAGES.index(st.name)
        if new > old:
            return True
        return new == old and st.percent is not None and (self.percent is None or st.percent > self.percent)
