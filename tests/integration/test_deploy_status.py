"""`launch status` and `launch logs -f` against two running vLLM simulators (local runtime; the
simulator serves vLLM's /health, /v1/models and /metrics names, its counters move as it generates)."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

from conftest import run_launch
from deploy_helpers import KEY_ENV, simenv, wait_gone, write_recipe  # noqa: F401


def _up(simenv, name):
    from launcher import deploy
    from launcher.plan import build_for

    recipe_l, plan = build_for(str(write_recipe(simenv["dir"], name)))
    return deploy.up(plan, recipe_l, timeout=60), plan


def test_status_probes_every_deployment_concurrently(simenv, monkeypatch):
    import httpx

    from launcher import status
    from launcher.status import collect

    spans = {}
    probe_one = status._probe_one

    async def timed(st, key, sample_s):
        t = time.monotonic()
        await probe_one(st, key, sample_s)
        spans[st.name] = (t, time.monotonic())

    monkeypatch.setattr(status, "_probe_one", timed)

    (da, pa), (db, pb) = _up(simenv, "stat-a"), _up(simenv, "stat-b")

    done = threading.Event()

    def generate():  # requests to stat-a all along: between status's two /metrics samples too
        with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {simenv['env'][KEY_ENV]}"}) as c:
            while not done.is_set():
                c.post(da.base_url + "/chat/completions",
                       json={"model": da.model, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]})
                done.wait(0.1)

    t = threading.Thread(target=generate)
    t.start()
    try:
        rows = {r.name: r for r in collect(sample_s=1.0, with_gpus=False)}
    finally:
        done.set()
        t.join(10)
    # the two probes (each with its 1 s metrics sample) ran side by side, not one after the other
    (a0, a1), (b0, b1) = spans["stat-a"], spans["stat-b"]
    assert max(a0, b0) < min(a1, b1), spans
    a, b = rows["stat-a"], rows["stat-b"]
    for r, d in ((a, da), (b, db)):
        assert r.healthy and r.health == "ok" and r.models == [d.model] and r.endpoint + "/v1" == d.base_url
        assert r.kv_usage_pct is not None and r.running is not None and r.waiting == 0
        assert r.processes and r.processes[0]["alive"] and not r.note
    assert a.tokens_per_s and a.tokens_per_s > 0 and b.tokens_per_s == 0.0 and b.running == 0

    st = run_launch("status", "--json", env=simenv["env"])
    assert st.returncode == 0, st.stderr
    import json

    got = {r["name"]: r for r in json.loads(st.stdout)}
    assert {"stat-a", "stat-b"} <= set(got) and all(got[n]["healthy"] for n in ("stat-a", "stat-b"))
    assert {"kv_usage_pct", "running", "waiting", "tokens_per_s", "gpus", "models"} <= set(got["stat-a"])


def test_logs_follow_ends_when_the_server_ends(simenv):
    from launcher import deploy

    d, plan = _up(simenv, "follow")
    p = subprocess.Popen([sys.executable, "-m", "launcher.cli.main", "logs", "follow", "-f"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(simenv))
    try:
        first = p.stdout.readline()
        assert first, p.stderr.read()
        time.sleep(0.3)
        assert p.poll() is None  # still following
        assert deploy.down("follow") == ["server@local"]
        p.wait(timeout=15)  # ends by itself once the process is gone
        rest, err = p.stdout.read(), p.stderr.read()
        assert p.returncode == 0, err
        assert "GPU KV cache size" in first + rest and simenv["env"][KEY_ENV] not in first + rest
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    assert wait_gone(f"--port {plan.processes[0].port}") == []


def _env(simenv):
    import os

    return {**os.environ, **simenv["env"]}
