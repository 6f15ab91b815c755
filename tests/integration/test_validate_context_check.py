"""The context check's forms against the vLLM simulator: "full" (a prompt just under the limit, its
timeout scaled with the prompt), "length" (a short prompt whose max_tokens fills the window: vLLM's
length check without the long prefill), "off"; and `launch validate --context-check`."""
from __future__ import annotations

import json

import pytest

from conftest import run_launch
from launcher.validate import context_timeout, validate_endpoint

KEY = "ctx-key-0123456789"
SERVED = "nvidia/nemotron-3-super"


SIM_DEFAULTS = {"api_key": KEY}  # for the sim_factory fixture (tests/conftest.py)


def _context_requests(sim):
    return [r for r in sim.requests if r["path"] == "/v1/chat/completions" and not r["json"].get("tools")]


def test_context_timeout_grows_with_the_prompt():
    assert context_timeout(120, 0) == 120
    assert context_timeout(120, 256000) == pytest.approx(376)  # nemotron's 256k prefill: 6+ minutes allowed


def test_full_context_probe_is_not_timed_out_by_the_short_timeout(sim_factory):
    # every generation waits 1.5 s; the per-request timeout is 1 s. The tool checks time out, the
    # ~8k-token context probe gets 1 s + 8 s and passes: a slow prefill is not a "timeout" failure.
    sim = sim_factory(max_model_len=32768, latency_s=1.5)
    rep = validate_endpoint(sim.url + "/v1", SERVED, api_key=KEY, context_limit=8192, timeout=1.0)
    assert rep.check("tool_call").symptom == "timeout"
    ctx = rep.check("context")
    assert ctx.status == "pass", (ctx.diagnosis, ctx.evidence)
    assert ctx.evidence.startswith("full prefill: ~")


def test_length_form_sends_a_short_prompt_filling_the_window(sim_factory):
    sim = sim_factory(max_model_len=32768, token_s=0.05)
    rep = validate_endpoint(sim.url + "/v1", SERVED, api_key=KEY, context_limit=32000, timeout=30,
                            context_check="length")
    ctx = rep.check("context")
    assert ctx.status == "pass", (ctx.diagnosis, ctx.evidence)
    assert ctx.evidence.startswith("length only: ") and "32000" in ctx.evidence
    (req,) = _context_requests(sim)
    body = req["json"]
    assert body["stream"] is True
    assert len(json.dumps(body["messages"])) < 200  # no long prompt: nothing long to prefill
    prompt = sum(len(m["content"].split()) for m in body["messages"])
    # together just under the limit, by the same slack as the full form (512 tokens at 32k)
    assert 32000 - 600 < prompt + body["max_tokens"] <= 32000
    assert f"max_tokens {body['max_tokens']}" in ctx.evidence
    # the stream was closed at its first chunk: at 0.05 s a token, 31,9xx tokens would take 26 minutes
    assert rep.elapsed < 25
    # a limit of exactly max_model_len is admitted, as in the full form (the template's slack)
    rep = validate_endpoint(sim.url + "/v1", SERVED, api_key=KEY, context_limit=32768, timeout=30,
                            context_check="length")
    assert rep.check("context").status == "pass", rep.check("context").evidence
    # over the server's max_model_len: refused with a 400 before any prefill, named
    rep = validate_endpoint(sim.url + "/v1", SERVED, api_key=KEY, context_limit=40000, timeout=30,
                            context_check="length")
    ctx = rep.check("context")
    assert ctx.symptom == "context-rejected" and "length only" in ctx.evidence and "HTTP 400" in ctx.evidence


def test_off_skips_the_context_request(sim_factory):
    sim = sim_factory(max_model_len=32768)
    rep = validate_endpoint(sim.url + "/v1", SERVED, api_key=KEY, context_limit=8192, timeout=30,
                            context_check="off")
    assert rep.check("context").status == "skip" and "off" in rep.check("context").diagnosis
    assert _context_requests(sim) == []


def test_cli_context_check_option(sim_factory, isolated):
    sim = sim_factory(max_model_len=32768)
    env = {"SIM_KEY": KEY}
    p = run_launch("validate", sim.url + "/v1", "--key-env", "SIM_KEY", "--context", "16384",
                   "--context-check", "length", "--json", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    ctx = next(c for c in json.loads(p.stdout)["checks"] if c["name"] == "context")
    assert ctx["ok"] and ctx["evidence"].startswith("length only: ")
    p = run_launch("validate", sim.url + "/v1", "--key-env", "SIM_KEY", "--context", "16384", "--json", env=env)
    ctx = next(c for c in json.loads(p.stdout)["checks"] if c["name"] == "context")
    assert p.returncode == 0 and ctx["evidence"].startswith("full prefill: ")
    p = run_launch("validate", sim.url + "/v1", "--key-env", "SIM_KEY", "--context-check", "half", env=env)
    assert p.returncode == 2 and "--context-check" in p.stderr and "full, length, off" in p.stderr
