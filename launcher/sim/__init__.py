"""Simulated servers for tests, benchmarks and `launch demo` (stdlib HTTP, no GPU needed).

vLLM: `VllmSim(SimConfig(...)).start()`; see launcher/sim/vllm_server.py and vllm_config.py.
"""
from __future__ import annotations

from launcher.sim.vllm_chat import count_tokens, messages_of_size
from launcher.sim.vllm_config import FAIL_MODES, FAULTS, SimConfig
from launcher.sim.vllm_server import SimExited, VllmSim

__all__ = ["FAIL_MODES", "FAULTS", "SimConfig", "SimExited", "VllmSim", "count_tokens", "messages_of_size"]
