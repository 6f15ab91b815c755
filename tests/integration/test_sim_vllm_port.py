"""A port outside 0-65535 is a usage error (exit 2, no traceback), in `launch sim vllm` and in the
simulator's `vllm serve` entry."""
from __future__ import annotations

import subprocess
import sys

from conftest import run_launch


def test_launch_sim_vllm_rejects_an_out_of_range_port():
    cp = run_launch("sim", "vllm", "--port", "99999", timeout=30)
    assert cp.returncode == 2 and "Traceback" not in cp.stderr
    assert "--port" in cp.stderr and "65535" in cp.stderr


def test_vllm_serve_shim_rejects_an_out_of_range_port():
    cp = subprocess.run([sys.executable, "-m", "launcher.sim.vllm_cli", "serve", "m", "--port", "99999"],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 2 and "Traceback" not in cp.stderr
    assert "port must be 0-65535" in cp.stderr
