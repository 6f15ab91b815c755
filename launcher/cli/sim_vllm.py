"""`launch sim vllm …`: a simulated vLLM server in the foreground (Ctrl-C stops it)."""
from __future__ import annotations

from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("vllm")
    def sim_vllm(
        port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
        served_model_name: str = typer.Option("nvidia/nemotron-3-super", "--served-model-name"),
        model: str = typer.Option("nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-NVFP4", "--model"),
        kv_tokens: int = typer.Option(643232, "--kv-tokens", help="KV pool in tokens."),
        max_model_len: Optional[str] = typer.Option("262144", "--max-model-len", help="N, 32k or auto."),
        load_seconds: float = typer.Option(3.0, "--load-seconds", help="Start-up time to simulate."),
        fail: Optional[str] = typer.Option(None, "--fail", help="oom-weights|no-kv|kv-too-small|bad-parser|"
                                                               "crash-after-ready|hang|wedge"),
        fault: Optional[List[str]] = typer.Option(None, "--fault", help="Request-time fault (repeatable)."),
        api_key: Optional[str] = typer.Option(None, "--api-key", envvar="VLLM_API_KEY",
                                              help="Require this key (default: env VLLM_API_KEY)."),
        latency_ms: float = typer.Option(0.0, "--latency-ms", help="Delay before each answer."),
        tool_call_parser: Optional[str] = typer.Option("qwen3_coder", "--tool-call-parser"),
        reasoning_parser: Optional[str] = typer.Option("nemotron_v3", "--reasoning-parser"),
        log_format: str = typer.Option("new", "--log-format", help="new|split|v0 KV capacity lines."),
        record: Optional[str] = typer.Option(None, "--record", help="Append each request as JSON to FILE."),
    ):
        """Serve a simulated vLLM (real log lines, /v1 API, faults) until Ctrl-C."""
        from launcher.errors import InputError
        from launcher.sim.vllm_cli import parse_len, run_foreground
        from launcher.sim.vllm_config import SimConfig, env_overrides, parse_faults

        try:
            faults = set(parse_faults(",".join(fault or [])))
            env = env_overrides()
            faults |= set(env.pop("faults", ()))
            cfg = SimConfig(
                served_model_name=served_model_name, model=model, kv_tokens=kv_tokens,
                max_model_len=parse_len(max_model_len), load_seconds=load_seconds, fail=fail,
                faults=frozenset(faults), api_key=api_key or None, latency_s=latency_ms / 1000.0,
                tool_call_parser=tool_call_parser or None, reasoning_parser=reasoning_parser or None,
                enable_auto_tool_choice=bool(tool_call_parser), host=host, port=port,
                log_format=log_format, record=record,
            )
        except ValueError as exc:
            raise InputError(str(exc), where="launch sim vllm",
                             fix="see `launch sim vllm --help` for the accepted names") from None
        code = run_foreground(cfg)
        if code:
            raise typer.Exit(code)
