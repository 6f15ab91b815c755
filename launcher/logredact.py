"""Redaction for text that may carry a credential we did not resolve ourselves: URLs with a password
in the query or the userinfo, Authorization headers, `--password=` options. `scrub()` masks those and
every known secret (launcher.auth.redact, with its URL-encoded, JSON and basic-auth forms);
`install()` puts a filter doing the same on the logging handlers, so `launch -v` (httpx's own
"HTTP Request: GET URL" lines included) never prints a secret.
"""
from __future__ import annotations

import logging
import re

from launcher.auth import MASK, redact

#: query parameters whose value is a credential (Tasmota `password=`, `token=`, `api_key=`, ...)
_SECRET_PARAMS = r"(?:password|passwd|pass|pwd|token|access_token|auth_token|api_key|apikey|key|secret|sig|signature)"
_QUERY = re.compile(rf"([?&;]{_SECRET_PARAMS}=)(?!\[set\])[^&#;\s\"'<>]+", re.I)
# scheme://user:password@host -> scheme://user:[set]@host
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^/\s:@\"'<>]*:)(?!\[set\]@)[^/\s@\"'<>]+@", re.I)
_AUTH_HEADER = re.compile(r"((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|digest|token)\s+)"
                          r"(?!\[set\])[^\s\"',]+", re.I)
_OPTION = re.compile(r"(--(?:password|passwd|token|api[-_]key|secret)[= ])(?!\[set\])\S+", re.I)


def scrub(text: str, secrets=()) -> str:
    """Mask the given secrets, every secret launcher knows, and credential-looking URL parts."""
    if not text:
        return text
    for s in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(s, MASK)
    text = redact(text)
    text = _QUERY.sub(rf"\g<1>{MASK}", text)
    text = _USERINFO.sub(rf"\g<1>{MASK}@", text)
    text = _AUTH_HEADER.sub(rf"\g<1>{MASK}", text)
    return _OPTION.sub(rf"\g<1>{MASK}", text)


class RedactFilter(logging.Filter):
    """Rewrites each record's message (and traceback text) through scrub(); never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the logger's problem; show it masked
            msg = str(record.msg)
        clean = scrub(msg)
        if clean != record.msg or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if getattr(record, "stack_info", None):
            record.stack_info = scrub(record.stack_info)
        return True


_FILTER = RedactFilter()


def install(logger: logging.Logger | None = None) -> RedactFilter:
    """Put the filter on every handler of `logger` (the root logger) and on logging's last-resort
    handler. Handler filters see the records of all loggers (httpx, httpcore, launcher.*)."""
    root = logger or logging.getLogger()
    handlers = list(root.handlers)
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    for h in handlers:
        if _FILTER not in h.filters:
            h.addFilter(_FILTER)
    return _FILTER


def setup_logging(verbose: int, stream=None) -> None:
    """The CLI's logging: INFO with -v, DEBUG with -vv, every line through the redaction filter."""
    import sys

    if verbose:
        logging.basicConfig(level=logging.INFO if verbose == 1 else logging.DEBUG,
                            format="%(name)s: %(message)s", stream=stream or sys.stderr)
    install()
