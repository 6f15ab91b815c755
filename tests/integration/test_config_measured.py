"""`launch config` writes the limits the running server measured (vLLM simulator standing in for
`vllm serve`: same flags, log lines and /metrics), and the recipe's own figure only when none runs."""
from __future__ import annotations

import json

from launcher.sim.shims import write_shims
from conftest import free_port, run_launch


def test_config_uses_measured_limits_when_the_server_runs(isolated):
    port = free_port()
    recipe = isolated / "cfg.yaml"
    recipe.write_text(f"""name: cfg
engine: vllm
model: org/M
served_name: m
runtime: local
port: {port}
vllm: {{max_model_len: 16384, enable_auto_tool_choice: true, tool_call_parser: hermes}}
api_key: {{env: CFG_KEY}}
agent: {{sessions: 2}}
""")
    bin_dir = write_shims(isolated / "bin")
    import os

    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CFG_KEY": "k-cfg-123456",
           "LAUNCHER_SIM_HOSTS": "1", "LAUNCHER_SIM_LOAD_SECONDS": "0.2", "LAUNCHER_SIM_KV_TOKENS": "20000"}
    out = isolated / "config" / "opencode" / "cfg.json"
    from launcher.spec.load import load_recipe

    prov = load_recipe(str(recipe)).spec.agent.provider  # the recipe's default provider id, whatever it is
    before = run_launch("config", str(recipe), env=env)
    assert before.returncode == 0, before.stderr
    assert json.loads(out.read_text())["provider"][prov]["models"]["m"]["limit"]["context"] == 16384
    assert "not measured" in before.stderr
    try:
        assert run_launch("up", str(recipe), env=env).returncode == 0
        after = run_launch("config", str(recipe), env=env)
        assert after.returncode == 0, after.stderr
        limit = json.loads(out.read_text())["provider"][prov]["models"]["m"]["limit"]
        # two sessions share a 20,000-token KV pool: each holds less than max-model-len 16,384
        assert "KV 20,000 / 2 sessions" in after.stderr, after.stderr
        assert limit["context"] < 10000 and limit["output"] <= limit["context"] // 4
        assert list((isolated / "config" / "opencode").glob("cfg.json.bak-*")), "no backup of the old file"
    finally:
        run_launch("down", str(recipe), env=env)
