"""`launch config RECIPE` on Ollama / LM Studio writes what the running server really serves (read-only:
nothing pulled, created or loaded): the derived Ollama model with its /api/ps context at OLLAMA_HOST, LM
Studio's loaded context. With nothing running it says the config is a guess and what to run."""
from __future__ import annotations

import json

import pytest
import yaml

from conftest import run_launch
from launcher.sim.lmstudio import LmStudioSim
from launcher.sim.ollama import OllamaSim

RECIPES = __import__("pathlib").Path(__file__).resolve().parents[2] / "recipes"


def _written(isolated, name: str) -> tuple[str, dict]:
    doc = json.loads((isolated / "config" / "opencode" / f"{name}.json").read_text())
    (pid, prov), = doc["provider"].items()  # one provider, whatever its id
    (model, block), = prov["models"].items()
    assert doc["model"] == f"{pid}/{model}"
    return prov["options"]["baseURL"], {"model": model, **block}


@pytest.fixture
def ollama(isolated):
    s = OllamaSim(local=["qwen3-coder:30b"]).start()
    yield s
    s.stop()


def test_config_reads_the_running_ollama(ollama, isolated):
    env = {"OLLAMA_HOST": f"127.0.0.1:{ollama.port}", "LAUNCHER_FREE_MEMORY": "64G"}
    up = run_launch("up", "qwen3-coder", env=env)
    assert up.returncode == 0, up.stderr
    n_requests = len(ollama.requests)
    cp = run_launch("config", "qwen3-coder", env={**env, "LAUNCHER_FREE_MEMORY": "8G"})
    assert cp.returncode == 0, cp.stderr
    base_url, m = _written(isolated, "qwen3-coder")
    assert base_url == f"{ollama.url}/v1"  # OLLAMA_HOST, not 127.0.0.1:11434
    assert m["model"] == "qwen3-coder:30b-256k"  # the derived model, not the base (Ollama's default num_ctx)
    assert m["limit"]["context"] == 262144 - 5376  # from /api/ps, the same as `launch up` derived
    assert "loaded with context 262144" in cp.stderr and "not measured" not in cp.stderr
    later = [(meth, p) for meth, p, _ in ollama.requests[n_requests:]]
    assert not {p for _, p in later} & {"/api/pull", "/api/create", "/api/generate", "/v1/chat/completions"}


def test_config_with_no_ollama_running_says_it_is_a_guess(isolated):
    from conftest import free_port

    port = free_port()
    cp = run_launch("config", "qwen3-coder", env={"OLLAMA_HOST": f"127.0.0.1:{port}"})
    assert cp.returncode == 0, cp.stderr
    base_url, m = _written(isolated, "qwen3-coder")
    assert base_url == f"http://127.0.0.1:{port}/v1"
    err = " ".join(cp.stderr.split())
    assert f"no Ollama server answers at http://127.0.0.1:{port}" in err
    assert "may not match a server" in err and "`launch up qwen3-coder`" in err


def test_config_with_ollama_up_but_no_derived_model(ollama, isolated):
    cp = run_launch("config", "qwen3-coder", env={"OLLAMA_HOST": f"127.0.0.1:{ollama.port}"})
    assert cp.returncode == 0, cp.stderr
    err = " ".join(cp.stderr.split())
    assert "has no model derived from 'qwen3-coder:30b'" in err
    assert "may not match a server" in err


def test_config_reads_lmstudios_loaded_context(isolated):
    with LmStudioSim() as s:
        s.load("qwen/qwen3-coder-30b", 40960)  # loaded in the app with 40k, not the recipe's 65536
        body = yaml.safe_load((RECIPES / "lmstudio-qwen3-coder.yaml").read_text())
        body["port"] = s.port
        path = isolated / "lmstudio-qwen3-coder.yaml"
        path.write_text(yaml.safe_dump(body, sort_keys=False))
        cp = run_launch("config", str(path))
        assert cp.returncode == 0, cp.stderr
        assert not [p for _, p, _ in s.requests if p.endswith("/load")]
    base_url, m = _written(isolated, "lmstudio-qwen3-coder")
    assert base_url == f"{s.url}/v1" and m["model"] == "qwen/qwen3-coder-30b"
    assert m["limit"]["context"] == 40960 - 1536  # the loaded 40,960, not the recipe's 65,536
    assert "loaded with context 40960" in cp.stderr
