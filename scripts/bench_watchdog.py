#!/usr/bin/env python3
"""Watchdog speed and footprint: N simulated vLLM nodes (default 64) probed concurrently.

1. One round: wall time of the whole round / the slowest single probe in it (target <= 1.5: the
   probes really run concurrently).
2. Ten simulated minutes (60 rounds at the 10 s period, the clock's sleeps skipped): the watchdog
   process's CPU time / 600 s (target < 1 % of a core) and its RSS (target < 60 MB).

The simulators run in a child process so their cost is not counted as the watchdog's.
    python scripts/bench_watchdog.py [--nodes 64] [--minutes 10] [--reconnect] [--json]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, sys, threading
from launcher.sim import SimConfig, VllmSim
sims = [VllmSim(SimConfig(quiet=True)).start() for _ in range(int(sys.argv[1]))]
print(json.dumps([s.url for s in sims]), flush=True)
sys.stdin.read()  # until the parent closes stdin
for s in sims:
    s.stop()
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--period", type=float, default=10.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--reconnect", action="store_true",
                    help="drop every connection after each round, as a real vLLM does (uvicorn closes idle "
                         "keep-alive connections after 5 s, less than the 10 s period)")
    args = ap.parse_args()

    import psutil

    from launcher.power.base import FakeClock
    from launcher.watchdog import decide as D
    from launcher.watchdog.journal import Journal
    from launcher.watchdog.loop import Node, Watchdog
    from launcher.watchdog.probes import Prober, Target

    child = subprocess.Popen([sys.executable, "-c", CHILD, str(args.nodes)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        urls = json.loads(child.stdout.readline())
        nodes = [Node(f"n{i}", Target(f"n{i}", [u])) for i, u in enumerate(urls)]
        policy = D.Policy(period=args.period, timeout=10.0, grace=0)
        clock = FakeClock(time.monotonic())
        journal = Journal(os.devnull, console=None)
        journal.events = _Discard()  # keep the footprint honest: the journal goes to a file only
        wd = Watchdog(nodes, policy=policy, clock=clock, journal=journal, prober=Prober(timeout=10.0))
        me = psutil.Process()

        async def run():
            await wd.tick(wait=True)  # warm-up: connections, model ids
            t0 = time.perf_counter()
            await wd.tick(wait=True)
            round_s = time.perf_counter() - t0
            probes = [e for e in _last_probes(wd, len(nodes))]
            slowest = max(e["elapsed"] for e in probes)  # one node's whole probe (/health, then /metrics)
            rounds = int(args.minutes * 60 / args.period)
            cpu0 = me.cpu_times()
            w0 = time.perf_counter()
            for _ in range(rounds):
                await wd.tick(wait=True)
                if args.reconnect:
                    for c in wd.prober._conns.values():
                        c.close()
                await clock.asleep(args.period)  # simulated: no real waiting
            cpu1 = me.cpu_times()
            busy_wall = time.perf_counter() - w0
            await wd.prober.aclose()
            cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
            return round_s, slowest, rounds, cpu, busy_wall

        round_s, slowest, rounds, cpu, busy_wall = asyncio.run(run())
        rss_mb = me.memory_info().rss / 2**20
        sim_s = rounds * args.period
        res = {
            "nodes": args.nodes,
            "reconnect_each_round": args.reconnect,
            "round_wall_s": round(round_s, 4),
            "slowest_probe_s": round(slowest, 4),
            "round_over_slowest": round(round_s / slowest, 2) if slowest else None,
            "simulated_s": sim_s,
            "rounds": rounds,
            "cpu_s": round(cpu, 3),
            "cpu_share_pct": round(100 * cpu / sim_s, 3),
            "cpu_ms_per_node_round": round(1000 * cpu / (rounds * args.nodes), 3),  # stable on a shared machine
            "rss_mb": round(rss_mb, 1),
            "busy_wall_s": round(busy_wall, 2),
        }
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['nodes']} nodes, one round: {res['round_wall_s']} s wall, slowest single probe "
              f"{res['slowest_probe_s']} s -> ratio {res['round_over_slowest']} (target <= 1.5)")
        print(f"{args.minutes:g} simulated minutes ({rounds} rounds): CPU {res['cpu_s']} s = "
              f"{res['cpu_share_pct']} % of a core (target < 1 %; {res['cpu_ms_per_node_round']} ms per node per round), RSS {res['rss_mb']} MB (target < 60 MB)")
    ok = (res["round_over_slowest"] or 0) <= 1.5 and res["cpu_share_pct"] < 1 and res["rss_mb"] < 60
    return 0 if ok else 1


class _Discard(list):
    """A journal event list that keeps only the last round's probes."""

    def append(self, item):
        if item.get("event") == "round":
            return
        if len(self) > 1024:
            del self[:512]
        super().append(item)


def _last_probes(wd, n):
    return [e for e in wd.journal.events if e["event"] == "probe"][-n:]


if __name__ == "__main__":
    sys.exit(main())
