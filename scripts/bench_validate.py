#!/usr/bin/env python3
"""How much the validation gate costs, in model round trips.

Starts the vLLM simulator in its own process with a latency of 300 ms before every generation
(`launch sim vllm --latency-ms 300`), runs the whole gate (models, tool call, streamed tool call,
round trip, auth, and the context probe when --context is given) several times and prints
total gate time / 300 ms. Target: ≤ 2.5 (the round trip must wait for the tool call: 2 is the floor).

    python scripts/bench_validate.py [--runs 5] [--latency-ms 300] [--context 32768] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGET = 2.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sim(port: int, latency_ms: float, key: str, max_model_len: int):
    import httpx

    env = {**os.environ, "VLLM_API_KEY": key}
    proc = subprocess.Popen([sys.executable, "-m", "launcher.cli.main", "sim", "vllm", "--port", str(port),
                             "--latency-ms", str(latency_ms), "--load-seconds", "0",
                             "--max-model-len", str(max_model_len)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the simulator exited: {proc.stderr.read().decode()[-500:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1, trust_env=False).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop(proc)
    raise SystemExit("the simulator did not become healthy in 30 s")


def stop(proc) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--latency-ms", type=float, default=300.0)
    ap.add_argument("--context", type=int, default=32768, help="limit.context for the context probe (0: skip it)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from launcher.validate import validate_endpoint

    key = "bench-key-" + os.urandom(6).hex()
    port = free_port()
    proc = start_sim(port, args.latency_ms, key, max(args.context, 8192))
    times, ok = [], True
    try:
        base = f"http://127.0.0.1:{port}/v1"
        validate_endpoint(base, "nvidia/nemotron-3-super", api_key=key, timeout=30)  # warm-up (imports, sockets)
        for _ in range(args.runs):
            t0 = time.perf_counter()
            rep = validate_endpoint(base, "nvidia/nemotron-3-super", api_key=key, timeout=30,
                                    context_limit=args.context or None, sampling={"temperature": 1.0, "top_p": 0.95})
            times.append(time.perf_counter() - t0)
            ok = ok and rep.ok
    finally:
        stop(proc)
    lat = args.latency_ms / 1000.0
    ratios = [t / lat for t in times]
    result = {"runs": args.runs, "latency_ms": args.latency_ms, "context": args.context, "all_ok": ok,
              "gate_s_median": round(statistics.median(times), 3), "gate_s_max": round(max(times), 3),
              "ratio_median": round(statistics.median(ratios), 2), "ratio_max": round(max(ratios), 2),
              "target": TARGET}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"validation gate: median {result['gate_s_median']:.3f} s, max {result['gate_s_max']:.3f} s "
              f"over {args.runs} runs at {args.latency_ms:g} ms per request (checks ok: {ok})")
        print(f"gate time / {args.latency_ms:g} ms = {result['ratio_median']:.2f} (median), "
              f"{result['ratio_max']:.2f} (max); target ≤ {TARGET}")
    return 0 if ok and result["ratio_median"] <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
