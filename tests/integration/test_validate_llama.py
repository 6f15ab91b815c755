"""`launch validate` against the real llama.cpp llama-server serving a tiny random-weight model.

The model speaks noise, so the honest verdict is: the models list and streaming pass, the tool-call
step fails, and nothing crashes (laptop-engines.md, "For tests"). Noise never stops, so the answer
ends with finish_reason length: that is diagnosed as the output budget (a reasoning model without a
reasoning parser looks the same), with the tool parser named as the other suspect.
"""
from __future__ import annotations

import json

import pytest

from conftest import run_launch
from llama_server import LlamaServer, llama_server_binary, tiny_model
from launcher.validate import validate_endpoint

pytestmark = pytest.mark.slow
KEY = "llama-test-key-42"
# Small output budget: noise never stops early, and 2 cores are shared. Fixed seed and greedy
# decoding: the same noise every run, so the verdict cannot flicker.
SAMPLING = {"temperature": 0.0, "seed": 7}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    binary = llama_server_binary()
    model = tiny_model(tmp_path_factory, binary=binary)
    srv = LlamaServer(binary, model, api_key=KEY, log_path=tmp_path_factory.mktemp("llama") / "server.log")
    srv.start()
    yield srv
    srv.stop()


def test_tiny_model_gets_the_honest_verdict(server):
    rep = validate_endpoint(server.base_url, server.alias, api_key=KEY, sampling=SAMPLING, max_tokens=96,
                            timeout=90, context_limit=4096)
    by = {c.name: c for c in rep.checks}
    assert not rep.ok
    assert by["models"].status == "pass", by["models"]
    assert by["streaming"].status == "pass", by["streaming"]
    assert by["tool_call"].symptom == "length", by["tool_call"]
    assert "--tool-call-parser" in by["tool_call"].diagnosis and "finish_reason=length" in by["tool_call"].evidence
    assert by["auth"].status == "pass"  # llama-server with --api-key refuses a request without it
    assert by["context"].status == "pass", by["context"]  # a prompt just under the 4096-token slot
    assert by["round_trip"].status == "skip" and by["arguments"].status == "skip"
    # llama-server's /v1/messages: the same verdict in the Anthropic style
    rep = validate_endpoint(server.url, server.alias, api_key=KEY, api_style="anthropic", sampling=SAMPLING,
                            max_tokens=48, timeout=90, check_auth=False)
    by = {c.name: c for c in rep.checks}
    assert by["models"].ok and by["streaming"].status == "pass", by["streaming"]
    assert by["tool_call"].symptom == "length", by["tool_call"]


def test_cli_on_llama_server(server, isolated):
    p = run_launch("validate", server.base_url, "--key-env", "LLAMA_KEY", "--json", "--max-tokens", "64",
                   env={"LLAMA_KEY": KEY}, timeout=180)
    assert p.returncode == 3, p.stderr
    data = json.loads(p.stdout)
    assert data["ok"] is False
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["models"]["ok"] and checks["streaming"]["ok"]
    assert not checks["tool_call"]["ok"] and "tool parser" in checks["tool_call"]["diagnosis"]
    assert KEY not in p.stdout + p.stderr
    # a wrong model id is named with the ids the server lists
    p = run_launch("validate", server.base_url, "--model", "nope", "--key-env", "LLAMA_KEY", "--json",
                   "--max-tokens", "16", env={"LLAMA_KEY": KEY}, timeout=180)
    checks = {c["name"]: c for c in json.loads(p.stdout)["checks"]}
    assert p.returncode == 3 and server.alias in checks["models"]["diagnosis"]
