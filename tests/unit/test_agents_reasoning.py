"""`reasoning: true` for models the server says reason (Ollama's "thinking" capability), carried on the
Deployment from bring-up: the OpenCode block and the >= 4096 output floor; agent.reasoning still wins."""
from __future__ import annotations

import json

import pytest

from launcher import agents
from launcher.deployment import Capacity, Deployment, Limits
from launcher.spec.recipe import Recipe


def ollama_recipe(**agent) -> Recipe:
    return Recipe.model_validate({"name": "lap", "engine": "ollama", "model": "qwen3:0.6b",
                                  "agent": {"output": 1024, **agent}})


def dep(reasoning) -> Deployment:
    return Deployment(recipe="lap", engine="ollama", base_url="http://127.0.0.1:9/v1", model="qwen3:0.6b-40k",
                      plan_hash="h", limits=Limits(context=40000, output=1024), reasoning=reasoning)


def block(recipe, deployment) -> dict:
    res = agents.get("opencode").configure(deployment, recipe=recipe, key_source=None, dry_run=True)
    doc = json.loads(res.text)
    return doc["provider"][recipe.agent.provider]["models"][deployment.model]


@pytest.mark.parametrize("detected, explicit, expected", [
    (True, None, True),     # the server says the model thinks
    (False, None, False),
    (None, None, False),    # the server did not say
    (True, False, False),   # the recipe's explicit agent.reasoning wins
    (False, True, True),
])
def test_opencode_reasoning_from_the_deployment(isolated, detected, explicit, expected):
    recipe = ollama_recipe(**({} if explicit is None else {"reasoning": explicit}))
    assert block(recipe, dep(detected)).get("reasoning", False) is expected


def test_detected_reasoning_gets_the_output_floor(isolated):
    from launcher.pipeline import derive_limits

    class Loaded:
        spec = ollama_recipe()

        @staticmethod
        def where(*_a):
            return "lap.yaml"

    d = dep(True)
    d.capacity = Capacity(kv_tokens=40960, max_concurrency=1.0, max_model_len=40960, slots=1, source="test")
    assert derive_limits(Loaded, d).output >= 4096  # the recipe asked 1024: reasoning needs room
    d.reasoning = False
    assert derive_limits(Loaded, d).output == 1024


def test_lmstudio_reasoning_only_when_the_row_says():
    from launcher.bringup.lmstudio import reports_reasoning

    assert reports_reasoning({"capabilities": {"vision": False, "trained_for_tool_use": True}}) is None
    assert reports_reasoning({"capabilities": {"trained_for_tool_use": True, "reasoning": {"allowed": ["on"]}}})
    assert reports_reasoning({"capabilities": ["tool_use", "reasoning"]}) is True
    assert reports_reasoning({"capabilities": ["tool_use"]}) is False
