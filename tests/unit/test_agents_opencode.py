"""OpenCode config writer and pre-start checks (launcher/agents/opencode.py)."""
from __future__ import annotations

import json
import os
import stat
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from launcher import agents, jsonc
from launcher.deployment import Deployment, Limits
from launcher.errors import InputError, SecretError, ServerFailed, ValidationFailed
from launcher.spec.keysource import KeySource
from launcher.spec.recipe import Recipe

SECRET = "sk-unit-4f9a1c2e7b"


def make_recipe(**kw) -> Recipe:
    base = dict(name="coder", engine="vllm", model="org/Model-7B", served_name="org/model",
                api_key={"env": "UNIT_KEY"}, sampling={"temperature": 0.6, "top_p": 0.9, "top_k": 20},
                agent={"provider": "pulsar", "output": 4096}, vllm={"reasoning_parser": "qwen3"})
    base.update(kw)
    return Recipe.model_validate(base)


def make_dep(limits=Limits(context=60000, output=4096), base_url="http://127.0.0.1:9/v1") -> Deployment:
    return Deployment(recipe="coder", engine="vllm", base_url=base_url, model="org/model", plan_hash="h",
                      limits=limits, api_key_env="VLLM_API_KEY")


def configure(write="default", recipe=None, dep=None, **kw):
    r = recipe or make_recipe()
    return agents.get("opencode").configure(dep or make_dep(), recipe=r, key_source=r.api_key, write=write, **kw)


def test_default_writes_launchs_own_file_with_the_whole_block(isolated):
    res = configure()
    assert res.path == isolated / "config" / "opencode" / "coder.json"
    assert res.written and res.env == {"OPENCODE_CONFIG": str(res.path)}
    doc = json.loads(res.path.read_text())
    prov = doc["provider"]["pulsar"]
    assert prov["npm"] == "@ai-sdk/openai-compatible"
    assert prov["options"] == {"baseURL": "http://127.0.0.1:9/v1", "apiKey": "{env:UNIT_KEY}"}
    model = prov["models"]["org/model"]
    assert model["limit"] == {"context": 60000, "output": 4096}
    assert model["reasoning"] is True
    assert model["options"] == {"temperature": 0.6, "top_p": 0.9, "top_k": 20}
    assert doc["model"] == doc["small_model"] == "pulsar/org/model"
    assert json.loads(res.text) == doc
    # the user's global config is not touched
    assert not (isolated / "home" / ".config" / "opencode").exists()
    again = configure()
    assert not again.written and again.backup is None


def test_key_references_never_values(isolated, tmp_path):
    keyfile = tmp_path / "key.txt"
    keyfile.write_text(SECRET)
    r = make_recipe(api_key={"file": str(keyfile)})
    doc = json.loads(configure(recipe=r).text)
    assert doc["provider"]["pulsar"]["options"]["apiKey"] == "{file:" + str(keyfile) + "}"
    r = make_recipe(api_key={"command": f"cat {keyfile}"})
    res = configure(recipe=r)
    assert json.loads(res.text)["provider"]["pulsar"]["options"]["apiKey"] == "{env:LAUNCHER_API_KEY}"
    assert SECRET not in res.path.read_text()
    r = make_recipe(api_key=None)
    res = configure(recipe=r)
    assert "apiKey" not in json.loads(res.text)["provider"]["pulsar"]["options"]
    assert any("no Authorization header" in n for n in res.notes)


def test_unmeasured_limits_fall_back_to_safe_figures_and_say_so(isolated):
    res = configure(dep=make_dep(limits=None), recipe=make_recipe(vllm={}))
    lim = json.loads(res.text)["provider"]["pulsar"]["models"]["org/model"]["limit"]
    assert lim["context"] > 0 and 0 < lim["output"] <= lim["context"] // 4
    assert any("not measured" in n for n in res.notes)
    res = configure(dep=make_dep(limits=None), recipe=make_recipe(vllm={"max_model_len": 131072}))
    lim = json.loads(res.text)["provider"]["pulsar"]["models"]["org/model"]["limit"]
    assert lim == {"context": 131072, "output": 4096}


def test_global_merge_honours_xdg_prefers_jsonc_keeps_comments_backs_up(isolated):
    d = isolated / "home" / ".config" / "opencode"
    d.mkdir(parents=True)
    (d / "opencode.json").write_text('{"theme": "plain"}')
    original = ('{\n  // my providers\n  "provider": {\n    "anthropic": {"options": {"apiKey": "{env:A}"}}, '
                '/* hosted */\n  },\n  "theme": "dark",\n}\n')
    f = d / "opencode.jsonc"
    f.write_text(original)
    f.chmod(0o640)
    res = configure("global")
    assert res.path == f and res.written
    text = f.read_text()
    assert "// my providers" in text and "/* hosted */" in text
    data = jsonc.parse(text)
    assert data["provider"]["anthropic"] == {"options": {"apiKey": "{env:A}"}}
    assert data["theme"] == "dark" and data["model"] == "pulsar/org/model"
    assert res.backup is not None and res.backup.read_text() == original
    assert stat.S_IMODE(f.stat().st_mode) == 0o640
    assert (d / "opencode.json").read_text() == '{"theme": "plain"}'
    again = configure("global")
    assert not again.written and again.backup is None
    assert len(list(d.glob("opencode.jsonc.bak-*"))) == 1


def test_project_merge_creates_or_merges_in_cwd(isolated, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    res = configure("project", cwd=proj)
    assert res.path == proj / "opencode.json"
    assert json.loads(res.path.read_text())["small_model"] == "pulsar/org/model"
    assert res.backup is None


def test_a_file_that_cannot_be_merged_is_left_alone_and_the_block_printed(isolated, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    f = proj / "opencode.json"
    f.write_text('{"provider": {"pulsar": "not an object"}}')
    with pytest.raises(jsonc.EditRefused) as exc:
        configure("project", cwd=proj)
    text = exc.value.render()
    assert str(f) in text and '"@ai-sdk/openai-compatible"' in text
    assert f.read_text() == '{"provider": {"pulsar": "not an object"}}'
    assert list(proj.iterdir()) == [f]


def test_dry_run_writes_nothing(isolated):
    res = configure(dry_run=True)
    assert not res.path.exists() and '"provider"' in res.text


# ------------------------------------------------------------------ prepare


def _bin_dir(tmp_path, name="opencode"):
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    exe = d / name
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return d


def prepare(environ, args=(), recipe=None, dep=None, **kw):
    r = recipe or make_recipe()
    return agents.get("opencode").prepare(dep or make_dep(), recipe=r, key_source=r.api_key, args=list(args),
                                          cwd=None, environ=environ, **kw)


def test_prepare_refuses_an_unset_key_variable(isolated, tmp_path):
    env = {"PATH": str(_bin_dir(tmp_path))}
    with pytest.raises(SecretError) as exc:
        prepare(env, check_models=False)
    assert "UNIT_KEY" in exc.value.render()


def test_prepare_names_the_install_command_when_opencode_is_missing(isolated, tmp_path):
    with pytest.raises(InputError) as exc:
        prepare({"PATH": str(tmp_path), "UNIT_KEY": SECRET}, check_models=False)
    assert "npm install -g opencode-ai" in exc.value.render()


def test_prepare_argv_and_env(isolated, tmp_path):
    env = {"PATH": str(_bin_dir(tmp_path)), "UNIT_KEY": SECRET}
    argv, child = prepare(env, check_models=False)
    assert argv == [str(tmp_path / "bin" / "opencode"), "--model", "pulsar/org/model"]
    assert child["OPENCODE_CONFIG"] == str(isolated / "config" / "opencode" / "coder.json")
    assert child["UNIT_KEY"] == SECRET  # the user's own variable, passed through
    argv, _ = prepare(env, args=["run", "hi"], check_models=False)
    assert argv[1:] == ["run", "--model", "pulsar/org/model", "hi"]
    argv, _ = prepare(env, args=["-m", "x/y"], check_models=False)
    assert argv[1:] == ["-m", "x/y"]
    argv, _ = prepare(env, args=["models", "pulsar"], check_models=False)
    assert argv[1:] == ["models", "pulsar"]
    assert not any(SECRET in a for a in argv)


def test_prepare_with_a_global_config_does_not_point_at_launchs_file(isolated, tmp_path):
    env = {"PATH": str(_bin_dir(tmp_path)), "UNIT_KEY": SECRET, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    res = configure("global", environ=env)
    _, child = prepare(env, check_models=False, config=res)
    assert "OPENCODE_CONFIG" not in child


def test_prepare_command_key_goes_to_the_child_env_only(isolated, tmp_path):
    keyfile = tmp_path / "k"
    keyfile.write_text(SECRET)
    r = make_recipe(api_key={"command": f"cat {keyfile}"})
    argv, child = prepare({"PATH": str(_bin_dir(tmp_path)) + os.pathsep + os.environ["PATH"]}, recipe=r,
                          check_models=False)
    assert child["LAUNCHER_API_KEY"] == SECRET
    assert not any(SECRET in a for a in argv)


@pytest.fixture
def sim():
    from launcher.sim.vllm_config import SimConfig
    from launcher.sim.vllm_server import VllmSim

    s = VllmSim(SimConfig(served_model_name="org/model", api_key=SECRET, quiet=True)).start(timeout=20)
    yield s
    s.stop()


def test_prepare_checks_the_served_id_against_the_server(isolated, tmp_path, sim):
    env = {"PATH": str(_bin_dir(tmp_path)), "UNIT_KEY": SECRET}
    prepare(env, dep=make_dep(base_url=sim.base_url))  # passes
    assert any(r["path"] == "/v1/models" and r["auth_ok"] for r in sim.requests)
    wrong = make_dep(base_url=sim.base_url)
    wrong.model = "org/other"
    with pytest.raises(ValidationFailed) as exc:
        prepare(env, dep=wrong)
    assert "org/model" in exc.value.render()  # lists what the server serves
    with pytest.raises(ValidationFailed, match="refuses the API key"):
        prepare({**env, "UNIT_KEY": "wrong-key-123"}, dep=make_dep(base_url=sim.base_url))


# ------------------------------------------------------------------ running


def test_run_supervised_returns_the_exit_code_or_reports_the_server(tmp_path):
    argv = [sys.executable, "-c", "import sys; sys.exit(3)"]
    assert agents.run_supervised(argv, dict(os.environ), lambda: None) == 3
    with pytest.raises(ServerFailed, match="engine died"):
        agents.run_supervised(argv, dict(os.environ), lambda: "engine died")


def test_exec_agent_replaces_the_process(tmp_path):
    import subprocess

    code = ("from launcher.agents import exec_agent; "
            "exec_agent(['sh', '-c', 'echo child:$PROBE'], {'PROBE': 'ok', 'PATH': '/usr/bin:/bin'}); "
            "print('not replaced')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "child:ok"


def test_unknown_agent_lists_the_valid_names():
    with pytest.raises(InputError) as exc:
        agents.get("opencod")
    text = exc.value.render()
    assert "opencode, codex, claude" in text and "did you mean 'opencode'" in text


# ------------------------------------------------------------------ property: merges keep foreign keys

leaf = st.one_of(st.none(), st.booleans(), st.integers(-999, 999), st.text(max_size=6))
tree = st.recursive(leaf, lambda inner: st.dictionaries(st.text(min_size=1, max_size=5), inner, max_size=3),
                    max_leaves=8)


def _flatten(d, prefix=()):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _flatten(v, prefix + (k,))
        else:
            yield prefix + (k,), v


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(existing=st.fixed_dictionaries(
    {"provider": st.dictionaries(st.sampled_from(["openai", "anthropic", "ollama", "x"]), tree, max_size=3)},
    optional={"pulsar": st.fixed_dictionaries({}, optional={
        "options": st.dictionaries(st.sampled_from(["headers", "timeout", "baseURL"]), tree, max_size=2),
        "models": st.dictionaries(st.sampled_from(["old/one", "org/model"]), tree, max_size=2),
        "whitelist": tree}),
        "theme": tree, "agent": tree, "mcp": tree}))
def test_global_merge_keeps_every_foreign_key(isolated, existing):
    existing = dict(existing)
    if "pulsar" in existing:
        existing["provider"] = {**existing["provider"], "pulsar": existing.pop("pulsar")}
    d = isolated / "home" / ".config" / "opencode"
    d.mkdir(parents=True, exist_ok=True)
    f = d / "opencode.json"
    f.write_text(json.dumps(existing, indent=2))
    res = configure("global")
    merged = json.loads(f.read_text())
    ours = {("provider", "pulsar", "npm"), ("provider", "pulsar", "name"), ("provider", "pulsar", "options", "baseURL"),
            ("provider", "pulsar", "options", "apiKey"), ("provider", "pulsar", "models", "org/model"),
            ("model",), ("small_model",)}
    for path, value in _flatten(existing):
        if any(path[: len(o)] == o for o in ours):
            continue  # one of launch's own keys
        if value == {} and any(o[: len(path)] == path for o in ours):
            continue  # an empty object launch adds its keys to
        cur = merged
        for k in path:
            cur = cur[k]
        assert cur == value, path
    assert merged["provider"]["pulsar"]["models"]["org/model"]["limit"] == {"context": 60000, "output": 4096}
    if res.written:
        assert json.loads(res.backup.read_text()) == existing
    for b in d.glob("opencode.json.bak-*"):
        b.unlink()


def test_launch_config_cli_print_and_errors(isolated, tmp_path):
    from conftest import run_launch

    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nengine: openai\nmodel: org/model\nopenai:\n  base_url: http://127.0.0.1:9/v1\n"
                      "api_key: {env: R_KEY}\nagent:\n  provider: pulsar\n  context: 16000\n  output: 2000\n")
    out = run_launch("config", str(recipe), "--print", timeout=60)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["provider"]["pulsar"]["models"]["org/model"]["limit"] == {"context": 16000, "output": 2000}
    assert not (isolated / "config" / "opencode" / "r.json").exists()  # --print writes nothing
    bad = run_launch("config", str(recipe), "--agent", "claud", timeout=60)
    assert bad.returncode == 2 and "valid agents: opencode, codex, claude" in bad.stderr
    bad = run_launch("config", str(recipe), "--agent", "claude", "--write", "project", timeout=60)
    assert bad.returncode == 2 and "through the environment" in bad.stderr
