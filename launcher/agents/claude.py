"""Claude Code: pointed at a server that serves the Anthropic Messages API (/v1/messages) through
its environment only; launch writes no file (a settings file would have to hold the token).

ANTHROPIC_BASE_URL is the server root (no /v1); ANTHROPIC_AUTH_TOKEN carries the key (sent as
Bearer) and ANTHROPIC_API_KEY is left empty; every model alias maps to the served id.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from launcher.agents.base import Agent, ConfigResult, effective_limits

NO_KEY = "no-key"  # Claude Code wants some token; a server without a key ignores it

MODEL_VARS = ("ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL", "ANTHROPIC_DEFAULT_HAIKU_MODEL",
              "CLAUDE_CODE_SUBAGENT_MODEL")


# Claude Code 2.1.330 (checked against the CLI): CLAUDE_CODE_AUTO_COMPACT_WINDOW below 100k "reads as …,
# so Claude Code treats it as the 100k minimum"; CLAUDE_CODE_MAX_CONTEXT_TOKENS is the window of a model it
# does not recognize, and it compacts at window − min(max output, 20,000) − 13,000.
AUTO_COMPACT_MIN = 100_000
COMPACT_RESERVE = 13_000
COMPACT_OUTPUT_CAP = 20_000


def compact_threshold(context: int, output: int) -> int:
    """The conversation size at which Claude Code compacts, for a window of `context` tokens."""
    return context - min(output, COMPACT_OUTPUT_CAP) - COMPACT_RESERVE


class Claude(Agent):
    name = "claude"
    binary = "claude"
    install = "npm install -g @anthropic-ai/claude-code"
    targets = ("default",)

    def environment(self, deployment, recipe) -> tuple[dict[str, str], list[str]]:
        """Every variable but the token (whose value only the child's environment holds)."""
        lim = effective_limits(deployment, recipe)
        env = {"ANTHROPIC_BASE_URL": deployment.root_url.rstrip("/"), "ANTHROPIC_API_KEY": ""}
        for var in MODEL_VARS:
            env[var] = deployment.model
        notes = [lim.note] if lim.note else []
        # the window of a model Claude Code does not know (it would assume its own default otherwise)
        env["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] = str(lim.context)
        if lim.context >= AUTO_COMPACT_MIN:
            env["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] = str(lim.context)
        env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] = str(lim.output)
        env["DISABLE_ERROR_REPORTING"] = "1"
        left = compact_threshold(lim.context, lim.output)
        if left < lim.context // 2:
            notes.append(f"Claude Code compacts at context − min(output, 20,000) − 13,000 = {max(left, 0):,} "
                         f"tokens here: with a {lim.context:,}-token context it compacts early and often "
                         "(serve a longer context, or use --agent opencode)")
        return env, notes

    def configure(self, deployment, *, recipe, key_source, write: str = "default", cwd: Path | None = None,
                  dry_run: bool = False, environ: Mapping[str, str] | None = None) -> ConfigResult:
        if write != "default":
            from launcher.errors import InputError

            raise InputError(f"--write {write} is not supported for claude: Claude Code is configured "
                             "through the environment launch gives it (a settings file would hold the token)",
                             fix="use --write default; `launch config RECIPE --agent claude --print` shows "
                                 "the variables")
        env, notes = self.environment(deployment, recipe)
        token = f"<the key from {key_source.describe()}>" if key_source else NO_KEY
        lines = [f"{k}={v}" for k, v in env.items()]
        lines.insert(1, f"ANTHROPIC_AUTH_TOKEN={token}")
        notes.append("Claude Code needs a server that serves /v1/messages (vLLM, llama-server and Ollama do)")
        return ConfigResult(self.name, write, None, "\n".join(lines) + "\n", env=env, notes=notes)

    def prepare(self, deployment, *, recipe, key_source, args: list[str], cwd: Path | None = None,
                config: ConfigResult | None = None, check_models: bool = True,
                environ: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
        environ, key, binary = self.checked(deployment, key_source, environ, check_models)
        env = dict(environ)
        env.update(self.environment(deployment, recipe)[0])
        env["ANTHROPIC_AUTH_TOKEN"] = key or NO_KEY
        return [binary, *args], env
