#!/usr/bin/env python3
"""How fast `launch` notices readiness, and what watching a start-up costs.

1. Ready delay: the vLLM simulator (in this process, so the instant it starts listening is known
   exactly: VllmSim.ready_at) writes its log to a file, as the local runtime's child does; launch's
   own follower + start-up watch + readiness probe read it. Delay = launch reports ready − ready_at.
   Targets: p50 ≤ 50 ms, p95 ≤ 150 ms (a 5 s curl loop averages 2.5 s).
2. Footprint: the real `launch up` CLI (local runtime, the simulator as `vllm`) watching a start-up
   of --load-seconds (default 60): its CPU time (its own, not the server's) over the watch and its
   peak RSS (VmHWM). Targets: < 2 % of one core, < 80 MB.

    python scripts/bench_ready.py [--runs 20] [--load-seconds 60] [--skip-footprint]
Prints figures only; tests never assert them.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class _LocalStub:
    """Just enough of a runtime for the follower: the process is alive while the sim runs."""

    name = "local"

    def __init__(self, sim):
        self.sim = sim

    def exit_info(self, handle):
        return None if self.sim.exit_code is None else object()


def ready_delay(runs: int, load_s: float) -> list[float]:
    from launcher.bringup.vllm_follow import Follower
    from launcher.runtimes.base import Handle
    from launcher.sim.vllm_config import SimConfig
    from launcher.sim.vllm_server import VllmSim
    from launcher.watch import ReadyProbe, watch_startup

    delays = []
    with tempfile.TemporaryDirectory() as d:
        for i in range(runs):
            log = Path(d) / f"server-{i}.log"
            with open(log, "w", buffering=1) as stream:
                sim = VllmSim(SimConfig(served_model_name="bench", load_seconds=load_s, log_stream=stream))
                handle = Handle("local", "bench", "h", "server", "server", "local", "127.0.0.1", {}, str(log))
                follower = Follower(_LocalStub(sim), handle)
                probe = ReadyProbe(f"http://127.0.0.1:{sim.port}", "bench")
                sim.start(wait=False)
                try:
                    res = watch_startup(follower, exited=lambda: None, probe=probe, timeout=60)
                    seen = time.time()
                    assert res.ready, res.failure
                    end = time.monotonic() + 1.0  # the sim sets ready_at just after it starts serving:
                    while sim.ready_at is None and time.monotonic() < end:  # launch can be quicker
                        time.sleep(0.001)
                    seen = min(seen, time.time())
                    delays.append(seen - sim.ready_at)
                finally:
                    follower.close()
                    probe.close()
                    sim.stop()
    return delays


def footprint(load_s: float) -> dict:
    import psutil
    import yaml

    from launcher.sim.shims import write_shims

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        bin_dir = write_shims(d / "bin")
        with __import__("socket").socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        recipe = d / "bench.yaml"
        recipe.write_text(yaml.safe_dump({"name": "bench-footprint", "engine": "vllm", "model": "org/bench",
                                          "port": port, "vllm": {"max_model_len": 32768}}))
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "LAUNCHER_STATE_DIR": str(d / "st"),
               "LAUNCHER_SIM_LOAD_SECONDS": str(load_s), "LAUNCHER_SIM_HOSTS": "1"}
        t0 = time.monotonic()
        p = subprocess.Popen([sys.executable, "-m", "launcher.cli.main", "up", str(recipe), "--json"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc = psutil.Process(p.pid)
        hwm, cpu_start, t_start, cpu_last, t_last = 0, None, None, 0.0, 0.0
        while p.poll() is None:
            try:
                ct = proc.cpu_times()
                cpu = ct.user + ct.system
                with open(f"/proc/{p.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            hwm = max(hwm, int(line.split()[1]))
            except (psutil.NoSuchProcess, OSError):
                break
            now = time.monotonic()
            if cpu_start is None and now - t0 > 3.0:  # past imports, preflight and the start
                cpu_start, t_start = cpu, now
            cpu_last, t_last = cpu, now
            time.sleep(0.5)
        out, err = p.communicate()
        subprocess.run([sys.executable, "-m", "launcher.cli.main", "down", "bench-footprint"], env=env,
                       capture_output=True, timeout=60)
        watch_cpu = (cpu_last - cpu_start) if cpu_start is not None else None
        watch_wall = (t_last - t_start) if t_start is not None else None
        return {"rc": p.returncode, "wall_s": time.monotonic() - t0, "watch_cpu_s": watch_cpu,
                "watch_wall_s": watch_wall, "core_pct": (100 * watch_cpu / watch_wall) if watch_wall else None,
                "peak_rss_mb": hwm / 1024, "stderr_tail": err.strip().splitlines()[-1:] if p.returncode else []}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--sim-load", type=float, default=0.3, help="start-up seconds of each delay run")
    ap.add_argument("--load-seconds", type=float, default=60.0, help="start-up watched for the footprint")
    ap.add_argument("--skip-footprint", action="store_true")
    a = ap.parse_args()
    delays = sorted(ready_delay(a.runs, a.sim_load))
    p50 = statistics.median(delays) * 1000
    p95 = delays[min(len(delays) - 1, int(round(0.95 * (len(delays) - 1))))] * 1000
    print(f"ready delay over {len(delays)} runs: p50 {p50:.1f} ms (target <= 50), p95 {p95:.1f} ms (target <= 150), "
          f"max {delays[-1] * 1000:.1f} ms")
    if not a.skip_footprint:
        f = footprint(a.load_seconds)
        if f["rc"] != 0:
            print(f"footprint run failed (exit {f['rc']}): {f['stderr_tail']}")
            return 1
        print(f"launch up watching a {a.load_seconds:g} s start-up: CPU {f['watch_cpu_s']:.2f} s over "
              f"{f['watch_wall_s']:.1f} s = {f['core_pct']:.2f} % of a core (target < 2 %), "
              f"peak RSS {f['peak_rss_mb']:.1f} MB (target < 80 MB), total wall {f['wall_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
