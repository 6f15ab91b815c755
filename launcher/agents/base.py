"""What every coding agent integration does: write its config, check before starting, run it.

An Agent's configure() writes (or, with dry_run, only renders) the agent's configuration for a
Deployment; prepare() checks what would make the agent fail silently (key variable unset, binary
missing, served id not what the server lists) and returns the argv and the full environment for
the child. exec_agent() replaces launch with the agent; run_supervised() keeps launch as a parent
(`--watch`) and reports a server failure when the agent exits.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from launcher.errors import InputError, RuntimeFailure, ServerFailed, ValidationFailed

WRITE_TARGETS = ("default", "global", "project")
FALLBACK_CONTEXT = 32768  # when nothing measured or declared the context: small enough for any server
DEFAULT_KEY_VAR = "LAUNCHER_API_KEY"  # where a file:/command: key reaches an agent that reads env vars


@dataclass
class ConfigResult:
    """What configure() did: the file (None when the agent is configured by environment only),
    whether it changed, the backup of the previous content, the block launch adds (as text, no
    secret values), the non-secret environment the agent needs, and notes for the user."""

    agent: str
    target: str  # default | global | project
    path: Path | None
    text: str
    written: bool = False
    backup: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.path is None:
            return f"{self.agent}: configured through the environment when launch starts it"
        if not self.written:
            return f"{self.agent}: {self.path} already up to date"
        line = f"{self.agent}: wrote {self.path}"
        if self.backup:
            line += f" (previous version saved as {self.backup})"
        return line


@dataclass
class AgentLimits:
    context: int
    output: int
    note: str | None = None  # set when the figures are a fallback, not measured


def declared_context(recipe) -> tuple[int | None, str]:
    """The context the recipe itself fixes (the server refuses to start without room for it)."""
    if isinstance(recipe.agent.context, int):
        return recipe.agent.context, "agent.context in the recipe"
    sessions = recipe.agent.sessions
    if recipe.vllm is not None and isinstance(recipe.vllm.max_model_len, int) and sessions == 1:
        return recipe.vllm.max_model_len, "vllm.max_model_len in the recipe"
    if recipe.llamacpp is not None:
        return recipe.llamacpp.ctx // recipe.llamacpp.parallel, "llamacpp.ctx / parallel in the recipe"
    for block in (recipe.ollama, recipe.lmstudio):
        if block is not None and isinstance(block.context, int):
            return block.context, "the context in the recipe"
    return None, ""


def effective_limits(deployment, recipe) -> AgentLimits:
    """limit.context / limit.output for the agent: the measured ones, else a safe fallback (never 0:
    OpenCode reads 0 as "no compaction" and "32000 output tokens")."""
    lim = deployment.limits
    if lim is not None and lim.context and lim.output:
        return AgentLimits(int(lim.context), int(min(lim.output, lim.context)))
    cap = getattr(deployment, "capacity", None)
    declared, source = declared_context(recipe)
    if declared:
        context = declared
    elif cap is not None and cap.max_model_len:
        context, source = int(cap.max_model_len), "the server's max_model_len"
    else:
        context, source = FALLBACK_CONTEXT, "a conservative default"
    # never above what the recipe says the server or the model can hold
    ceilings = []
    if recipe.vllm is not None and isinstance(recipe.vllm.max_model_len, int):
        ceilings.append((recipe.vllm.max_model_len, "vllm.max_model_len in the recipe"))
    if recipe.shape is not None and recipe.shape.trained_context:
        ceilings.append((recipe.shape.trained_context, "the model's trained length"))
    for ceiling, why in ceilings:
        if ceiling < context:
            context, source = ceiling, why
    output = max(256, min(int(recipe.agent.output), context // 4))
    note = (f"the server's limits were not measured: using limit.context {context} ({source}) and "
            f"limit.output {output}; `launch up {recipe.name}` measures them")
    return AgentLimits(context, output, note)


def is_reasoning(recipe, deployment=None) -> bool:
    """A reasoning model? The recipe's agent.reasoning when set; else the recipe's own sign (a vLLM
    reasoning parser) or what the server reported at bring-up (Ollama's "thinking" capability)."""
    if recipe.agent.reasoning is not None:
        return bool(recipe.agent.reasoning)
    return bool(recipe.is_reasoning or getattr(deployment, "reasoning", None))


def sampling_options(recipe) -> dict:
    return {k: v for k, v in recipe.sampling.model_dump(exclude_none=True).items() if v is not None}


def key_var(deployment, key_source) -> str | None:
    """The environment variable the agent reads the key from (None: the server needs no key)."""
    if key_source is None:
        return None
    if key_source.env:
        return key_source.env
    # file:/command: keys reach the agent under launch's own name, never a hosted provider's
    # (OPENAI_API_KEY would replace the user's own key for OpenAI inside the agent)
    return DEFAULT_KEY_VAR


def resolve_key(key_source, environ: Mapping[str, str], *, agent: str) -> str | None:
    """The key's value (for the child's environment and the /v1/models check); None without a key."""
    if key_source is None:
        return None
    from launcher.auth import resolve

    return resolve(key_source, where=f"api_key ({key_source.describe()}) for {agent}", env=dict(environ))


def find_binary(name: str, install: str, environ: Mapping[str, str]) -> str:
    path = shutil.which(name, path=environ.get("PATH", os.defpath))
    if not path:
        raise InputError(f"`{name}` is not on PATH", where="PATH",
                         fix=f"install it: {install} (or put its directory on PATH)")
    return path


def check_served(deployment, key: str | None, *, timeout: float = 10.0) -> list[str]:
    """GET {base_url}/models and require the served id in it (the config's model key must equal it).
    Returns the listed ids."""
    import httpx

    from launcher import http

    url = deployment.base_url.rstrip("/") + "/models"
    try:
        with http.client(retries=1, connect=timeout, read=timeout) as c:
            resp = c.get(url, headers=http.bearer(key))
    except httpx.HTTPError as exc:
        raise RuntimeFailure(f"the model server does not answer ({type(exc).__name__})", where=url,
                             fix=f"start it (`launch up {deployment.recipe}`) or check the address") from None
    if resp.status_code in (401, 403):
        raise ValidationFailed(f"the server refuses the API key (HTTP {resp.status_code})", where=url,
                               fix="the key the agent sends must be the one the server was started with")
    try:
        body = resp.json()
    except ValueError:
        body = None
    if resp.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("data"), list):
        hint = "send `Authorization: Bearer $KEY`" if isinstance(body, dict) and "error" in body else \
            "check that the address is the OpenAI-compatible /v1 root"
        raise ValidationFailed(f"the models list has no `data` (HTTP {resp.status_code})", where=url, fix=hint)
    ids = [str(m.get("id")) for m in body["data"] if isinstance(m, dict)]
    if deployment.model not in ids:
        raise ValidationFailed(
            f"the server does not serve '{deployment.model}' (it lists: {', '.join(ids) or 'nothing'})",
            where=url, fix="the model key must equal the server's --served-model-name: set served_name in "
                           "the recipe to the id /v1/models returns")
    return ids


class Agent:
    """One coding agent. Subclasses set the class attributes and implement configure/prepare."""

    name = ""
    binary = ""
    install = ""  # the exact command that installs the binary
    targets: tuple[str, ...] = ("default",)

    def checked(self, deployment, key_source, environ: Mapping[str, str] | None,
                check_models: bool) -> tuple[dict[str, str], str | None, str]:
        """What every agent checks before it starts: the key resolves (an unset {env:VAR} fails here,
        loudly), the binary is on PATH (else the install command), the served id is listed.
        Returns (environment copy, key value or None, binary path)."""
        env = dict(os.environ if environ is None else environ)
        key = resolve_key(key_source, env, agent=self.name)
        binary = find_binary(self.binary, self.install, env)
        if check_models:
            check_served(deployment, key)
        return env, key, binary

    def check_target(self, write: str) -> None:
        if write not in WRITE_TARGETS:
            raise InputError(f"--write {write}: not a target", fix=f"use one of: {', '.join(WRITE_TARGETS)}")
        if write not in self.targets:
            raise InputError(f"--write {write} is not supported for {self.name}",
                             fix=f"{self.name} supports: {', '.join(self.targets)}")

    def configure(self, deployment, *, recipe, key_source, write: str = "default", cwd: Path | None = None,
                  dry_run: bool = False, environ: Mapping[str, str] | None = None) -> ConfigResult:
        raise NotImplementedError

    def prepare(self, deployment, *, recipe, key_source, args: list[str], cwd: Path | None = None,
                config: ConfigResult | None = None, check_models: bool = True,
                environ: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError


def exec_agent(argv: list[str], env: dict[str, str]) -> None:
    """Replace this process with the agent (it owns the terminal). Returns only by raising."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        raise RuntimeFailure(f"cannot start {argv[0]}: {exc.strerror}", where=argv[0],
                             fix="check that the agent is installed and executable") from None


def run_supervised(argv: list[str], env: dict[str, str], check_server: Callable[[], str | None]) -> int:
    """Run the agent as a child and wait. Ctrl-C goes to the agent (it shares the terminal), not to
    launch. When it exits, check_server() says whether the model server failed meanwhile: a message
    raises ServerFailed; otherwise the agent's exit code is returned."""
    try:
        proc = subprocess.Popen(argv, env=env)
    except OSError as exc:
        raise RuntimeFailure(f"cannot start {argv[0]}: {exc.strerror}", where=argv[0],
                             fix="check that the agent is installed and executable") from None
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        previous = None
    try:
        rc = proc.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    problem = check_server()
    if problem:
        raise ServerFailed(f"the model server failed while {Path(argv[0]).name} was running: {problem}",
                           fix="see `launch logs` for the server's last lines, then `launch up` again")
    return rc
