"""launch validate RECIPE|BASE_URL [--model ID] [--key-env VAR] [--json]."""
from __future__ import annotations

from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("validate", help="Prove an endpoint before an agent uses it: models list, tool call, JSON "
                                 "arguments, multi-turn round trip, reasoning separation, streaming, auth, "
                                 "context. Exit 3 when a check fails.")(validate)


def validate(target: str = typer.Argument(..., metavar="RECIPE|BASE_URL",
                                          help="A recipe name or path, or a base URL ending at /v1."),
             model: Optional[str] = typer.Option(None, "--model", help="The served model id (default: the "
                                                 "recipe's, or the only id the URL serves)."),
             key_env: Optional[str] = typer.Option(None, "--key-env", metavar="VAR",
                                                   help="The environment variable holding the API key."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON."),
             api_style: Optional[str] = typer.Option(None, "--api-style", help="openai | anthropic | azure "
                                                     "(default: the recipe's, or openai)."),
             deployment: Optional[str] = typer.Option(None, "--deployment", help="Azure: the deployment name."),
             api_version: Optional[str] = typer.Option(None, "--api-version", help="Azure: the api-version."),
             context: Optional[int] = typer.Option(None, "--context", help="Check that a prompt just under "
                                                   "this many tokens is accepted."),
             context_check: Optional[str] = typer.Option(
                 None, "--context-check", metavar="full|length|off",
                 help="full: a prompt just under the limit (a real prefill of that length); length: a short "
                      "prompt whose max_tokens fills the limit (the server's length check, no long prefill; "
                      "the default for vLLM recipes on unified-memory hosts); off. Default: full."),
             max_tokens: int = typer.Option(4096, "--max-tokens", help="Output budget of the check requests."),
             timeout: float = typer.Option(120, "--timeout", help="Seconds to wait for each answer."),
             no_auth: bool = typer.Option(False, "--no-auth-check", help="Skip the request without the key.")):
    from launcher import ui
    from launcher.errors import ValidationFailed
    from launcher.validate import render_report
    from launcher.validate_target import validate_target

    report = validate_target(target, model=model, key_env=key_env, api_style=api_style, deployment=deployment,
                             api_version=api_version, context_limit=context, max_tokens=max_tokens,
                             timeout=timeout, check_auth=not no_auth, context_check=context_check)
    if as_json:
        ui.print_json(report.to_json())
    else:
        render_report(report)
    if not report.ok:
        raise ValidationFailed(report.summary(), where=report.base_url,
                               fix="each failed check above names its cause and fix")
