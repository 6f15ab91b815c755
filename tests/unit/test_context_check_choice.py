"""`launch RECIPE` picks how the validation gate proves limit.context: on unified-memory hosts (DGX Spark,
GB10) a full-length prefill has hard-reset hosts (reference/vllm.md), so only the server's length check
runs there unless the user asks for the full prompt."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from launcher.errors import InputError
from launcher.pipeline import context_check_for
from launcher.plan import build_for


def test_shipped_nemotron_on_gb10_uses_the_length_check_and_says_why():
    _, plan = build_for("nemotron")
    form, why = context_check_for(plan, None)
    assert form == "length"
    assert "spark-1" in why and "--context-check full" in why


def test_discrete_gpu_hosts_send_the_full_prompt():
    plan = SimpleNamespace(engine="vllm", hosts={"box": {"gpus": {"count": 1, "unified_memory": False}}})
    assert context_check_for(plan, None) == ("full", None)
    assert context_check_for(SimpleNamespace(engine="vllm", hosts={}), None) == ("full", None)


def test_laptop_engines_on_unified_memory_still_send_the_full_prompt():
    """Ollama truncates an over-long prompt instead of refusing it: only the full prompt proves the context."""
    plan = SimpleNamespace(engine="ollama", hosts={"mac": {"gpus": {"count": 1, "unified_memory": True}}})
    assert context_check_for(plan, None) == ("full", None)


def test_the_user_choice_wins_and_a_bad_one_is_named():
    _, plan = build_for("nemotron")
    assert context_check_for(plan, "full") == ("full", None)
    with pytest.raises(InputError, match="unknown context check 'fast'"):
        context_check_for(plan, "fast")
