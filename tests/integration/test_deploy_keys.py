"""`launch up` and API keys, with the vLLM simulator as `vllm` (it reads VLLM_API_KEY from its
environment and answers 401 on /v1 without the key, as vLLM does)."""
from __future__ import annotations

import time

import yaml

from conftest import run_launch
from deploy_helpers import KEY_ENV, simenv, up_json, wait_gone, write_recipe  # noqa: F401


def test_a_vllm_api_key_exported_in_the_shell_does_not_protect_a_keyless_recipe(simenv):
    env = {**simenv["env"], "VLLM_API_KEY": "exported-in-this-shell"}
    recipe = write_recipe(simenv["dir"], "keyless")
    data = yaml.safe_load(recipe.read_text())
    del data["api_key"]
    recipe.write_text(yaml.safe_dump(data))
    port = str(data["port"])
    cp = run_launch("-v", "up", str(recipe), "--timeout", "40", env=env, timeout=90)
    try:
        assert cp.returncode == 0, cp.stderr
        assert "not passing VLLM_API_KEY" in cp.stderr  # said at -v
        assert "exported-in-this-shell" not in cp.stdout + cp.stderr
    finally:
        run_launch("down", "keyless", env=env)
        assert wait_gone(f"--port {port}") == []


def test_attaching_with_a_key_the_server_refuses_fails_at_once_with_exit_4(simenv):
    env = simenv["env"]
    recipe = write_recipe(simenv["dir"], "keyed")
    port = str(yaml.safe_load(recipe.read_text())["port"])
    cp, d = up_json(recipe, env=env)
    try:
        assert cp.returncode == 0, cp.stderr
        other = {**env, KEY_ENV: "not-the-servers-key"}
        t0 = time.monotonic()
        cp2 = run_launch("up", str(recipe), "--timeout", "600", env=other, timeout=120)
        assert cp2.returncode == 4, cp2.stderr
        assert time.monotonic() - t0 < 60  # not the timeout
        assert f"http://127.0.0.1:{port}/v1/models" in cp2.stderr and "401" in cp2.stderr
        assert f"env:{KEY_ENV}" in cp2.stderr and "not-the-servers-key" not in cp2.stderr
        assert "Traceback" not in cp2.stderr
        # the attached server is left alone
        st, again = up_json(recipe, env=env)
        assert st.returncode == 0 and again["attached"] is True
    finally:
        run_launch("down", "keyed", env=env)
        assert wait_gone(f"--port {port}") == []


def test_a_server_that_wants_a_key_launch_lacks_fails_at_once_and_is_cleaned_up(simenv):
    """The server protects itself (here a `vllm` wrapper exports VLLM_API_KEY, as a site script might);
    the recipe has no api_key: exit 4 at the first 401, naming the URL and that no key was sent."""
    import os
    import stat

    d = simenv["dir"] / "wrapbin"
    d.mkdir()
    exe = d / "vllm"
    exe.write_text(f"#!/bin/sh\nexport VLLM_API_KEY=site-wrapper-key\nexec {simenv['bin']}/vllm \"$@\"\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    env = {**simenv["env"], "PATH": f"{d}{os.pathsep}{simenv['env']['PATH']}"}
    recipe = write_recipe(simenv["dir"], "wantskey")
    data = yaml.safe_load(recipe.read_text())
    del data["api_key"]
    recipe.write_text(yaml.safe_dump(data))
    port = str(data["port"])
    t0 = time.monotonic()
    cp = run_launch("up", str(recipe), "--timeout", "600", env=env, timeout=120)
    assert cp.returncode == 4, cp.stderr
    assert time.monotonic() - t0 < 60
    assert f"http://127.0.0.1:{port}/v1/models answered 401" in cp.stderr and "sent none" in cp.stderr
    assert "stopped what this launch started: server@local" in cp.stderr
    assert wait_gone(f"--port {port}") == []
    st = run_launch("down", "wantskey", env=env)
    assert "nothing launch started" in st.stdout
