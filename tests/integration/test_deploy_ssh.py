"""`launch up/down` over the ssh runtime against a real sshd on a random 127.0.0.1 port (B1's fixture),
the vLLM simulator as the remote `vllm` (found through the recipe's PATH, which the runtime exports)."""
from __future__ import annotations

import yaml

from conftest import run_launch
from deploy_helpers import simenv, up_json, wait_gone, write_inventory, write_recipe  # noqa: F401
from sshd import sshd  # noqa: F401


def _recipe(simenv, sshd, name: str, **env):
    inv = write_inventory(simenv["dir"], f"{name}-hosts", {"remote": sshd.host_spec(gpus={"count": 1})})
    path = write_recipe(simenv["dir"], name, hosts=str(inv), runtime="ssh")
    data = yaml.safe_load(path.read_text())
    data["env"] = {"PATH": f"{simenv['bin']}:/usr/local/bin:/usr/bin:/bin", "LAUNCHER_SIM_LOAD_SECONDS": "0.4", **env}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, data["port"]


def test_ssh_up_attach_down(simenv, sshd):
    recipe, port = _recipe(simenv, sshd, "sshone")
    cp, d = up_json(recipe, env=simenv["env"])
    assert cp.returncode == 0, cp.stderr
    assert d["attached"] is False and d["capacity"]["kv_tokens"] == 643232
    assert sshd.leftovers(), "the server should run through sshd"
    assert wait_gone("-F --pid=", 15) == []  # the start-up log follower (ssh … tail -F) ended with `up`
    cp2, d2 = up_json(recipe, env=simenv["env"])
    assert cp2.returncode == 0 and d2["attached"] is True
    lg = run_launch("logs", "sshone", env=simenv["env"])
    assert "Starting vLLM API server" in lg.stdout
    dn = run_launch("down", "sshone", env=simenv["env"])
    assert dn.returncode == 0 and "server@remote" in dn.stdout
    assert wait_gone(f"--port {port}") == [] and sshd.leftovers() == []


def test_status_and_down_without_notes_find_the_ssh_process(simenv, sshd):
    """From a machine without launch's notes (they are wiped here): `launch status INVENTORY` finds the
    server in the host's launch log directory and probes its endpoint; `launch down RECIPE-FILE` stops it."""
    import json
    import shutil

    recipe, port = _recipe(simenv, sshd, "sshelse")
    cp, d = up_json(recipe, env=simenv["env"])
    assert cp.returncode == 0, cp.stderr
    shutil.rmtree(simenv["dir"] / "state")
    st = run_launch("status", str(simenv["dir"] / "sshelse-hosts.yaml"), "--json", env=simenv["env"])
    assert st.returncode == 0, st.stderr
    row = {r["name"]: r for r in json.loads(st.stdout)}["sshelse"]
    assert row["runtime"] == "ssh" and row["health"] == "ok" and row["endpoint"].endswith(f":{port}")
    assert [p["process"] for p in row["processes"]] == ["server"] and row["processes"][0]["alive"]
    assert "launch's log directory on 127.0.0.1" in row["note"]
    dn = run_launch("down", str(recipe), env=simenv["env"])
    assert dn.returncode == 0 and "server@remote" in dn.stdout, dn.stderr
    assert wait_gone(f"--port {port}") == [] and sshd.leftovers() == []


def test_ssh_failure_cleans_up(simenv, sshd):
    recipe, port = _recipe(simenv, sshd, "sshfail", LAUNCHER_SIM_FAIL="no-kv")
    cp = run_launch("up", str(recipe), env=simenv["env"], timeout=90)
    assert cp.returncode == 4, cp.stderr
    assert "no GPU memory was left for the KV cache" in cp.stderr and "last log lines" in cp.stderr
    assert wait_gone(f"--port {port}") == [] and sshd.leftovers() == []


def test_ssh_unreachable_host_is_a_preflight_problem(simenv):
    inv = write_inventory(simenv["dir"], "gone", {"gone": {"address": "127.0.0.1", "ssh": {"port": 1}}})
    recipe = write_recipe(simenv["dir"], "sshgone", hosts=str(inv), runtime="ssh")
    cp = run_launch("up", str(recipe), env=simenv["env"], timeout=60)
    assert cp.returncode == 1, cp.stderr
    assert "preflight found 1 problem" in cp.stderr and "not reachable over ssh" in cp.stderr


def test_missing_key_and_unreachable_host_in_one_list(simenv):
    """A missing API key is a preflight problem like any other: `launch up` and `launch RECIPE` list
    it together with the unreachable host (one run, a fix each), naming the source, never a value."""
    from deploy_helpers import KEY_ENV

    inv = write_inventory(simenv["dir"], "gone2", {"gone": {"address": "127.0.0.1", "ssh": {"port": 1}}})
    recipe = write_recipe(simenv["dir"], "sshnokey", hosts=str(inv), runtime="ssh")
    env = {k: v for k, v in simenv["env"].items() if k != KEY_ENV}
    for args in (["up", str(recipe)], [str(recipe), "--agent", "none"]):
        cp = run_launch(*args, env={**env, KEY_ENV: ""}, timeout=60)
        assert cp.returncode == 1, cp.stderr  # an unreachable host: try again later (exit 1)
        err = cp.stderr
        assert "preflight found 2 problems" in err, err
        assert f"api_key (env:{KEY_ENV}): the API key variable {KEY_ENV} is not set" in err
        assert "gone: not reachable over ssh" in err
        assert err.count("fix:") >= 3 and simenv["env"][KEY_ENV] not in err
