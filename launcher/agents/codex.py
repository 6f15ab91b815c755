"""Codex CLI (npm `@openai/codex`): a profile file and `codex --profile NAME`.

Codex 0.134 and later read a profile from `$CODEX_HOME/<name>.config.toml` (CODEX_HOME defaults to
~/.codex) layered over config.toml; `[profiles.x]` tables are gone. Only the Responses API is
accepted (`wire_api = "responses"`); the key is named by `env_key` and read from the environment.
The profile file is launch's own (`launch-<recipe>`), so the user's config.toml is never edited.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Mapping

from launcher.agents.base import Agent, ConfigResult, effective_limits, key_var

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def profile_name(recipe_name: str) -> str:
    """Profile names may hold letters, digits, '-' and '_'."""
    return "launch-" + re.sub(r"[^A-Za-z0-9_-]", "-", recipe_name)


def codex_home(environ: Mapping[str, str]) -> Path:
    home = environ.get("CODEX_HOME")
    if home:
        return Path(home).expanduser()
    return Path(environ.get("HOME") or Path.home()) / ".codex"


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v), ensure_ascii=False)  # JSON string escapes are valid TOML basic strings


def auto_compact_limit(context: int, output: int) -> int:
    """Compact before the next request could overflow: leave the output budget free (and never
    above 90 % of the window), but not below half of it."""
    return max(context // 2, min(int(context * 0.9), context - output))


class Codex(Agent):
    name = "codex"
    binary = "codex"
    install = "npm install -g @openai/codex"
    targets = ("default", "global")  # both: the profile file in $CODEX_HOME

    def profile_text(self, deployment, recipe, key_source) -> tuple[str, list[str]]:
        lim = effective_limits(deployment, recipe)
        notes = [lim.note] if lim.note else []
        pid = recipe.agent.provider
        top = {
            "model": deployment.model,
            "model_provider": pid,
            "model_context_window": lim.context,
            "model_auto_compact_token_limit": auto_compact_limit(lim.context, lim.output),
        }
        provider = {"name": f"launch: {recipe.name}", "base_url": deployment.base_url.rstrip("/")}
        var = key_var(deployment, key_source)
        if var:
            provider["env_key"] = var
        else:
            notes.append("no api_key in the recipe: Codex sends no key")
        provider["wire_api"] = "responses"
        lines = [f"# written by launch for the recipe {recipe.name}; "
                 f"`launch config {recipe.name} --agent codex` rewrites it",
                 f"# use: codex --profile {profile_name(recipe.name)}"]
        lines += [f"{_key(k)} = {_value(v)}" for k, v in top.items()]
        lines += ["", f"[model_providers.{_key(pid)}]"]
        lines += [f"{_key(k)} = {_value(v)}" for k, v in provider.items()]
        if recipe.sampling.model_dump(exclude_none=True):
            notes.append("Codex has no setting for sampling: the recipe's sampling applies to OpenCode only")
        return "\n".join(lines) + "\n", notes

    def configure(self, deployment, *, recipe, key_source, write: str = "default", cwd: Path | None = None,
                  dry_run: bool = False, environ: Mapping[str, str] | None = None) -> ConfigResult:
        from launcher.atomic import write_atomic

        environ = os.environ if environ is None else environ
        if write == "project":
            from launcher.errors import InputError

            raise InputError("--write project is not supported for codex: a project's .codex/config.toml "
                             "cannot set model_provider", fix="use --write default (a profile in $CODEX_HOME)")
        self.check_target(write)
        text, notes = self.profile_text(deployment, recipe, key_source)
        path = codex_home(environ) / f"{profile_name(recipe.name)}.config.toml"
        result = ConfigResult(self.name, write, path, text, notes=notes)
        if not dry_run:
            res = write_atomic(path, text)
            result.path, result.written, result.backup = res.path, res.changed, res.backup
        return result

    def prepare(self, deployment, *, recipe, key_source, args: list[str], cwd: Path | None = None,
                config: ConfigResult | None = None, check_models: bool = True,
                environ: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
        environ, key, binary = self.checked(deployment, key_source, environ, check_models)
        env = dict(environ)
        if key_source is not None and not key_source.env:
            env[key_var(deployment, key_source)] = key  # env_key names it; the value lives only here
        return [binary, "--profile", profile_name(recipe.name), *args], env
