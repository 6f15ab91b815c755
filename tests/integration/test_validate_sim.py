"""`launch validate` against the vLLM simulator: one fault per row of the symptom table.

Each simulator fault stands for a real misconfiguration (launcher/sim/vllm_config.py FAULTS, from
../shared/reference/agents.md): the validation must name it with the right row, and a healthy server
must pass every check.
"""
from __future__ import annotations

import json

import pytest

from conftest import run_launch
from launcher.validate import CHECK_NAMES, validate_endpoint

KEY = "sim-key-0123456789"
SERVED = "nvidia/nemotron-3-super"


SIM_DEFAULTS = {"api_key": KEY}  # for the sim_factory fixture (tests/conftest.py)


def run(sim, **kw):
    kw.setdefault("api_key", KEY)
    kw.setdefault("timeout", 30)
    return validate_endpoint(sim.url + "/v1", kw.pop("model", SERVED), **kw)


def failed(report) -> dict[str, str]:
    return {c.name: c.symptom for c in report.checks if c.status == "fail"}


def test_healthy_sim_passes_every_check(sim_factory):
    sim = sim_factory(max_model_len=32768)
    rep = run(sim, context_limit=32768, sampling={"temperature": 1.0, "top_p": 0.95})
    assert rep.ok, rep.to_json()
    assert [c.name for c in rep.checks] == list(CHECK_NAMES)
    assert all(c.status == "pass" for c in rep.checks), [(c.name, c.status, c.diagnosis) for c in rep.checks]
    chats = [r for r in sim.requests if r["path"] == "/v1/chat/completions"]
    # tool call, its streamed twin, the round trip and the context probe; all with the recipe's sampling
    assert len(chats) == 4
    assert all(r["json"]["temperature"] == 1.0 and r["json"]["top_p"] == 0.95 for r in chats)
    assert sum(1 for r in chats if r["json"].get("stream")) == 1
    tool_turns = [r for r in chats if r["json"]["messages"][-1]["role"] == "tool"]
    assert len(tool_turns) == 1
    # the round trip echoes the id the server gave the tool call
    sent = tool_turns[0]["json"]["messages"]
    assert sent[-1]["tool_call_id"] == sent[-2]["tool_calls"][0]["id"]
    assert all(r["json"]["max_tokens"] >= 2048 for r in chats if r["json"].get("tools"))
    # the context probe is just under the limit: >95% of it
    ctx = [r for r in chats if not r["json"].get("tools")][0]
    assert ctx["json"]["max_tokens"] + len(ctx["json"]["messages"][0]["content"]) / 4 > 0.95 * 32768


@pytest.mark.parametrize("fault,check,symptom", [
    ("wrong-model", "models", "model-not-found"),
    ("prose-tool-call", "tool_call", "prose-tool-call"),
    ("reasoning-in-args", "arguments", "reasoning-in-args"),
    ("reasoning-in-content", "reasoning", "reasoning-in-content"),
    ("invalid-json-args", "arguments", "invalid-json-args"),
    ("tool-loop", "round_trip", "tool-loop"),
    ("length", "tool_call", "length"),
    ("drop-body", "tool_call", "proxy-drops"),
    ("no-auto-tool-choice", "tool_call", "no-auto-tool-choice"),
    ("stream-broken", "streaming", "stream-broken"),
])
def test_each_fault_gets_its_diagnosis(sim_factory, fault, check, symptom):
    rep = run(sim_factory(faults={fault}))
    assert not rep.ok
    got = failed(rep)
    assert got.get(check) == symptom, got
    c = rep.check(check)
    assert c.cause and c.fix and c.evidence and c.fix in c.diagnosis


def test_fault_diagnoses_do_not_spill_into_unrelated_checks(sim_factory):
    assert set(failed(run(sim_factory(faults={"tool-loop"})))) == {"round_trip"}
    assert set(failed(run(sim_factory(faults={"stream-broken"})))) == {"streaming"}
    # invalid arguments arrive the same way streamed: streaming itself is fine
    assert set(failed(run(sim_factory(faults={"invalid-json-args"})))) == {"arguments"}
    # the models list names the ids the server really serves
    rep = run(sim_factory(faults={"wrong-model"}))
    assert "nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-NVFP4" in rep.check("models").diagnosis


def test_length_finish_is_not_a_parser_failure(sim_factory):
    rep = run(sim_factory(faults={"length"}), max_tokens=2048)
    c = rep.check("tool_call")
    assert c.symptom == "length" and "finish_reason=length" in c.evidence and "2048" in c.diagnosis


def test_length_finish_without_a_reasoning_parser_is_still_the_budget(sim_factory):
    # no reasoning parser: the model's thinking arrives as plain content and is cut by the budget
    rep = run(sim_factory(faults={"length"}, reasoning_parser=""), max_tokens=2048)
    c = rep.check("tool_call")
    assert c.symptom == "length", (c.symptom, c.evidence)
    assert "content=" in c.evidence and "finish_reason=length" in c.evidence
    assert "if no reasoning parser is set, the reasoning shows up as content" in c.diagnosis


def test_auth_open_is_a_warning_not_a_failure(sim_factory):
    rep = run(sim_factory(faults={"auth-open"}))
    assert rep.ok
    c = rep.check("auth")
    assert c.status == "warn" and c.symptom == "auth-open" and "HTTP 200" in c.evidence


def test_wrong_or_missing_key_is_401(sim_factory):
    sim = sim_factory()
    rep = run(sim, api_key="not-the-key")
    assert failed(rep)["models"] == "unauthorized" and failed(rep)["tool_call"] == "unauthorized"
    rep = run(sim, api_key=None)
    assert "no key was given" in rep.check("models").diagnosis


def test_context_over_the_real_limit_is_rejected(sim_factory):
    rep = run(sim_factory(max_model_len=8192), context_limit=16384)
    assert failed(rep) == {"context": "context-rejected"}


def test_unreachable_endpoint(sim_factory):
    from conftest import free_port

    rep = validate_endpoint(f"http://127.0.0.1:{free_port()}/v1", SERVED, api_key=KEY, timeout=5)
    assert not rep.ok and rep.check("models").symptom == "unreachable"
    assert rep.check("tool_call").symptom == "unreachable"


def test_anthropic_style_against_vllm_messages(sim_factory):
    sim = sim_factory()
    rep = validate_endpoint(sim.url, SERVED, api_key=KEY, api_style="anthropic", timeout=30)
    assert rep.ok, rep.to_json()
    msgs = [r for r in sim.requests if r["path"] == "/v1/messages"]
    assert len(msgs) == 3 and all(r["headers"].get("anthropic-version") for r in msgs)
    rep = validate_endpoint(sim_factory(faults={"tool-loop"}).url + "/v1", SERVED, api_key=KEY,
                            api_style="anthropic", timeout=30)
    assert failed(rep) == {"round_trip": "tool-loop"}
    rep = validate_endpoint(sim_factory(faults={"prose-tool-call"}).url, SERVED, api_key=KEY,
                            api_style="anthropic", timeout=30)
    assert failed(rep)["tool_call"] == "prose-tool-call"


def test_azure_style_through_a_gateway(sim_factory):
    from validate_gateway import AzureGateway

    sim = sim_factory()
    gw = AzureGateway(sim.url, KEY, key="azure-key-abcdef", deployment="nemo", model=SERVED).start()
    try:
        rep = validate_endpoint(gw.url, SERVED, api_key="azure-key-abcdef", api_style="azure",
                                azure_deployment="nemo", azure_api_version="2024-10-21", timeout=30)
        assert rep.ok, rep.to_json()
        assert any(p.startswith("/openai/deployments/nemo/chat/completions?api-version=2024-10-21") for p in gw.paths)
        rep = validate_endpoint(gw.url, SERVED, api_key="azure-key-abcdef", api_style="azure",
                                azure_deployment="other", azure_api_version="2024-10-21", timeout=30)
        assert failed(rep)["tool_call"] == "model-not-found"
    finally:
        gw.stop()


# -- the CLI -----------------------------------------------------------------------------------

def test_cli_json_shape_and_exit_codes(sim_factory, isolated):
    good, bad = sim_factory(), sim_factory(faults={"prose-tool-call"})
    env = {"SIM_KEY": KEY}
    p = run_launch("validate", good.url + "/v1", "--model", SERVED, "--key-env", "SIM_KEY", "--json", env=env)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["ok"] is True and set(data) == {"ok", "checks"}
    assert all(set(c) == {"name", "ok", "diagnosis", "evidence"} for c in data["checks"])
    assert KEY not in p.stdout + p.stderr
    p = run_launch("validate", bad.url + "/v1", "--key-env", "SIM_KEY", "--json", env=env)  # model: the only id
    assert p.returncode == 3, p.stderr
    data = json.loads(p.stdout)
    tc = next(c for c in data["checks"] if c["name"] == "tool_call")
    assert tc["ok"] is False and "tool parser" in tc["diagnosis"] and "finish_reason=stop" in tc["evidence"]
    p = run_launch("validate", bad.url + "/v1", "--key-env", "SIM_KEY", env=env)
    assert p.returncode == 3 and "✗" in p.stdout and "--tool-call-parser" in p.stdout
    # an unset key variable is bad input (2), named
    p = run_launch("validate", good.url + "/v1", "--key-env", "NOPE_NOT_SET", env={})
    assert p.returncode == 2 and "NOPE_NOT_SET" in p.stderr


def test_cli_validates_an_attach_recipe(sim_factory, isolated, tmp_path, monkeypatch):
    from launcher.bringup import module_for
    from launcher.plan import build_for

    sim = sim_factory(faults={"auth-open"})
    recipe = tmp_path / "gateway.yaml"
    recipe.write_text(f"""name: gateway
engine: openai
model: {SERVED}
openai:
  base_url: {sim.url}/v1
api_key:
  env: GATEWAY_KEY
sampling:
  temperature: 0.6
""")
    p = run_launch("validate", str(recipe), "--json", env={"GATEWAY_KEY": KEY})
    assert p.returncode == 0, p.stdout + p.stderr
    auth = next(c for c in json.loads(p.stdout)["checks"] if c["name"] == "auth")
    assert auth["ok"] is True and "without a key" in auth["diagnosis"]
    assert all(r["json"]["temperature"] == 0.6 for r in sim.requests if r["path"] == "/v1/chat/completions")
    # bring-up for an attach recipe only probes and reports attached
    monkeypatch.setenv("GATEWAY_KEY", KEY)
    recipe_l, plan = build_for(str(recipe))
    dep = module_for("openai").up(plan, recipe_l.spec)
    assert dep.attached and dep.model == SERVED and dep.base_url == sim.url + "/v1"
    assert dep.capacity.max_model_len == 262144 and dep.to_json()["attached"] is True


def test_checks_run_concurrently(sim_factory):
    """Four generations at 1 s each: one after another would take ≥ 4 s; the gate waits only for
    the tool call and then the round trip (≈ 2 s). Judged by when the requests arrived (sent one
    after another, no two could arrive less than 1 s apart), so a loaded machine cannot fake it;
    the elapsed bound only catches a gate that hangs."""
    latency = 1.0
    sim = sim_factory(latency_s=latency, max_model_len=16384)
    rep = run(sim, context_limit=16384)
    assert rep.ok
    arrived = sorted(r["time"] for r in sim.requests if r["path"] == "/v1/chat/completions")
    assert len(arrived) == 4
    assert min(b - a for a, b in zip(arrived, arrived[1:])) < latency / 2, arrived
    assert 2 * latency <= rep.elapsed < 8 * latency, rep.elapsed  # the arrivals above prove the overlap


def test_attach_bringup_names_what_is_wrong(sim_factory, tmp_path, monkeypatch):
    from launcher.bringup import module_for
    from launcher.errors import InputError, SecretError, ServerFailed
    from launcher.plan import build_for
    from conftest import free_port

    sim = sim_factory()
    monkeypatch.setenv("GW_KEY", KEY)

    def plan_for(base_url, served=SERVED, key_env="GW_KEY"):
        path = tmp_path / "gw.yaml"
        path.write_text(f"name: gw\nengine: openai\nmodel: {served}\nopenai:\n  base_url: {base_url}\n"
                        f"api_key:\n  env: {key_env}\n")
        return build_for(str(path))

    up = module_for("openai").up
    rl, plan = plan_for(sim.url + "/v1", served="other/model")
    with pytest.raises(InputError, match="does not serve 'other/model'") as exc:
        up(plan, rl.spec)
    assert SERVED in exc.value.fix
    rl, plan = plan_for(f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(ServerFailed):
        up(plan, rl.spec, timeout=3)
    monkeypatch.setenv("WRONG_KEY", "not-it-at-all")
    rl, plan = plan_for(sim.url + "/v1", key_env="WRONG_KEY")
    with pytest.raises(SecretError, match="refused the key"):
        up(plan, rl.spec)


def test_validate_from_inside_an_event_loop(sim_factory):
    """A caller already running asyncio (an async agent wrapper) gets the same report, not a RuntimeError."""
    import asyncio

    sim = sim_factory()

    async def inner():
        return validate_endpoint(sim.url + "/v1", SERVED, api_key=KEY, timeout=30)

    rep = asyncio.run(inner())
    assert rep.ok, rep.to_json()
    assert any(r["path"] == "/v1/chat/completions" for r in sim.requests)
