"""Executables that stand in for real tools on PATH in tests and `launch demo`.

`write_shims(bin_dir)` writes one small script per entry of SHIMS (name -> python module run with
`-m`), each exec'ing this interpreter so the simulator runs wherever the runtime starts `vllm`.
Extension point: add an entry to SHIMS (e.g. "ray": "launcher.sim.ray_cli") from its own issue.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

SHIMS: dict[str, str] = {
    "vllm": "launcher.sim.vllm_cli",
    "ray": "launcher.sim.ray_shim",  # `ray start` / `ray status` for the two-node Ray flow (issue 3)
    "lms": "launcher.sim.lms_shim",  # LM Studio's CLI: server start, load --context-length, ps --json (issue 7)
}


def shim_text(module: str, python: str | None = None) -> str:
    py = shlex.quote(python or sys.executable)
    return f'#!/bin/sh\n# launcher simulator shim\nexec {py} -m {shlex.quote(module)} "$@"\n'


def write_shims(bin_dir: Path, names: list[str] | None = None) -> Path:
    """Write executable shims (all of SHIMS, or only `names`) into bin_dir; returns bin_dir."""
    bin_dir = Path(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, module in SHIMS.items():
        if names is not None and name not in names:
            continue
        path = bin_dir / name
        path.write_text(shim_text(module), encoding="utf-8")
        path.chmod(0o755)
    return bin_dir
