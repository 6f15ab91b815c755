"""End to end with the real OpenCode CLI (npm opencode-ai, pinned by scripts/test) against the vLLM
simulator: what launch writes is what OpenCode reads, and what arrives on the wire is right.

The binary comes from LAUNCHER_TEST_OPENCODE (scripts/test installs opencode-ai@1.18.33 into
~/.cache/launcher-ci/npm-opencode-1.18.33); under scripts/test a missing binary fails the test.
OpenCode runs offline: autoupdate, the models.dev fetch, LSP downloads, sharing and default plugins
are switched off through its environment, and every run is bounded by a timeout.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from launcher import agents, jsonc
from conftest import require, run_launch

pytestmark = pytest.mark.slow

KEY = "sk-e2e-7d1f0c9a4b2e"
SERVED = "acme/coder-7b"
PROVIDER = "e2eprov"
OFFLINE = {  # OpenCode 1.18 switches (strings in its binary): nothing may reach for the internet
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
    "OPENCODE_DISABLE_CLAUDE_CODE": "1",
}
TIMEOUT = 120


@pytest.fixture
def opencode():
    path = require("the OpenCode CLI", os.environ.get("LAUNCHER_TEST_OPENCODE"),
                   "npm install --prefix ~/.cache/launcher-ci/npm-opencode-1.18.33 --no-audit --no-fund "
                   "opencode-ai@1.18.33, then LAUNCHER_TEST_OPENCODE=…/node_modules/.bin/opencode")
    return Path(path)


@pytest.fixture
def sim():
    from launcher.sim.vllm_config import SimConfig
    from launcher.sim.vllm_server import VllmSim

    s = VllmSim(SimConfig(served_model_name=SERVED, api_key=KEY, quiet=True)).start(timeout=30)
    yield s
    s.stop()


def write_recipe(directory: Path, sim, api_key: str) -> Path:
    """An attach-only recipe for the simulator; the context and output budget are fixed in it, so
    the limits launch writes are known without a measurement."""
    path = directory / "e2e.yaml"
    path.write_text(f"""name: e2e
engine: openai
model: {SERVED}
openai:
  base_url: {sim.base_url}
api_key: {api_key}
sampling:
  temperature: 0.35
  top_p: 0.8
agent:
  name: opencode
  provider: {PROVIDER}
  output: 3000
  context: 24000
  reasoning: true
""")
    return path


def child_env(isolated: Path, opencode: Path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCODE")}
    env.update(OFFLINE)
    env["PATH"] = str(opencode.parent) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def prepare(recipe_path: Path, args: list[str], env: dict, cwd: Path, config=None):
    """What `launch RECIPE` does after validation: plan -> deployment -> prepare."""
    from launcher.cli.config import deployment_from_plan
    from launcher.plan import build_for

    recipe_l, plan = build_for(str(recipe_path))
    r = recipe_l.spec
    return agents.get("opencode").prepare(deployment_from_plan(plan), recipe=r, key_source=r.api_key, args=args,
                                          cwd=cwd, environ=env, config=config)


def run_watched(argv: list[str], env: dict, cwd: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run OpenCode, sampling the argv of its whole process tree with psutil while it runs."""
    seen: list[str] = []
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + TIMEOUT
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                ps = psutil.Process(proc.pid)
                for p in [ps, *ps.children(recursive=True)]:
                    try:
                        seen.append(" ".join(p.cmdline()))
                    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                        pass
            except psutil.NoSuchProcess:
                break
            time.sleep(0.2)
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            for p in psutil.Process(proc.pid).children(recursive=True):
                p.kill()
            proc.kill()
            proc.wait(10)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err), seen


def files_holding(root: Path, needle: str, skip: set[Path] = frozenset()) -> list[Path]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file() and p not in skip:
            try:
                if needle.encode() in p.read_bytes():
                    hits.append(p)
            except OSError:
                pass
    return hits


def test_launch_config_then_opencode_models_and_run(isolated, opencode, sim):
    proj = isolated / "proj"
    proj.mkdir()
    recipe = write_recipe(isolated, sim, "{env: E2E_VLLM_KEY}")
    env = child_env(isolated, opencode, E2E_VLLM_KEY=KEY)

    cfg = run_launch("config", str(recipe), env=env, cwd=proj, timeout=60)
    assert cfg.returncode == 0, cfg.stderr
    written = isolated / "config" / "opencode" / "e2e.json"
    assert str(written) in cfg.stdout
    assert not (proj / "opencode.json").exists() and not (isolated / "home" / ".config" / "opencode" / "opencode.json").exists()

    argv, cenv = prepare(recipe, ["models", PROVIDER], env, proj)
    assert cenv["OPENCODE_CONFIG"] == str(written)
    models = subprocess.run(argv, env=cenv, cwd=proj, capture_output=True, text=True, timeout=TIMEOUT,
                            stdin=subprocess.DEVNULL)
    assert models.returncode == 0, models.stderr
    assert f"{PROVIDER}/{SERVED}" in models.stdout.split()

    sim.requests.clear()
    argv, cenv = prepare(recipe, ["run", "Say hello in one word."], env, proj)
    assert argv[1:4] == ["run", "--model", f"{PROVIDER}/{SERVED}"]
    done, cmdlines = run_watched(argv, cenv, proj)
    assert done.returncode == 0, done.stderr[-2000:]

    chats = [r for r in sim.requests if r["path"] == "/v1/chat/completions"]
    assert len(chats) >= 2, [r["path"] for r in sim.requests]
    for r in chats:
        body = r["json"]
        assert body["model"] == SERVED
        assert r["auth_ok"], "Authorization: Bearer <key> did not arrive"
        assert body["max_tokens"] == 3000  # limit.output
        assert body["temperature"] == 0.35 and body["top_p"] == 0.8
    titles = [r for r in chats if "title" in str(r["json"]["messages"][0].get("content", "")).lower()
              and not r["json"].get("tools")]
    assert titles, "the title request did not reach the local server (small_model)"
    assert any(r["json"].get("tools") and r["json"].get("tool_choice") == "auto" for r in chats)

    assert cmdlines and not [c for c in cmdlines if KEY in c]
    for text in (cfg.stdout, cfg.stderr, models.stdout, models.stderr, done.stdout, done.stderr):
        assert KEY not in text
    assert files_holding(isolated, KEY, skip={recipe}) == []


def test_global_jsonc_merge_is_read_by_opencode_with_a_command_key(isolated, opencode, sim):
    proj = isolated / "proj"
    proj.mkdir()
    keyfile = isolated / "key.txt"
    keyfile.write_text(KEY)
    recipe = write_recipe(isolated, sim, f'{{command: "cat {keyfile}"}}')
    gdir = isolated / "home" / ".config" / "opencode"
    gdir.mkdir(parents=True)
    original = ('// the user\'s own settings\n{\n  "$schema": "https://opencode.ai/config.json",\n'
                '  "provider": {\n    /* a hosted provider */\n    "anthropic": {"options": {"apiKey": "{env:ANTHROPIC_KEY}"}},\n'
                '  },\n  "autoupdate": false, // keep\n}\n')
    (gdir / "opencode.jsonc").write_text(original)
    env = child_env(isolated, opencode)

    cfg = run_launch("config", str(recipe), "--write", "global", env=env, cwd=proj, timeout=60)
    assert cfg.returncode == 0, cfg.stderr
    text = (gdir / "opencode.jsonc").read_text()
    for piece in ("// the user's own settings", "/* a hosted provider */", '"autoupdate": false, // keep'):
        assert piece in text
    data = jsonc.parse(text)
    assert data["provider"]["anthropic"] == {"options": {"apiKey": "{env:ANTHROPIC_KEY}"}}
    assert data["provider"][PROVIDER]["options"]["apiKey"] == "{env:LAUNCHER_API_KEY}"
    backups = list(gdir.glob("opencode.jsonc.bak-*"))
    assert len(backups) == 1 and backups[0].read_text() == original
    again = run_launch("config", str(recipe), "--write", "global", env=env, cwd=proj, timeout=60)
    assert again.returncode == 0 and "already up to date" in again.stdout
    assert len(list(gdir.glob("opencode.jsonc.bak-*"))) == 1

    from launcher.agents.base import ConfigResult

    merged = ConfigResult("opencode", "global", gdir / "opencode.jsonc", "")
    argv, cenv = prepare(recipe, ["models", PROVIDER], env, proj, config=merged)
    assert "OPENCODE_CONFIG" not in cenv and cenv["LAUNCHER_API_KEY"] == KEY
    models = subprocess.run(argv, env=cenv, cwd=proj, capture_output=True, text=True, timeout=TIMEOUT,
                            stdin=subprocess.DEVNULL)
    assert models.returncode == 0, models.stderr
    assert f"{PROVIDER}/{SERVED}" in models.stdout.split()

    sim.requests.clear()
    argv, cenv = prepare(recipe, ["run", "Say hello in one word."], env, proj, config=merged)
    done, cmdlines = run_watched(argv, cenv, proj)
    assert done.returncode == 0, done.stderr[-2000:]
    chats = [r for r in sim.requests if r["path"] == "/v1/chat/completions"]
    assert chats and all(r["auth_ok"] and r["json"]["model"] == SERVED for r in chats)
    assert not [c for c in cmdlines if KEY in c]
    for out in (cfg.stdout, cfg.stderr, models.stdout, models.stderr, done.stdout, done.stderr):
        assert KEY not in out
    assert files_holding(isolated, KEY, skip={keyfile}) == []
