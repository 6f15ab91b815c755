"""`launch validate RECIPE` with `context: auto` measures the running deployment the way `launch RECIPE`
does (capacity -> derived limits) and checks a prompt just under that limit, instead of skipping."""
from __future__ import annotations

import json
import os

from launcher.sim import SimConfig, VllmSim
from launcher.sim.shims import write_shims
from conftest import free_port, run_launch

KEY = "k-auto-0123456789"


def _context(p) -> dict:
    assert p.returncode == 0, p.stdout + p.stderr
    return next(c for c in json.loads(p.stdout)["checks"] if c["name"] == "context")


def test_validate_recipe_with_auto_context_measures_the_running_server(isolated):
    port = free_port()
    recipe = isolated / "auto.yaml"
    recipe.write_text(f"""name: auto
engine: vllm
model: org/M
served_name: m
runtime: local
port: {port}
vllm: {{max_model_len: 16384, enable_auto_tool_choice: true, tool_call_parser: hermes}}
api_key: {{env: AUTO_KEY}}
agent: {{sessions: 2, context: auto}}
""")
    bin_dir = write_shims(isolated / "bin")
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "AUTO_KEY": KEY,
           "LAUNCHER_SIM_HOSTS": "1", "LAUNCHER_SIM_LOAD_SECONDS": "0.2", "LAUNCHER_SIM_KV_TOKENS": "20000"}
    # nothing runs: nothing to measure, said so (and the endpoint checks fail: no server)
    p = run_launch("validate", str(recipe), "--json", env=env)
    assert "no running deployment" in p.stderr
    try:
        assert run_launch("up", str(recipe), env=env).returncode == 0
        p = run_launch("validate", str(recipe), "--json", env=env)
        ctx = _context(p)
        # 2 sessions share 20,000 KV tokens: 10,000 each, minus the 1,536 margin
        assert ctx["ok"] and ctx["evidence"].startswith("full prefill: ") and "limit.context 8464" in ctx["evidence"]
        assert "KV 20,000 / 2 sessions" in p.stderr
    finally:
        run_launch("down", str(recipe), env=env)


def test_validate_attach_recipe_with_auto_context(isolated):
    sim = VllmSim(SimConfig(api_key=KEY, quiet=True, kv_tokens=300000, max_model_len=131072)).start()
    try:
        recipe = isolated / "gw.yaml"
        recipe.write_text(f"name: gw\nengine: openai\nmodel: {sim.config.served_model_name}\nopenai:\n"
                          f"  base_url: {sim.url}/v1\napi_key:\n  env: GW_KEY\nagent:\n  context: auto\n"
                          f"  sessions: 4\n")
        p = run_launch("validate", str(recipe), "--json", "--context-check", "length", env={"GW_KEY": KEY})
        ctx = _context(p)
        # KV 300,000 / 4 sessions = 75,000 (below max-model-len 131,072), minus the margin (max(2 %, 1,536) = 1,536)
        assert ctx["ok"] and ctx["evidence"].startswith("length only: "), ctx
        assert "limit.context 73464" in ctx["evidence"], ctx
    finally:
        sim.stop()
