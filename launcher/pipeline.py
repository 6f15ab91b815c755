"""The whole flow behind `launch RECIPE`: up -> capacity -> validate -> agent.

Data flows one way; each stage takes the previous stage's output.
"""
from __future__ import annotations


def run_pipeline(recipe_l, plan, *, agent, agent_args, validate, replace, write, watch, timeout):
    from launcher import auth
    from launcher.errors import RuntimeFailure

    # the key first: a broken key source stops the launch before anything starts
    if plan.api_key is not None:
        auth.resolve(plan.api_key, where=recipe_l.where("api_key"))
    raise RuntimeFailure("`launch RECIPE` is not wired yet", fix="use `launch plan RECIPE`")
