"""`launch demo`: the whole nemotron flow against simulated hosts on 127.0.0.1, for a person without GPUs.

What is simulated (and stands for what): `vllm` is launcher.sim.vllm_cli (vLLM's log lines, HTTP API
and capacity lines), `ray` is launcher.sim.ray_shim (Ray's start/status), and the two DGX Sparks are
two inventory hosts at 127.0.0.1 run by the local runtime. Everything else is the real launch code:
plan, preflight, Ray wait, start-up watch, capacity, validation. Everything it starts it stops.
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
from pathlib import Path

DEMO_RECIPE = "nemotron-demo"
DEMO_KEY_ENV = "LAUNCHER_DEMO_API_KEY"  # a private variable holding a throw-away key
LOAD_SECONDS = "3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_demo_files(tmp: Path, port: int) -> Path:
    """The shipped nemotron recipe, flag for flag, on a derived two-host inventory at 127.0.0.1.
    Returns the recipe path."""
    import yaml

    from launcher.spec.load import find, load_yaml

    src = load_yaml(find("recipe", "nemotron")).data
    inv = {"name": "demo-sim", "description": "two simulated DGX Sparks on 127.0.0.1",
           "hosts": {f"sim-spark-{i}": {"address": "127.0.0.1", "gpus": {"count": 1, "model": "GB10 (simulated)",
                                                                         "memory_gib": 128, "unified_memory": True}}
                     for i in (1, 2)}}
    (tmp / "hosts").mkdir(parents=True, exist_ok=True)
    inv_path = tmp / "hosts" / "demo-sim.yaml"
    inv_path.write_text(yaml.safe_dump(inv, sort_keys=False))
    recipe = dict(src)
    recipe.update(name=DEMO_RECIPE, description="nemotron on two simulated hosts (launch demo)",
                  hosts=str(inv_path), runtime="local", port=port, api_key={"env": DEMO_KEY_ENV})
    recipe.pop("image", None)
    (tmp / "recipes").mkdir(parents=True, exist_ok=True)
    path = tmp / "recipes" / f"{DEMO_RECIPE}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def move_ray_port(plan, port: int):
    """Give the simulated Ray cluster its own port, so the demo never meets a real Ray/Redis on 6379."""
    from launcher.plan import compute_hash

    for p in plan.processes:
        p.argv = [a.replace(":6379", f":{port}") if a.startswith("--address=") else
                  (f"--port={port}" if a == "--port=6379" else a) for a in p.argv]
        if p.role == "ray-head":
            p.port = port
    plan.hash = compute_hash(plan)
    return plan


def _setup_env(tmp: Path) -> dict[str, str | None]:
    from launcher.sim.shims import write_shims

    bin_dir = write_shims(tmp / "bin")
    new = {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "LAUNCHER_SIM_RAY_DIR": str(tmp / "ray"), "LAUNCHER_SIM_LOAD_SECONDS": LOAD_SECONDS,
           "LAUNCHER_SIM_HOSTS": "1",  # preflight: the hosts are simulated, there is no GPU to probe
           DEMO_KEY_ENV: "demo-" + secrets.token_urlsafe(18)}
    old = {k: os.environ.get(k) for k in new}
    os.environ.update(new)
    return old


def _restore(old: dict[str, str | None]) -> None:
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def run_demo(*, keep: bool = False) -> None:
    from launcher import deploy, ui
    from launcher.cli.serve import print_deployment
    from launcher.plan import build_for

    tmp = Path(tempfile.mkdtemp(prefix="launcher-demo-"))
    old = _setup_env(tmp)
    try:
        path = write_demo_files(tmp, _free_port())
        recipe_l, plan = build_for(str(path))
        plan = move_ray_port(plan, _free_port())
        ui.info(f"launch demo: {plan.served_name} over Ray on two simulated hosts (vllm and ray are simulators; "
                "the plan, preflight, watch, capacity and validation are real)")
        for p in plan.processes:
            ui.info(f"  {p.host:<12} {p.command}")
        from launcher import agents
        from launcher.pipeline import run_pipeline

        d = run_pipeline(recipe_l, plan, agent="none", agent_args=[], validate=True, replace=True,
                         write="default", watch=False, timeout=None)
        print_deployment(d, key_source=plan.api_key)
        # what `launch nemotron` writes next (without starting OpenCode): the provider block
        r = recipe_l.spec
        cfg = agents.get("opencode").configure(d, recipe=r, key_source=r.api_key, write="default",
                                               cwd=tmp, dry_run=True)
        ui.info("the OpenCode config `launch nemotron` would write (then it runs `opencode` on it):")
        ui.out(cfg.text.rstrip("\n"))
        if keep:
            ui.info(f"left running: `launch status`, `launch logs {DEMO_RECIPE}`, `launch down {DEMO_RECIPE}` "
                    f"(the API key is in ${DEMO_KEY_ENV} of this process only)")
    finally:
        if not keep:
            stopped = deploy.down(DEMO_RECIPE)
            ui.info(f"demo finished: stopped {', '.join(stopped) or 'nothing'}")
            shutil.rmtree(tmp, ignore_errors=True)
        _restore(old)
