"""Safe context limits from measured capacity (pure math, hand-computed figures)."""
from __future__ import annotations

import pytest

from launcher.capacity import default_margin, derive_limits, opencode_compacts_at, server_holds
from launcher.deployment import Capacity
from launcher.errors import InputError, RuntimeFailure

SEED = Capacity(kv_tokens=643232, max_concurrency=2.45, max_model_len=262144, source="vllm log")


def test_margin():
    assert default_margin(262144) == 5376  # 2 % = 5,242.9 -> 5,243 -> up to 256: 5,376
    assert default_margin(65536) == 1536  # 2 % = 1,311 < floor 1,536
    assert default_margin(4000) == 1000  # never more than a quarter


def test_auto_one_session_is_max_model_len_minus_margin():
    lim = derive_limits(SEED, output_budget=32768, reasoning=True)
    assert lim.context == 262144 - 5376 == 256768
    assert lim.output == 32768  # budget < context/4 = 64,192
    assert lim.reasoning.startswith(
        "context 256,768 = min(max-model-len 262,144, KV 643,232 / 1 session) − margin 5,376")
    assert "output 32,768" in lim.reasoning


def test_sessions_divide_kv():
    lim = derive_limits(SEED, sessions=4)
    holds = 643232 // 4  # 160,808 < 262,144
    assert lim.context == holds - 3328  # 2 % = 3,216.2 -> 3,217 -> 3,328
    assert "KV 643,232 / 4 sessions" in lim.reasoning
    assert server_holds(SEED, 4)[0] == 160808


def test_trained_context_caps():
    lim = derive_limits(Capacity(kv_tokens=10**6, max_model_len=262144), trained_context=131072)
    assert lim.context == 131072 - 2816  # 2 % = 2,621.4 -> 2,622 -> 2,816
    assert "trained 131,072" in lim.reasoning


def test_output_rules():
    small = Capacity(kv_tokens=20000, max_model_len=32768)
    lim = derive_limits(small, output_budget=32000)
    # holds 20,000, margin 1,536 -> 18,464; output = min(32,000, 18,464 // 4 = 4,616)
    assert (lim.context, lim.output) == (18464, 4616)
    lim = derive_limits(small, output_budget=2048, reasoning=True)
    assert lim.output == 4096  # reasoning floor beats a small budget
    tiny = derive_limits(Capacity(max_model_len=8192), output_budget=32000, reasoning=True)
    # 8,192 - 1,536 = 6,656; context/4 = 1,664 < 4,096 -> min(4,096, context/2 = 3,328)
    assert (tiny.context, tiny.output) == (6656, 3328)
    # OpenCode compacts at context - min(output, 32000): three quarters stay conversation
    big = derive_limits(small, output_budget=32000)
    assert opencode_compacts_at(big) == 18464 - 4616


def test_requested_number_checked():
    lim = derive_limits(SEED, requested=200000)
    assert lim.context == 200000
    assert "as requested" in lim.reasoning
    with pytest.raises(InputError) as e:
        derive_limits(SEED, requested=300000, where="recipes/x.yaml:40")
    err = e.value
    assert err.where == "recipes/x.yaml:40"
    assert "300,000" in err.what and "262,144" in err.what
    assert "256,768" in err.fix  # what it may be set to
    with pytest.raises(InputError):  # 4 sessions: 160,808 each
        derive_limits(SEED, sessions=4, requested=200000)
    with pytest.raises(InputError):
        derive_limits(SEED, requested="big")


def test_no_capacity():
    with pytest.raises(RuntimeFailure):
        derive_limits(Capacity())
    lim = derive_limits(Capacity(), requested=65536)
    assert lim.context == 65536 and "no capacity" in lim.reasoning


def test_llama_slots_capacity():
    # llama-server: 2 slots of 65,536 each; one session gets a slot's n_ctx
    cap = Capacity(kv_tokens=131072, max_concurrency=2.0, max_model_len=65536, slots=2)
    assert derive_limits(cap).context == 65536 - 1536
    assert derive_limits(cap, sessions=2).context == 65536 - 1536
