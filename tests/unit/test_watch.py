"""The start-up watch: API-up line → immediate probe, returns the moment the process dies, failure
diagnosis from the log, timeout through an injectable clock, stages to the progress display."""
from __future__ import annotations

import queue
import threading
import time

from launcher.runtimes.base import ExitInfo
from launcher.watch import LineProgress, Progress, watch_startup

API = "(APIServer pid=1) INFO 11-22 03:30:01 [api_server.py:1] Starting vLLM API server 0 on http://0.0.0.0:8000"


class Feed:
    """A log that a test writes to; iteration blocks like `logs(follow=True)` until close()."""

    def __init__(self, lines=()):
        self.q: queue.Queue = queue.Queue()
        for line in lines:
            self.q.put(line)

    def put(self, line):
        self.q.put(line)

    def close(self):
        self.q.put(None)

    def __iter__(self):
        while True:
            line = self.q.get()
            if line is None:
                return
            yield line


class Rec(Progress):
    def __init__(self):
        self.stages = []

    def stage(self, st, elapsed):
        self.stages.append((st.name, st.percent))


def test_api_up_line_triggers_an_immediate_probe():
    feed = Feed(["vLLM API server version 0.11.2"])
    up = threading.Event()
    calls = []

    def probe():
        calls.append(time.monotonic())
        return up.is_set()

    def later():
        time.sleep(0.3)
        up.set()
        feed.put(API)

    threading.Thread(target=later, daemon=True).start()
    t0 = time.monotonic()
    res = watch_startup(feed, exited=lambda: None, probe=probe, timeout=30, slow_probe=60)
    assert res.ready and res.failure is None
    assert time.monotonic() - t0 < 5.0  # not the 60 s fallback probe (slack for a loaded machine)
    assert len(calls) <= 3  # one early probe, then the one the API-up line triggered
    feed.close()


def test_returns_the_moment_the_process_dies():
    feed = Feed(["vLLM API server version 0.11.2", "RuntimeError: boom"])
    dead = threading.Event()

    def die():
        time.sleep(0.2)
        dead.set()
        feed.close()

    threading.Thread(target=die, daemon=True).start()
    t0 = time.monotonic()
    res = watch_startup(feed, exited=lambda: ExitInfo(code=1, reason="exited with code 1") if dead.is_set() else None,
                        probe=lambda: False, timeout=600, exit_poll=30)
    assert time.monotonic() - t0 < 15
    assert not res.ready and res.failure.kind == "exited" and "code 1" in res.failure.cause
    assert res.tail[-1] == "RuntimeError: boom"


def test_log_failure_wins_over_the_exit_and_lingering_process_is_bounded():
    feed = Feed(["Starting to load model x...", "ValueError: No available memory for the cache blocks."])
    t0 = time.monotonic()
    res = watch_startup(feed, exited=lambda: None, probe=lambda: False, timeout=600, fail_grace=0.3)
    assert res.failure.kind == "no-kv" and time.monotonic() - t0 < 15
    feed.close()


def test_timeout_uses_the_injected_clock():
    now = [1000.0]

    def clock():
        now[0] += 5.0  # every look at the clock is 5 s later
        return now[0]

    feed = Feed(["Starting to load model x...", "Loading safetensors checkpoint shards:  12% Completed | 2/17"])
    res = watch_startup(feed, exited=lambda: None, probe=lambda: False, timeout=1800, clock=clock)
    assert not res.ready and res.failure.kind == "timeout"
    assert "1800 s" in res.failure.cause and "loading weights" in res.failure.cause
    feed.close()


def test_stages_reach_the_progress_in_order(capsys):
    lines = ["vLLM API server version 0.11.2", "Starting to load model m...",
             "Loading safetensors checkpoint shards:  50% Completed | 1/2",
             "Loading safetensors checkpoint shards: 100% Completed | 2/2",
             "Available KV cache memory: 3.1 GiB", "Capturing CUDA graphs (decode): 100%|", API]
    feed = Feed(lines)
    rec = Rec()
    state = {"n": 0}

    def probe():
        state["n"] += 1
        return any(s[0] == "api" for s in rec.stages)

    res = watch_startup(feed, exited=lambda: None, probe=probe, timeout=30, progress=rec)
    assert res.ready
    assert [s[0] for s in rec.stages] == ["starting", "weights", "weights", "weights", "kv", "graphs", "api", "ready"]
    assert rec.stages[2] == ("weights", 50.0)
    feed.close()


def test_line_progress_prints_one_line_per_stage_change(capsys):
    import io

    from launcher.engines.vllm_logs import Stage

    buf = io.StringIO()
    p = LineProgress(stream=buf)
    for pct in (0, 5, 10, 30, 60, 100):
        p.stage(Stage("weights", float(pct)), 1.0)
    p.stage(Stage("kv"), 2.0)
    out = buf.getvalue().splitlines()
    assert len(out) == 5 and "loading weights 0%" in out[0] and "profiling KV cache" in out[-1]


def test_pull_tracker_layers_to_one_percent():
    """docker pull's per-layer events (../shared/reference/vllm.md: images) -> one "pulling image" percent."""
    from launcher.runtimes.docker_api import PullProgress
    from launcher.watch import Progress, PullTracker

    class Rec(Progress):
        def __init__(self):
            self.seen = []

        def stage(self, st, elapsed):
            self.seen.append((st.name, round(st.percent), st.detail, elapsed))

    rec, t = Rec(), [0.0]
    track = PullTracker(rec, lambda: t[0], every=0.0)
    img = "vllm/vllm-openai:v0.11.2"
    for layer, status, cur, tot in [(None, "Pulling from vllm/vllm-openai", None, None),
                                    ("a", "Pulling fs layer", None, None), ("b", "Pulling fs layer", None, None),
                                    ("c", "Already exists", None, None),
                                    ("a", "Downloading", 50, 100), ("b", "Downloading", 10, 40),
                                    ("a", "Download complete", None, None), ("b", "Downloading", 40, 40),
                                    ("b", "Pull complete", None, None)]:
        t[0] += 1.0
        track(PullProgress(img, layer, status, cur, tot))
    assert rec.seen[0][:3] == ("image", 0, f"{img}: 0/1 layers")  # the "Pulling from" line is no layer
    assert ("image", 50, f"{img}: 1/3 layers") in [s[:3] for s in rec.seen]  # a 50%, b 0%, c done
    assert rec.seen[-1][:3] == ("image", 100, f"{img}: 3/3 layers")
    assert [s[3] for s in rec.seen] == sorted(s[3] for s in rec.seen)
