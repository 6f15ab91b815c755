"""vLLM's start-up log lines and failure text, in the real format (../shared/reference/vllm.md).

`boot_script(cfg, port)` yields (delay_s, item) pairs: item is a log line, or one of the markers
LISTEN (the HTTP server starts listening here) and ("EXIT", code) (the process dies here).
Delays add up to cfg.load_seconds for a healthy start, spread over stages like a real load.
"""
from __future__ import annotations

import os
import time
from typing import Iterator

from launcher.spec.vllm_parsers import REASONING_PARSERS, TOOL_CALL_PARSERS

LISTEN = "__LISTEN__"
GIB = 1024 ** 3
SHARDS = 8
ROUTES = ["/openapi.json", "/docs", "/redoc", "/health", "/load", "/ping", "/tokenize", "/detokenize",
          "/v1/models", "/version", "/v1/responses", "/v1/messages", "/v1/messages/count_tokens",
          "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/metrics"]

OOM_HINT = ("Failed to load model - not enough GPU memory. Try lowering --gpu-memory-utilization to free "
            "memory for weights, increasing --tensor-parallel-size, or using --quantization. See "
            "https://docs.vllm.ai/en/latest/configuration/conserving_memory.html for more tips.")
NO_KV = ("ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` "
         "when initializing the engine.")
ENGINE_DEAD = ("vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. "
               "See stack trace (above) for the root cause.")


class Prefix:
    """`(APIServer pid=N) INFO mm-dd hh:mm:ss [file.py:NNN] ` and the EngineCore variant."""

    def __init__(self, api_pid: int, engine_pid: int):
        self.api_pid, self.engine_pid = api_pid, engine_pid

    @staticmethod
    def _stamp() -> str:
        return time.strftime("%m-%d %H:%M:%S")

    def api(self, where: str, text: str, level: str = "INFO") -> str:
        return f"(APIServer pid={self.api_pid}) {level} {self._stamp()} [{where}] {text}"

    def eng(self, where: str, text: str, level: str = "INFO") -> str:
        return f"(EngineCore_DP0 pid={self.engine_pid}) {level} {self._stamp()} [{where}] {text}"

    def eng_raw(self, text: str) -> str:
        return f"(EngineCore_DP0 pid={self.engine_pid}) {text}"

    def api_raw(self, text: str) -> str:
        return f"(APIServer pid={self.api_pid}) {text}"


def kv_capacity_lines(p: Prefix, kv_tokens: int, max_model_len: int, fmt: str, block_size: int = 16) -> list[str]:
    conc = kv_tokens / max_model_len
    if fmt == "v0":
        return [p.eng("executor_base.py:113", f"# GPU blocks: {kv_tokens // block_size}, # CPU blocks: 2048"),
                p.eng("executor_base.py:118", f"Maximum concurrency for {max_model_len} tokens per request: {conc:.2f}x")]
    if fmt == "split":
        return [p.eng("kv_cache_utils.py:1087", f"GPU KV cache size: {kv_tokens:,} tokens"),
                p.eng("kv_cache_utils.py:1091",
                      f"Maximum concurrency for {max_model_len:,} tokens per request: {conc:.2f}x")]
    return [p.eng("kv_cache_utils.py:1233",
                  f"GPU KV cache size: {kv_tokens:,} tokens, Maximum concurrency for {max_model_len:,} "
                  f"tokens per request: {conc:.2f}x")]


def _traceback(p: Prefix, where: str, frames: list[tuple[str, int, str, str]], last: str) -> list[str]:
    out = [p.eng(where, "EngineCore failed to start.", "ERROR"),
           p.eng(where, "Traceback (most recent call last):", "ERROR")]
    for path, line, func, code in frames:
        out.append(p.eng(where, f'  File "{path}", line {line}, in {func}', "ERROR"))
        out.append(p.eng(where, f"    {code}", "ERROR"))
    out.append(p.eng(where, last, "ERROR"))
    return out


def _api_failed(p: Prefix) -> list[str]:
    return [p.api_raw("Traceback (most recent call last):"),
            p.api_raw('  File "/usr/local/bin/vllm", line 10, in <module>'),
            p.api_raw("    sys.exit(main())"),
            p.api_raw("RuntimeError: Engine core initialization failed. See root cause above. "
                      "Failed core proc(s): {'EngineCore_DP0': 1}")]


VP = "/usr/local/lib/python3.12/dist-packages/vllm"


def bad_parser_lines(p: Prefix, kind: str, name: str, known: frozenset[str]) -> list[str]:
    label = "tool call parser" if kind == "tool" else "reasoning parser"
    choices = ",".join(sorted(known - {name}))
    return [p.api_raw("Traceback (most recent call last):"),
            p.api_raw('  File "/usr/local/bin/vllm", line 10, in <module>'),
            p.api_raw("    sys.exit(main())"),
            p.api_raw(f'  File "{VP}/entrypoints/openai/api_server.py", line 1792, in validate_api_server_args'),
            p.api_raw("    raise KeyError("),
            p.api_raw(f"KeyError: 'invalid {label}: {name} (chose from {{ {choices} }})'")]


def _plugin_loaded(path: str | None) -> bool:
    """A parser plugin file registers names vLLM did not ship (the sim: it only has to exist)."""
    return bool(path) and os.path.isfile(os.path.expanduser(path))


def boot_script(cfg, port: int, api_pid: int | None = None, engine_pid: int | None = None,
                host: str | None = None) -> Iterator[tuple[float, object]]:
    """The start-up sequence for cfg, with delays; ends with LISTEN or ("EXIT", code)."""
    api_pid = api_pid or cfg.pid or os.getpid()
    p = Prefix(api_pid, engine_pid or api_pid + 1)
    total = max(0.0, float(cfg.load_seconds))
    mml = cfg.effective_max_model_len
    yield 0.0, p.api("api_server.py:1839", f"vLLM API server version {cfg.version}")
    yield 0.0, p.api("utils.py:233", f"non-default args: {{'model_tag': '{cfg.model}', 'host': "
                                      f"'{host or cfg.host}', 'port': {port}, 'model': '{cfg.model}', "
                                      f"'served_model_name': ['{cfg.served_model_name}']}}")
    # Parser names are checked before anything is loaded (real vLLM: validate_api_server_args).
    tool_ok = cfg.tool_call_parser in TOOL_CALL_PARSERS or _plugin_loaded(cfg.tool_parser_plugin)
    reasoning_ok = cfg.reasoning_parser in REASONING_PARSERS or _plugin_loaded(cfg.reasoning_parser_plugin)
    if cfg.tool_call_parser and (not tool_ok or cfg.fail == "bad-parser"):
        for line in bad_parser_lines(p, "tool", cfg.tool_call_parser, TOOL_CALL_PARSERS):
            yield 0.0, line
        yield 0.0, ("EXIT", 1)
        return
    if cfg.reasoning_parser and (not reasoning_ok or cfg.fail == "bad-parser"):
        for line in bad_parser_lines(p, "reasoning", cfg.reasoning_parser, REASONING_PARSERS):
            yield 0.0, line
        yield 0.0, ("EXIT", 1)
        return
    if cfg.fail == "bad-parser":
        for line in bad_parser_lines(p, "tool", "no_such_parser", TOOL_CALL_PARSERS):
            yield 0.0, line
        yield 0.0, ("EXIT", 1)
        return
    yield 0.02 * total, p.api("model.py:1510", f"Using max model len {mml}")
    yield 0.0, p.eng("core.py:93", f"Initializing a V1 LLM engine (v{cfg.version}) with config: "
                                   f"model='{cfg.model}', tensor_parallel_size={cfg.tensor_parallel_size}, "
                                   f"max_seq_len={mml}, served_model_name={cfg.served_model_name}")
    yield 0.03 * total, p.eng("gpu_model_runner.py:2602", f"Starting to load model {cfg.model}...")
    weights_s = 0.5 * total
    per = weights_s / SHARDS
    yield 0.0, p.eng_raw(f"Loading safetensors checkpoint shards:   0% Completed | 0/{SHARDS} [00:00<?, ?it/s]")
    for i in range(1, SHARDS + 1):
        el = per * i
        pct = int(100 * i / SHARDS)
        line = (f"Loading safetensors checkpoint shards: {pct:3d}% Completed | {i}/{SHARDS} "
                f"[{int(el) // 60:02d}:{int(el) % 60:02d}<00:00, {1 / per if per else 99.0:.2f}it/s]")
        yield per, p.eng_raw(line)
        if cfg.fail == "oom-weights" and i == SHARDS // 2:
            yield 0.0, p.eng("gpu_model_runner.py:2620", OOM_HINT, "ERROR")
            for line in _traceback(p, "core.py:708", [
                    (f"{VP}/v1/engine/core.py", 699, "run_engine_core", "engine_core = EngineCoreProc(*args, **kwargs)"),
                    (f"{VP}/v1/worker/gpu_model_runner.py", 2610, "load_model", "self.model = model_loader.load_model("),
                    (f"{VP}/model_executor/layers/linear.py", 1203, "weight_loader", "param_data.copy_(loaded_weight)")],
                    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.75 GiB. GPU 0 has a total "
                    "capacity of 119.70 GiB of which 1.02 GiB is free. Including non-PyTorch memory, this process "
                    "has 117.50 GiB memory in use. Of the allocated memory 116.10 GiB is allocated by PyTorch, and "
                    "350.21 MiB is reserved by PyTorch but unallocated."):
                yield 0.0, line
            for line in _api_failed(p):
                yield 0.0, line
            yield 0.0, ("EXIT", 1)
            return
    yield 0.0, p.eng("default_loader.py:267", f"Loading weights took {weights_s:.2f} seconds")
    yield 0.0, p.eng("gpu_model_runner.py:2653",
                     f"Model loading took 69.53 GiB memory and {weights_s + 0.03 * total + 1.2:.6f} seconds")
    too_small = cfg.fail == "kv-too-small" or mml > cfg.kv_tokens
    fits = cfg.kv_tokens
    if cfg.fail == "kv-too-small" and cfg.kv_tokens >= mml:  # forced: the pool holds ~5/8 of one request
        fits = max(cfg.block_size, (mml * 5 // 8) // cfg.block_size * cfg.block_size)
    kv_gib = fits * cfg.kv_bytes_per_token / GIB
    if cfg.fail == "no-kv":
        kv_gib = 0.0
    yield 0.15 * total, p.eng("gpu_worker.py:298", f"Available KV cache memory: {kv_gib:.2f} GiB")
    if cfg.fail == "no-kv":
        for line in _traceback(p, "core.py:708", [
                (f"{VP}/v1/engine/core.py", 699, "run_engine_core", "engine_core = EngineCoreProc(*args, **kwargs)"),
                (f"{VP}/v1/engine/core.py", 192, "_initialize_kv_caches", "kv_cache_configs = get_kv_cache_configs("),
                (f"{VP}/v1/core/kv_cache_utils.py", 686, "check_enough_kv_cache_memory", "raise ValueError(")],
                NO_KV):
            yield 0.0, line
        for line in _api_failed(p):
            yield 0.0, line
        yield 0.0, ("EXIT", 1)
        return
    if too_small:
        est = fits
        need = mml * cfg.kv_bytes_per_token / GIB
        if cfg.kv_error_format == "v0":
            last = (f"ValueError: The model's max seq len ({mml}) is larger than the maximum number of tokens "
                    f"that can be stored in KV cache ({est}). Try increasing `gpu_memory_utilization` or "
                    f"decreasing `max_model_len` when initializing the engine.")
        else:
            last = (f"ValueError: To serve at least one request with the models's max seq len ({mml}), "
                    f"({need:.2f} GiB KV cache is needed, which is larger than the available KV cache memory "
                    f"({kv_gib:.2f} GiB). Based on the available memory, the estimated maximum model length is "
                    f"{est}. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when "
                    f"initializing the engine.")
        for line in _traceback(p, "core.py:708", [
                (f"{VP}/v1/engine/core.py", 699, "run_engine_core", "engine_core = EngineCoreProc(*args, **kwargs)"),
                (f"{VP}/v1/core/kv_cache_utils.py", 699, "check_enough_kv_cache_memory", "raise ValueError(")], last):
            yield 0.0, line
        for line in _api_failed(p):
            yield 0.0, line
        yield 0.0, ("EXIT", 1)
        return
    for line in kv_capacity_lines(p, cfg.kv_tokens, mml, cfg.log_format, cfg.block_size):
        yield 0.0, line
    graphs_s = 0.15 * total
    yield 0.0, p.eng_raw("Capturing CUDA graphs (mixed prefill-decode, PIECEWISE):   0%|          | 0/67 [00:00<?, ?it/s]")
    yield graphs_s, p.eng_raw("Capturing CUDA graphs (mixed prefill-decode, PIECEWISE): 100%|##########| 67/67 "
                              f"[00:{int(graphs_s) % 60:02d}<00:00, 12.10it/s]")
    yield 0.0, p.eng("gpu_model_runner.py:3480", f"Graph capturing finished in {max(1, round(graphs_s))} secs, took 0.89 GiB")
    yield 0.0, p.eng("core.py:210", f"init engine (profile, create kv cache, warmup model) took {0.3 * total + 2.1:.2f} seconds")
    yield 0.0, p.api("loggers.py:147", f"Engine 000: vllm cache_config_info with initialization after "
                                       f"num_gpu_blocks is: {cfg.num_gpu_blocks}")
    yield 0.15 * total, p.api("api_server.py:1634", "Supported_tasks: ['generate']")
    if cfg.enable_auto_tool_choice:
        yield 0.0, p.api("serving_chat.py:139", '"auto" tool choice has been enabled please note that while the '
                                                "parallel_tool_calls client option is preset for compatibility "
                                                "reasons, it will be ignored.")
    yield 0.0, p.api("api_server.py:1912", f"Starting vLLM API server 0 on http://{host or cfg.host}:{port}")
    yield 0.0, p.api("launcher.py:34", "Available routes are:")
    for r in ROUTES:
        yield 0.0, p.api("launcher.py:42", f"Route: {r}, Methods: {'POST' if r.startswith('/v1/') and r != '/v1/models' else 'GET'}")
    yield 0.0, p.api_raw(f"INFO:     Started server process [{api_pid}]")
    yield 0.0, p.api_raw("INFO:     Waiting for application startup.")
    yield 0.0, LISTEN
    yield 0.0, p.api_raw("INFO:     Application startup complete.")


def crash_lines(cfg, api_pid: int | None = None) -> list[str]:
    api_pid = api_pid or cfg.pid or os.getpid()
    p = Prefix(api_pid, api_pid + 1)
    return [p.eng("core.py:780", "EngineCore encountered a fatal error.", "ERROR"),
            p.eng("core.py:780", "RuntimeError: CUDA error: an illegal memory access was encountered", "ERROR"),
            p.api("async_llm.py:480", "AsyncLLM output_handler failed.", "ERROR"),
            p.api("async_llm.py:480", ENGINE_DEAD, "ERROR"),
            p.api("core_client.py:564", "Engine core proc EngineCore_DP0 died unexpectedly, shutting down client.",
                  "ERROR"),
            p.api_raw("INFO:     Shutting down"),
            p.api_raw("INFO:     Application shutdown complete."),
            p.api_raw(f"INFO:     Finished server process [{api_pid}]")]
