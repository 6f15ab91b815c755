"""Derived limits against the vLLM simulator, which enforces vLLM's limits: prompt + max_tokens >
max_model_len is an HTTP 400 with vLLM's text (real behaviour), and requests running together beyond
the KV pool count as preemptions (real vLLM preempts rather than rejects).

A prompt at the derived limit must be accepted; one 5 % above the server's maximum must be rejected,
and launch must never have promised it.
"""
from __future__ import annotations

import threading

import pytest

from launcher import http
from launcher.capacity import derive_limits
from launcher.capacity_read import capacity_from_vllm
from launcher.errors import InputError
from launcher.sim import VllmSim, count_tokens, messages_of_size


def measure(sim: VllmSim, *, use_log: bool = True):
    """What launch reads from a ready server: the start-up log, /metrics and /v1/models."""
    with http.client(base_url=sim.url, retries=0) as c:
        metrics = c.get("/metrics").text
        models = c.get("/v1/models").json()
    return capacity_from_vllm(sim.log_lines if use_log else None, metrics, models,
                              model=sim.config.served_model_name)


def chat(sim: VllmSim, prompt_tokens: int, max_tokens: int):
    messages = messages_of_size(prompt_tokens)
    assert count_tokens(messages) == prompt_tokens
    with http.client(base_url=sim.base_url, retries=0, read=30) as c:
        return c.post("/chat/completions", json={"model": sim.config.served_model_name, "messages": messages,
                                                 "max_tokens": max_tokens})


def preemptions(sim: VllmSim) -> float:
    with http.client(base_url=sim.url, retries=0) as c:
        for line in c.get("/metrics").text.splitlines():
            if line.startswith("vllm:num_preemptions_total"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no vllm:num_preemptions_total in /metrics")


SIM_DEFAULTS = {"reasoning_parser": None}  # for the sim_factory fixture (tests/conftest.py)


@pytest.mark.parametrize("log_format", ["new", "split", "v0"])
def test_prompt_at_derived_limit_accepted_and_5pct_over_rejected(sim_factory, log_format):
    sim = sim_factory(kv_tokens=643232, max_model_len=262144, log_format=log_format)
    cap = measure(sim)
    assert cap.max_model_len == 262144
    assert abs(cap.kv_tokens - 643232) <= 16  # v0 counts whole blocks
    lim = derive_limits(cap, output_budget=32768, reasoning=True)
    assert lim.context <= cap.max_model_len
    # OpenCode at its compaction point sends a prompt of context - output with max_tokens = output
    r = chat(sim, lim.context - lim.output, lim.output)
    assert r.status_code == 200, r.text
    # the whole derived context as prompt + 1 token of output also fits
    assert chat(sim, lim.context - 1, 1).status_code == 200
    # 5 % over what the server holds: rejected with vLLM's 400, and launch never promised it
    over = int(cap.max_model_len * 1.05)
    r = chat(sim, over - lim.output, lim.output)
    assert r.status_code == 400
    assert "maximum context length is 262144" in r.json()["error"]["message"]
    assert lim.context < over


def test_kv_smaller_than_max_model_len_and_sessions(sim_factory):
    # A pool of 200,000 tokens behind max_model_len 131,072 (vLLM refuses to start when one request
    # of max_model_len does not fit the pool): two sessions at the max model length would overrun it;
    # each session's KV share is its limit.
    sim = sim_factory(kv_tokens=200000, max_model_len=131072, latency_s=4.0)  # long enough to overlap under load
    cap = measure(sim, use_log=False)  # attached server: /metrics + /v1/models only
    assert (cap.kv_tokens, cap.max_model_len) == (200000, 131072)
    assert derive_limits(cap).context <= 131072
    for sessions in (1, 2, 4):
        lim = derive_limits(cap, sessions=sessions, output_budget=8192)
        assert sessions * lim.context <= cap.kv_tokens
    # 2 sessions at their limit, running at once: accepted, and the pool is not over-committed
    lim = derive_limits(cap, sessions=2, output_budget=8192)
    codes: list[int] = []
    threads = [threading.Thread(target=lambda: codes.append(chat(sim, lim.context - lim.output, lim.output).status_code))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert codes == [200, 200]
    assert preemptions(sim) == 0
    # 3 such sessions would over-commit it: what the simulator counts as preemptions
    threads = [threading.Thread(target=lambda: codes.append(chat(sim, lim.context - lim.output, lim.output).status_code))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert preemptions(sim) >= 1


def test_requested_context_checked_against_the_server(sim_factory):
    sim = sim_factory(kv_tokens=643232, max_model_len=131072)
    cap = measure(sim)
    ok = derive_limits(cap, requested=120000)
    assert ok.context == 120000
    assert chat(sim, ok.context - ok.output, ok.output).status_code == 200
    with pytest.raises(InputError) as e:
        derive_limits(cap, requested=int(131072 * 1.05), where="recipes/mine.yaml:31")
    assert "131,072" in e.value.what
    # and the server would indeed have refused such a request
    assert chat(sim, int(131072 * 1.05) - 1000, 1000).status_code == 400
