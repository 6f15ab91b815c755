"""Free memory on this machine, for sizing a laptop engine's context (Ollama, LM Studio).

Ollama places layers in GPU memory and spills the rest to system RAM, so what a model can use is the
free VRAM of NVIDIA GPUs (NVML, when present) plus the available RAM. On unified-memory machines (Apple
silicon, GB10) NVML reports nothing and RAM is the whole story. LAUNCHER_FREE_MEMORY (bytes, or with a
K/M/G/T suffix, binary) overrides the reading for what-if runs and tests.
"""
from __future__ import annotations

import os
import re

from launcher.errors import InputError

GIB = 1024 ** 3
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.I)


def parse_size(text: str) -> int:
    m = _SIZE.match(text or "")
    if not m:
        raise InputError(f"LAUNCHER_FREE_MEMORY={text!r} is not a size",
                         where="environment", fix="use bytes or a number with K/M/G/T, e.g. 24G")
    scale = {"": 1, "K": 1024, "M": 1024 ** 2, "G": GIB, "T": 1024 ** 4}[m.group(2).upper()]
    return int(float(m.group(1)) * scale)


def gpu_free_bytes() -> int:
    """Free memory summed over NVIDIA GPUs; 0 without NVML (no GPU, no driver, unified memory)."""
    try:
        import pynvml
    except ImportError:
        return 0
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver / no device: nothing to add
        return 0
    try:
        total = 0
        for i in range(pynvml.nvmlDeviceGetCount()):
            try:
                total += int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i)).free)
            except Exception:  # noqa: BLE001 - unified memory reports "not supported"
                continue
        return total
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def free_bytes() -> tuple[int, str]:
    """(bytes a model may use now, how that was read)."""
    override = os.environ.get("LAUNCHER_FREE_MEMORY")
    if override:
        return parse_size(override), "LAUNCHER_FREE_MEMORY"
    import psutil

    ram = int(psutil.virtual_memory().available)
    gpu = gpu_free_bytes()
    if gpu:
        return ram + gpu, f"available RAM {ram / GIB:.1f} GiB + free GPU memory {gpu / GIB:.1f} GiB"
    return ram, f"available RAM {ram / GIB:.1f} GiB"


def gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"
