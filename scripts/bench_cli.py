#!/usr/bin/env python3
"""How instant the CLI feels: median wall time of `launch --help`, `launch recipes` and
`launch plan nemotron`, as ratios to the `--help` of a bare one-command typer app, measured in
one run on this machine (targets: --help <= 1.3, plan <= 2).

    python scripts/bench_cli.py [--runs N]
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

BARE = '''
import typer
app = typer.Typer()
@app.command()
def main(name: str = "x"):
    """A bare one-command app."""
    print(name)
app()
'''


def median_time(argv: list[str], runs: int, env: dict) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    env = dict(os.environ, COLUMNS="100")
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare.py"
        bare.write_text(BARE)
        env.update(LAUNCHER_CONFIG_DIR=str(Path(tmp) / "cfg"), LAUNCHER_STATE_DIR=str(Path(tmp) / "state"))
        launch = [sys.executable, "-m", "launcher.cli.main"]
        cases = {
            "bare typer --help": [sys.executable, str(bare), "--help"],
            "launch --help": launch + ["--help"],
            "launch recipes": launch + ["recipes"],
            "launch plan nemotron": launch + ["plan", "nemotron"],
        }
        for argv in cases.values():  # warm the page cache and .pyc files
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        # interleave the measurements so machine noise hits every case alike
        samples: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.runs):
            for name, argv in cases.items():
                samples[name].append(median_time(argv, 1, env))
    base = statistics.median(samples["bare typer --help"])
    print(f"{'command':<24}{'median ms':>10}{'ratio':>8}  target")
    targets = {"launch --help": "<= 1.3", "launch plan nemotron": "<= 2"}
    for name, vals in samples.items():
        m = statistics.median(vals)
        print(f"{name:<24}{m * 1000:>10.1f}{m / base:>8.2f}  {targets.get(name, '')}")


if __name__ == "__main__":
    main()
