"""`vllm serve MODEL FLAGS…` for the simulator, so runtimes start it exactly as they start vLLM.

    python -m launcher.sim.vllm_cli serve MODEL --port 8000 --served-model-name NAME …

vLLM's flags it honours: --host --port --served-model-name --max-model-len (N, 32k, -1/auto)
--tool-call-parser --reasoning-parser --enable-auto-tool-choice --tensor-parallel-size/-tp
--gpu-memory-utilization --kv-cache-dtype --block-size --api-key --headless; env VLLM_API_KEY.
Any other flag is accepted and ignored (a tolerant vLLM). Simulator-only knobs come from env:
LAUNCHER_SIM_KV_TOKENS, LAUNCHER_SIM_LOAD_SECONDS, LAUNCHER_SIM_FAIL, LAUNCHER_SIM_FAULTS,
LAUNCHER_SIM_LOG_FORMAT, LAUNCHER_SIM_LATENCY_MS, LAUNCHER_SIM_RECORD, LAUNCHER_SIM_CRASH_AFTER_S.
SIGTERM/SIGINT stop it cleanly (exit 0); a failure mode exits 1 like vLLM.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from launcher.sim.vllm_config import ENV_API_KEY, SimConfig, env_overrides


def parse_len(text: str | None) -> int | None:
    """--max-model-len: 32768, 32k, 1m, -1 or auto (None = fit to memory)."""
    if text is None:
        return None
    t = text.strip().lower().replace("_", "").replace(",", "")
    if t in ("auto", "-1"):
        return None
    mult = 1
    if t and t[-1] in "km":
        mult = 1000 if t[-1] == "k" else 1000 ** 2
        if t[-1] == "k" and text.strip()[-1] == "K":
            mult = 1024
        if t[-1] == "m" and text.strip()[-1] == "M":
            mult = 1024 ** 2
        t = t[:-1]
    return int(float(t) * mult)


def port_number(text: str) -> int:
    """--port: 0-65535 (argparse turns the ValueError into a usage error, not a traceback)."""
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {port}")
    return port


def serve_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vllm serve", add_help=True)
    ap.add_argument("model_tag", nargs="?")
    ap.add_argument("--model")
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=port_number, default=8000)
    ap.add_argument("--served-model-name", nargs="+")
    ap.add_argument("--max-model-len")
    ap.add_argument("--tool-call-parser")
    ap.add_argument("--reasoning-parser")
    ap.add_argument("--tool-parser-plugin")
    ap.add_argument("--reasoning-parser-plugin")
    ap.add_argument("--enable-auto-tool-choice", action="store_true")
    ap.add_argument("--tensor-parallel-size", "-tp", type=int, default=1)
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    ap.add_argument("--kv-cache-dtype", default="auto")
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--api-key")
    ap.add_argument("--headless", action="store_true")
    return ap


def config_from_argv(argv: list[str], environ: dict[str, str] | None = None) -> tuple[SimConfig, argparse.Namespace]:
    env = os.environ if environ is None else environ
    args, _unknown = serve_parser().parse_known_args(argv)
    model = args.model or args.model_tag or "facebook/opt-125m"
    kw = dict(
        model=model,
        served_model_name=(args.served_model_name or [model])[0],
        max_model_len=parse_len(args.max_model_len),
        tool_call_parser=args.tool_call_parser,
        reasoning_parser=args.reasoning_parser,
        tool_parser_plugin=args.tool_parser_plugin,
        reasoning_parser_plugin=args.reasoning_parser_plugin,
        enable_auto_tool_choice=args.enable_auto_tool_choice,
        tensor_parallel_size=args.tensor_parallel_size,
        gpu_memory_utilization=args.gpu_memory_utilization,
        cache_dtype=args.kv_cache_dtype,
        block_size=args.block_size,
        api_key=args.api_key or env.get(ENV_API_KEY) or None,
        host=args.host,
        port=args.port,
    )
    kw.update(env_overrides(env))
    return SimConfig(**kw), args


def run_foreground(cfg: SimConfig, headless: bool = False) -> int:
    """Run one simulated server until it exits or SIGTERM/SIGINT; returns the exit code."""
    from launcher.sim.vllm_server import VllmSim

    stop = threading.Event()

    def _on_signal(signum, _frame):
        stop.set()

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if headless:  # a worker node of a multi-node mp deployment: engine only, no HTTP server
            print(f"(EngineCore_DP0 pid={os.getpid()}) INFO [core.py:93] headless worker of "
                  f"{cfg.model} waiting for the head node", flush=True)
            while not stop.wait(1.0):
                pass
            return 0
        try:
            sim = VllmSim(cfg)
        except OSError as exc:  # like vLLM: the port is taken
            print(f"(APIServer pid={os.getpid()}) OSError: [Errno {exc.errno}] {exc.strerror}", flush=True)
            return 1
        except OverflowError as exc:  # a port outside 0-65535 that slipped past the parser
            print(f"vllm serve: error: {exc}", file=sys.stderr, flush=True)
            return 2
        sim.start(wait=False)
        while not stop.is_set():
            code = sim.wait_exit(0.5) if not sim._done.is_set() else sim.exit_code
            if sim._done.is_set():
                return int(code or 0)
        sim.stop()
        return 0
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("--version", "-v"):
        print(SimConfig().version)
        return 0
    if not argv or argv[0] != "serve":
        print("usage: vllm serve MODEL [FLAGS…]  (simulated vLLM: only `serve` is supported)", file=sys.stderr)
        return 2
    try:
        cfg, args = config_from_argv(argv[1:])
    except (ValueError, OSError) as exc:
        print(f"vllm serve: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # argparse on a malformed value
        return int(exc.code or 2)
    return run_foreground(cfg, headless=args.headless)


if __name__ == "__main__":
    sys.exit(main())
