"""`launch up`'s summary names the engine by name and the key by its recipe source (never its value)."""
from __future__ import annotations

from launcher.cli.serve import print_deployment
from launcher.deployment import Deployment
from launcher.spec.keysource import KeySource


def _d(**kw):
    base = dict(recipe="r", engine="vllm", base_url="http://127.0.0.1:8000/v1", model="m", plan_hash="abc",
                version="0.11.2", api_key_env="VLLM_API_KEY")
    base.update(kw)
    return Deployment(**base)


def test_key_line_names_the_recipes_source(capsys, monkeypatch):
    monkeypatch.setenv("MYKEY", "secret-value-123")
    print_deployment(_d(), key_source=KeySource(env="MYKEY"))
    out = capsys.readouterr().out
    assert "API key: from env:MYKEY" in out and "$VLLM_API_KEY" in out
    assert "from $VLLM_API_KEY" not in out and "secret-value-123" not in out


def test_version_is_labelled_with_the_deployments_engine(capsys):
    print_deployment(_d(engine="ollama", version="0.12.3", api_key_env=None))
    out = capsys.readouterr().out
    assert "Ollama 0.12.3" in out and "vLLM" not in out
    print_deployment(_d())
    assert "vLLM 0.11.2" in capsys.readouterr().out
