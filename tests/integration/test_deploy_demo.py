"""`launch demo`: the nemotron flow on two simulated hosts, end to end, leaving nothing behind."""
from __future__ import annotations

from conftest import run_launch
from deploy_helpers import running_with


def test_demo_runs_the_whole_flow_and_cleans_up(launch):
    cp = run_launch("demo", timeout=120)
    assert cp.returncode == 0, cp.stderr
    err = cp.stderr
    for needle in ("ray start --block --head", "Ray cluster up: 2/2 GPU(s)", "loading weights",
                   "nvidia/nemotron-3-super ready at", "demo finished: stopped server@sim-spark-1, "
                   "ray-worker-1@sim-spark-2, ray-head@sim-spark-1"):
        assert needle in err, (needle, err)
    assert "started nemotron-demo: nvidia/nemotron-3-super" in cp.stdout
    # the same warning on both simulated hosts is one line naming both (one per distinct cause)
    assert err.count("are not in the HF cache") == 1 and "sim-spark-1, sim-spark-2: the weights" in err
    assert "--tool-call-parser qwen3_coder --reasoning-parser nemotron_v3" in err  # the recipe's flags
    assert running_with("nemotron-demo") == [] and running_with("launcher-demo-") == []
