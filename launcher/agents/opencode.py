"""OpenCode (npm `opencode-ai`): a provider block for @ai-sdk/openai-compatible.

Facts (../shared/reference/agents.md): baseURL ends at /v1; the model is keyed by the served id and
addressed as `provider/served`; limit.context/limit.output default to 0 when absent (no compaction,
max_tokens 32000), so they are always written; model `options` are merged into every request body
(sampling); `small_model` keeps the title request on the local server; an unset `{env:VAR}` becomes
"" and then no Authorization header is sent at all.

By default the config goes to launch's own file, handed to OpenCode through OPENCODE_CONFIG (the
user's files untouched). `--write global|project` merges into opencode.json(c) with launcher.jsonc
(comments and foreign keys kept) and launcher.atomic (atomic, backup, idempotent).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

from launcher.agents.base import (Agent, ConfigResult, effective_limits, is_reasoning, key_var,
                                  sampling_options)

NPM_ADAPTER = "@ai-sdk/openai-compatible"
SCHEMA = "https://opencode.ai/config.json"
MODEL_FLAGS = ("-m", "--model")


def global_dir(environ: Mapping[str, str]) -> Path:
    xdg = environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path(environ.get("HOME") or Path.home()) / ".config"
    return base / "opencode"


def pick_file(directory: Path) -> Path:
    """opencode.jsonc when it exists (OpenCode reads it after opencode.json, so it wins), else
    opencode.json (created when neither exists)."""
    jsonc = directory / "opencode.jsonc"
    return jsonc if jsonc.exists() else directory / "opencode.json"


def default_path(recipe_name: str) -> Path:
    from launcher.paths import config_dir

    return config_dir() / "opencode" / f"{recipe_name}.json"


def api_key_ref(deployment, key_source) -> str | None:
    """What goes in options.apiKey: a reference, never the value."""
    if key_source is None:
        return None
    if key_source.file:
        return "{file:" + os.path.abspath(os.path.expanduser(key_source.file)) + "}"
    return "{env:" + key_var(deployment, key_source) + "}"


class OpenCode(Agent):
    name = "opencode"
    binary = "opencode"
    install = "npm install -g opencode-ai"
    targets = ("default", "global", "project")

    # -- the data --------------------------------------------------------------------------------
    def model_block(self, deployment, recipe) -> tuple[dict, list[str]]:
        lim = effective_limits(deployment, recipe)
        block: dict = {"name": deployment.model, "limit": {"context": lim.context, "output": lim.output}}
        if is_reasoning(recipe, deployment):
            block["reasoning"] = True
        opts = sampling_options(recipe)
        if opts:
            block["options"] = opts
        return block, [lim.note] if lim.note else []

    def provider_block(self, deployment, recipe, key_source) -> tuple[dict, list[str]]:
        model, notes = self.model_block(deployment, recipe)
        options = {"baseURL": deployment.base_url.rstrip("/")}
        ref = api_key_ref(deployment, key_source)
        if ref:
            options["apiKey"] = ref
        else:
            notes.append("no api_key in the recipe: OpenCode sends no Authorization header")
        if key_source is not None and key_source.command:
            notes.append(f"the key comes from a command: the config reads {ref}; launch sets "
                         f"{key_var(deployment, key_source)} for OpenCode when it starts it")
        return {"npm": NPM_ADAPTER, "name": f"launch: {recipe.name}", "options": options,
                "models": {deployment.model: model}}, notes

    def document(self, deployment, recipe, key_source) -> tuple[dict, list[str]]:
        """The whole config launch writes to its own file (also the block printed for pasting)."""
        pid = recipe.agent.provider
        provider, notes = self.provider_block(deployment, recipe, key_source)
        runtime_id = f"{pid}/{deployment.model}"
        return {"$schema": SCHEMA, "provider": {pid: provider}, "model": runtime_id,
                "small_model": runtime_id}, notes

    def edits(self, deployment, recipe, key_source, existing: dict) -> list[tuple[tuple[str, ...], object]]:
        """Key paths set in a user's file: only launch's own keys; everything else stays."""
        doc, _ = self.document(deployment, recipe, key_source)
        pid = recipe.agent.provider
        prov = doc["provider"][pid]
        out: list[tuple[tuple[str, ...], object]] = []
        if "$schema" not in existing:
            out.append((("$schema",), SCHEMA))
        out += [
            (("provider", pid, "npm"), prov["npm"]),
            (("provider", pid, "name"), prov["name"]),
            (("provider", pid, "options", "baseURL"), prov["options"]["baseURL"]),
        ]
        if "apiKey" in prov["options"]:
            out.append((("provider", pid, "options", "apiKey"), prov["options"]["apiKey"]))
        out += [
            (("provider", pid, "models", deployment.model), prov["models"][deployment.model]),
            (("model",), doc["model"]),
            (("small_model",), doc["small_model"]),
        ]
        return out

    # -- configure -------------------------------------------------------------------------------
    def target_path(self, recipe, write: str, cwd: Path | None, environ: Mapping[str, str]) -> Path:
        if write == "default":
            return default_path(recipe.name)
        if write == "global":
            return pick_file(global_dir(environ))
        return pick_file(Path(cwd or Path.cwd()))

    def configure(self, deployment, *, recipe, key_source, write: str = "default", cwd: Path | None = None,
                  dry_run: bool = False, environ: Mapping[str, str] | None = None) -> ConfigResult:
        from launcher import jsonc
        from launcher.atomic import write_atomic

        environ = os.environ if environ is None else environ
        self.check_target(write)
        doc, notes = self.document(deployment, recipe, key_source)
        block = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        path = self.target_path(recipe, write, cwd, environ)
        result = ConfigResult(self.name, write, path, block, notes=notes)
        if write == "default":
            result.env["OPENCODE_CONFIG"] = str(path)
            own = environ.get("OPENCODE_CONFIG")
            if own and Path(own).expanduser() != path:
                notes.append(f"your OPENCODE_CONFIG ({own}) is replaced by launch's file when launch starts "
                             "OpenCode; --write global or --write project merges into your files instead")
            new_text = block
        else:
            old = path.read_text(encoding="utf-8") if path.exists() else ""
            if old.strip():
                existing = jsonc.parse(old, where=str(path)) if _parses(old) else {}
                new_text = jsonc.set_keys(old, self.edits(deployment, recipe, key_source, existing),
                                          where=str(path), block=block)
            else:
                new_text = block
        if dry_run:
            return result
        res = write_atomic(path, new_text)
        result.path, result.written, result.backup = res.path, res.changed, res.backup
        return result

    # -- prepare ---------------------------------------------------------------------------------
    def prepare(self, deployment, *, recipe, key_source, args: list[str], cwd: Path | None = None,
                config: ConfigResult | None = None, check_models: bool = True,
                environ: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
        environ, key, binary = self.checked(deployment, key_source, environ, check_models)
        env = dict(environ)
        if config is None:
            env["OPENCODE_CONFIG"] = str(default_path(recipe.name))
        else:
            env.update(config.env)
        if key_source is not None and key_source.command:
            env[key_var(deployment, key_source)] = key
        runtime_id = f"{recipe.agent.provider}/{deployment.model}"
        args = list(args)
        if any(a in MODEL_FLAGS or a.startswith("--model=") for a in args):
            argv = [binary, *args]
        elif args and args[0] == "run":
            argv = [binary, "run", "--model", runtime_id, *args[1:]]
        elif not args or args[0].startswith("-") or (Path(cwd or Path.cwd()) / args[0]).is_dir():
            argv = [binary, "--model", runtime_id, *args]  # the TUI; a project config cannot switch models
        else:
            argv = [binary, *args]  # another subcommand (models, debug, …): passed as given
        return argv, env


def _parses(text: str) -> bool:
    from launcher import jsonc

    try:
        jsonc.parse(text)
        return True
    except jsonc.JsoncError:
        return False
