"""`launch fit` for an Ollama recipe: the model's shape from a running Ollama's /api/show model_info.

Where: the recipe's `port:` when it sets one, else OLLAMA_HOST, else 127.0.0.1:11434 — the same rule as
the bring-up. A short timeout, no retries, and nothing is ever started or pulled: offline (nothing
answers, or the model is not pulled) `fit` falls back to the recipe's `shape:` block.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from launcher.spec.shape import ModelShape

CONNECT_S = 0.5  # a local server answers in milliseconds; a closed port is refused at once
READ_S = 5.0


@dataclass
class OllamaShape:
    url: str
    shape: ModelShape | None  # None: nothing usable (see `note`)
    note: str = ""  # why no shape: "no Ollama answers at …", "… has no model …"


def ollama_url(recipe, environ=None) -> str:
    from launcher.engines.ollama import DEFAULT_PORT, url_from_ollama_host

    environ = os.environ if environ is None else environ
    if recipe.port is not None:
        return f"http://127.0.0.1:{recipe.port}"
    return url_from_ollama_host(environ.get("OLLAMA_HOST")) or f"http://127.0.0.1:{DEFAULT_PORT}"


def shape_from_running_ollama(recipe, *, environ=None, connect: float = CONNECT_S,
                              read: float = READ_S) -> OllamaShape:
    """Ask the Ollama the recipe would use for its model's shape; never raises for a missing server."""
    import httpx

    from launcher import http
    from launcher.engines.ollama import tags_entry
    from launcher.errors import InputError
    from launcher.fit import GIB
    from launcher.modelconfig import shape_from_ollama_show

    url = ollama_url(recipe, environ)
    try:
        with http.client(base_url=url, retries=0, connect=connect, read=read) as c:
            resp = c.post("/api/show", json={"model": recipe.model, "verbose": True})  # else arrays > 5 come back []
            if resp.status_code == 404:
                return OllamaShape(url, None, f"the Ollama at {url} has no model '{recipe.model}' pulled")
            if resp.status_code != 200:
                return OllamaShape(url, None, f"the Ollama at {url} answered /api/show with HTTP {resp.status_code}")
            show = resp.json()
            try:
                tags = c.get("/api/tags").json()
            except (httpx.HTTPError, ValueError):
                tags = {}
    except (httpx.HTTPError, ValueError):
        return OllamaShape(url, None, f"no Ollama answers at {url}")
    row = tags_entry(tags if isinstance(tags, dict) else {}, recipe.model) or {}
    weights = float(row["size"]) / GIB if row.get("size") else None
    try:
        shape = shape_from_ollama_show(show, weights_gib=weights)
    except (InputError, KeyError, TypeError, ValueError) as exc:
        what = exc.what if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
        return OllamaShape(url, None, f"the Ollama at {url} gave no usable model_info for '{recipe.model}' ({what})")
    return OllamaShape(url, shape)
