"""API key sources (env, file, command) and redaction.

A key's value is never printed, logged, put in argv or written to a file. Every value resolved here
is registered with the redaction filter, which masks it in anything launcher prints.
"""
from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import threading
from pathlib import Path

from launcher.errors import SecretError

MASK = "[set]"
_known: set[str] = set()
_lock = threading.Lock()


def secret_forms(value: str, users=()) -> set[str]:
    """The ways a secret shows up in text: raw, URL-encoded (quote, quote_plus), JSON-escaped, and
    as HTTP basic auth (base64 of `user:value`) for each user given."""
    from urllib.parse import quote, quote_plus

    if not value:
        return set()
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value), quote_plus(value, safe=""),
             json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    for user in users:
        if user is not None:
            forms.add(base64.b64encode(f"{user}:{value}".encode()).decode())
    return {f for f in forms if len(f) >= 4}


def register_secret(value: str, users=()) -> None:
    """Mask this value (and its encoded forms, see secret_forms) in everything launcher prints."""
    if value and len(value) >= 4:
        forms = secret_forms(value, users)
        with _lock:
            _known.update(forms)


def redact(text: str) -> str:
    """Mask every secret launcher has seen in text."""
    if not _known or not text:
        return text
    with _lock:
        secrets = sorted(_known, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, MASK)
    return text


def resolve(source, *, where: str | None = None, env: dict[str, str] | None = None, what: str = "API key") -> str:
    """Read the secret a KeySource names. Raises SecretError naming the source (`what` it is: the API key,
    a power credential) and the fix."""
    environ = os.environ if env is None else env
    if source.env:
        value = environ.get(source.env, "")
        if not value:
            raise SecretError(f"the {what} variable {source.env} is not set (or empty)", where=where,
                              fix=f"export {source.env}=… in this shell (or point it at a file: / command: source)")
    elif source.file:
        path = Path(os.path.expanduser(source.file))
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"cannot read the {what} file {path}: {exc.strerror}", where=where,
                              fix=f"create {path} holding only the secret (chmod 600), or fix the file: path") from None
        if not value:
            raise SecretError(f"the {what} file {path} is empty", where=where, fix=f"write the secret into {path}")
    else:
        try:
            proc = subprocess.run(shlex.split(source.command), capture_output=True, text=True,
                                  timeout=source.timeout, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise SecretError(f"the {what} command's program was not found: {shlex.split(source.command)[0]}",
                              where=where, fix="install it or fix the source's command:") from None
        except subprocess.TimeoutExpired:
            raise SecretError(f"the {what} command did not finish within {source.timeout:g} s", where=where,
                              fix="check the command by hand (does it wait for input?), or raise the source's "
                                  "timeout:") from None
        if proc.returncode != 0:
            err = redact(proc.stderr.strip().splitlines()[-1]) if proc.stderr.strip() else "no message"
            raise SecretError(f"the {what} command failed (exit {proc.returncode}): {err}", where=where,
                              fix="run the command by hand to see why, or fix the source's command:")
        value = proc.stdout.strip()
        if not value:
            raise SecretError(f"the {what} command printed nothing", where=where,
                              fix=f"the command must print the {what} on stdout")
    register_secret(value)
    return value


def plan_secrets(plan, key: str | None) -> dict[str, str]:
    """Every secret value the plan's processes may get: the API key (as the engine's variable) and the
    recipe's `env: {NAME: {env|file|command: …}}` references, each named by its recipe line when missing."""
    values = {plan.api_key_env: key} if (key and plan.api_key_env) else {}
    for name, src in (getattr(plan, "secret_env", None) or {}).items():
        where = (getattr(plan, "secret_env_where", None) or {}).get(name) or f"{plan.recipe_path}: env.{name}"
        values[name] = resolve(src, where=where, what=f"env.{name} secret")
    return values


def secrets_for(proc, values: dict[str, str]) -> dict[str, str]:
    """The secret values one process gets: only the names its plan entry lists."""
    return {name: values[name] for name in (getattr(proc, "secret_env", None) or {}) if name in values}
