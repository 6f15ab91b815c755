"""vLLM log lines → stages and failures. One test per wording variant in ../shared/reference/vllm.md."""
from __future__ import annotations

import pytest

from launcher.engines.vllm_logs import Failure, LogReader, Stage, classify, exit_failure, parse_stage

P_API = "(APIServer pid=4242) INFO 11-22 03:30:01 [api_server.py:1885] "
P_ENG = "(EngineCore_DP0 pid=4300) INFO 11-22 03:30:05 [gpu_model_runner.py:2653] "


@pytest.mark.parametrize("line,name,percent", [
    (P_API + "vLLM API server version 0.11.2", "starting", None),
    (P_ENG + "Starting to load model nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-NVFP4...", "weights", 0.0),
    ("Loading safetensors checkpoint shards:  47% Completed | 8/17 [00:41<00:46,  5.20s/it]", "weights", 47.0),
    (P_ENG + "Loading weights took 78.12 seconds", "weights", 100.0),
    (P_ENG + "Model loading took 66.8 GiB memory and 80.3 seconds", "weights", 100.0),
    (P_ENG + "Available KV cache memory: 31.2 GiB", "kv", None),
    (P_ENG + "Available KV cache memory: 31.2 GiB (process-scoped)", "kv", None),
    (P_ENG + "GPU KV cache size: 643,232 tokens", "kv", None),
    ("INFO 05-01 10:00:00 [executor_base.py:110] # GPU blocks: 40201, # CPU blocks: 2048", "kv", None),
    (P_ENG + "Setting attention block size to 1056 tokens to ensure that attention page size is >= mamba page size.",
     "kv", None),
    ("Capturing CUDA graphs (mixed prefill-decode, PIECEWISE): 55%|█████▌    | 37/67 [00:03<00:02]", "graphs", 55.0),
    (P_ENG + "Graph capturing finished in 12 secs, took 0.85 GiB", "graphs", None),
    (P_ENG + "init engine (profile, create kv cache, warmup model) took 95.01 seconds", "graphs", 100.0),
    (P_API + "Starting vLLM API server 0 on http://0.0.0.0:8000", "api", None),
    (P_API + "Starting vLLM server on http://0.0.0.0:8000", "api", None),
    (P_API + "Available routes are:", "api", None),
    ("(APIServer pid=4242) INFO:     Application startup complete.", "api", None),
    ("26.05-py3: Pulling from nvidia/vllm", "image", None),
])
def test_stage_lines(line, name, percent):
    st = parse_stage(line)
    assert st is not None and st.name == name
    if percent is not None:
        assert st.percent == percent


def test_plain_lines_are_no_stage():
    for line in ["", "(APIServer pid=1) INFO 11-22 [x.py:1] non-default args: {'model': 'x'}",
                 "WARNING something about tokenizers"]:
        assert parse_stage(line) is None and classify(line) is None


def test_oom_while_loading_weights_both_wordings():
    a = classify("ERROR [gpu_model_runner.py:1] Failed to load model - not enough GPU memory. Try lowering "
                 "--gpu-memory-utilization to free memory for weights, increasing --tensor-parallel-size, or "
                 "using --quantization.")
    b = classify("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.", "weights")
    c = classify("torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB", None)
    for f in (a, b, c):
        assert f.kind == "oom-weights" and "weights do not fit" in f.cause and "GPU" in f.fix


def test_cuda_oom_during_graphs_is_not_weights():
    f = classify("torch.OutOfMemoryError: CUDA out of memory.", "graphs")
    assert f.kind == "oom" and "CUDA graphs" in f.cause and "enforce-eager" in f.fix


def test_no_kv_memory():
    f = classify("ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` "
                 "when initializing the engine.")
    assert f.kind == "no-kv" and "gpu_memory_utilization" in f.fix


def test_max_len_too_long_v1_gives_vllms_estimate():
    f = classify("ValueError: To serve at least one request with the models's max seq len (262144), (16.00 GiB KV "
                 "cache is needed, which is larger than the available KV cache memory (4.50 GiB). Based on the "
                 "available memory, the estimated maximum model length is 73728. Try increasing "
                 "`gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.")
    assert f.kind == "kv-too-small" and f.suggested_max_len == 73728
    assert "262144" in f.cause and "73728" in f.fix


def test_max_len_too_long_v1_without_estimate():
    f = classify("ValueError: To serve at least one request with the models's max seq len (32768), (2.0 GiB KV "
                 "cache is needed, which is larger than the available KV cache memory (1.0 GiB). Try increasing")
    assert f.kind == "kv-too-small" and f.suggested_max_len is None and "lower vllm.max_model_len" in f.fix


def test_max_len_too_long_v0():
    f = classify("ValueError: The model's max seq len (32768) is larger than the maximum number of tokens that "
                 "can be stored in KV cache (16832). Try increasing `gpu_memory_utilization` or decreasing "
                 "`max_model_len` when initializing the engine.")
    assert f.kind == "kv-too-small" and f.suggested_max_len == 16832 and "16832" in f.fix


def test_autofit_failure_and_profiling():
    assert classify("ValueError: Cannot auto-fit max_model_len: not enough memory").kind == "kv-too-small"
    assert classify("AssertionError: Error in memory profiling. Initial free memory 80.1 GiB").kind == "profiling"


@pytest.mark.parametrize("kind,key", [("tool call", "tool_call_parser"), ("reasoning", "reasoning_parser")])
def test_bad_parser_lists_choices(kind, key):
    f = classify(f"KeyError: 'invalid {kind} parser: qwen9 (chose from {{ hermes,qwen3_coder,qwen3_xml }})'")
    assert f.kind == "bad-parser" and "qwen9" in f.cause
    assert f"vllm.{key}" in f.fix and "qwen3_coder" in f.fix


def test_exit_failures():
    assert exit_failure(137, None, True).kind == "oom-killed"
    assert "OOMKilled" in exit_failure(137, None, True).cause
    assert exit_failure(None, 9, False).kind == "oom-killed"
    f = exit_failure(1, None, False)
    assert f.kind == "exited" and "exit code 1" in f.cause


def test_reader_tqdm_carriage_returns_and_forward_only():
    r = LogReader()
    evs = r.feed("Loading safetensors checkpoint shards:   0% Completed | 0/4\rLoading safetensors checkpoint "
                 "shards:  50% Completed | 2/4\rLoading safetensors checkpoint shards: 100% Completed | 4/4")
    assert [e.percent for e in evs] == [0.0, 50.0, 100.0]
    assert r.feed(P_API + "Starting vLLM API server 0 on http://0.0.0.0:8000") and r.api_up
    assert r.feed(P_ENG + "Available KV cache memory: 3 GiB") == []  # stages never go back
    assert r.stage == "api"


def test_reader_keeps_first_failure_and_stage_context():
    r = LogReader()
    r.feed(P_ENG + "Starting to load model x...")
    ev = r.feed("torch.OutOfMemoryError: CUDA out of memory.")
    assert isinstance(ev[0], Failure) and ev[0].kind == "oom-weights"
    r.feed("ValueError: No available memory for the cache blocks.")
    assert r.failure.kind == "oom-weights"
    assert isinstance(r.feed(P_API + "vLLM API server version 0.9.0") , list)


def test_reader_version():
    r = LogReader()
    (ev,) = r.feed(P_API + "vLLM API server version 0.11.2")
    assert isinstance(ev, Stage) and r.version == "0.11.2"
