"""Codex profile (parsed back with tomllib) and the Claude Code environment."""
from __future__ import annotations

import tomllib

import pytest

from launcher import agents
from launcher.deployment import Deployment, Limits
from launcher.errors import InputError
from launcher.spec.recipe import Recipe

SECRET = "sk-unit-c0dexc1aude9"


def make_recipe(**kw) -> Recipe:
    base = dict(name="coder.v2", engine="vllm", model="org/Model-7B", served_name="org/model",
                api_key={"env": "UNIT_KEY"}, sampling={"temperature": 0.6},
                agent={"provider": "pulsar", "output": 4096})
    base.update(kw)
    return Recipe.model_validate(base)


def make_dep(limits=Limits(context=100000, output=8192)) -> Deployment:
    return Deployment(recipe="coder.v2", engine="vllm", base_url="http://10.0.0.5:8000/v1", model="org/model",
                      plan_hash="h", limits=limits, api_key_env="VLLM_API_KEY")


def _bin(tmp_path, name):
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    (d / name).write_text("#!/bin/sh\n")
    (d / name).chmod(0o755)
    return str(d)


def test_codex_profile_parses_back(isolated):
    r = make_recipe()
    res = agents.get("codex").configure(make_dep(), recipe=r, key_source=r.api_key)
    assert res.path == isolated / "home" / ".codex" / "launch-coder-v2.config.toml"
    data = tomllib.loads(res.path.read_text())
    assert data["model"] == "org/model"
    assert data["model_provider"] == "pulsar"
    assert data["model_context_window"] == 100000
    assert 50000 <= data["model_auto_compact_token_limit"] <= 100000 - 8192
    assert data["model_providers"]["pulsar"] == {
        "name": "launch: coder.v2", "base_url": "http://10.0.0.5:8000/v1", "env_key": "UNIT_KEY",
        "wire_api": "responses"}
    assert not agents.get("codex").configure(make_dep(), recipe=r, key_source=r.api_key).written


def test_codex_honours_codex_home_and_quotes_odd_ids(isolated, tmp_path, monkeypatch):
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "ch"))
    r = make_recipe(agent={"provider": 'my.prov "x"'}, api_key={"command": "echo k"})
    res = agents.get("codex").configure(make_dep(limits=None), recipe=r, key_source=r.api_key)
    assert res.path.parent == tmp_path / "ch"
    data = tomllib.loads(res.path.read_text())
    assert data["model_providers"]['my.prov "x"']["env_key"] == "LAUNCHER_API_KEY"
    assert data["model_context_window"] > 0
    assert any("not measured" in n for n in res.notes)


def test_codex_refuses_project_and_prepares_the_profile(isolated, tmp_path):
    r = make_recipe(api_key={"command": f"printf {SECRET}"})
    with pytest.raises(InputError, match="model_provider"):
        agents.get("codex").configure(make_dep(), recipe=r, key_source=r.api_key, write="project")
    argv, env = agents.get("codex").prepare(make_dep(), recipe=r, key_source=r.api_key, args=["exec", "hi"],
                                            cwd=None, check_models=False,
                                            environ={"PATH": _bin(tmp_path, "codex") + ":/usr/bin:/bin"})
    assert argv[1:] == ["--profile", "launch-coder-v2", "exec", "hi"]
    assert env["LAUNCHER_API_KEY"] == SECRET and not any(SECRET in a for a in argv)
    with pytest.raises(InputError, match="npm install -g @openai/codex"):
        agents.get("codex").prepare(make_dep(), recipe=r, key_source=r.api_key, args=[], cwd=None,
                                    check_models=False, environ={"PATH": str(tmp_path / "none")})


def test_claude_environment(isolated, tmp_path):
    r = make_recipe()
    claude = agents.get("claude")
    res = claude.configure(make_dep(), recipe=r, key_source=r.api_key)
    assert res.path is None and SECRET not in res.text and "ANTHROPIC_AUTH_TOKEN=<the key from env:UNIT_KEY>" in res.text
    argv, env = claude.prepare(make_dep(), recipe=r, key_source=r.api_key, args=["-p", "hi"], cwd=None,
                               check_models=False,
                               environ={"PATH": _bin(tmp_path, "claude"), "UNIT_KEY": SECRET,
                                        "ANTHROPIC_API_KEY": "sk-ant-hosted"})
    assert argv[1:] == ["-p", "hi"]
    assert env["ANTHROPIC_BASE_URL"] == "http://10.0.0.5:8000"
    assert env["ANTHROPIC_AUTH_TOKEN"] == SECRET
    assert env["ANTHROPIC_API_KEY"] == ""
    for var in ("ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL", "ANTHROPIC_DEFAULT_HAIKU_MODEL",
                "CLAUDE_CODE_SUBAGENT_MODEL"):
        assert env[var] == "org/model"
    assert env["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "100000"
    assert env["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "100000"
    assert env["DISABLE_ERROR_REPORTING"] == "1"
    with pytest.raises(InputError, match="through the environment"):
        claude.configure(make_dep(), recipe=r, key_source=r.api_key, write="global")



def test_claude_small_contexts_use_the_unknown_model_window_not_the_auto_compact_window():
    """Claude Code 2.1.330 treats CLAUDE_CODE_AUTO_COMPACT_WINDOW below 100k as 100k (it says so and
    would overflow a 32k server); CLAUDE_CODE_MAX_CONTEXT_TOKENS sets the window of an unknown model."""
    from launcher.agents.claude import Claude, compact_threshold

    r = make_recipe()
    dep = make_dep(Limits(context=32768, output=8192))
    env, notes = Claude().environment(dep, r)
    assert env["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "32768"
    assert "CLAUDE_CODE_AUTO_COMPACT_WINDOW" not in env
    assert compact_threshold(32768, 8192) == 11576
    assert any("compacts at" in n and "11,576" in n for n in notes)
