"""Shared by the laptop-engine tests: write a recipe, plan it, collect progress steps."""
from __future__ import annotations

from pathlib import Path

import yaml


def plan_recipe(tmp_path: Path, name: str, body: dict):
    """Write recipes/<name>.yaml (no inventory: this machine) and return (Recipe, Plan)."""
    from launcher.plan import build_for

    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **body}, sort_keys=False))
    recipe_l, plan = build_for(str(path))
    return recipe_l.spec, plan


class Steps(list):
    """A progress callable that keeps every Step (and notes) for assertions."""

    def __call__(self, step):
        self.append(step)

    def stages(self) -> list[str]:
        return [s.stage for s in self]

    def pulls(self):
        return [s for s in self if s.stage == "pull" and s.total]
