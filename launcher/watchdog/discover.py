"""What to watch on a node: the inventory's `watch.url`, else the deployment launch started there.

launch up notes every deployment's endpoint and hosts in the state dir (launcher.deploy.remember /
recall); a deployment serves from a node when its endpoint's host is the node's address (a worker of
a multi-node deployment is watched through its head's endpoint: give it `watch.url` to probe it).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from launcher.spec.inventory import LOCAL_ADDRESSES


@dataclass
class Watched:
    urls: list[str]
    source: str  # where the URLs came from, for the journal and the console
    recipe: str | None = None  # the recipe serving there, when known


def deployments() -> list[dict]:
    """Every deployment launch started from this machine (its recall() record, plus `_file`)."""
    from launcher import paths

    base = paths.state_dir() / "deployments"
    out = []
    for f in sorted(base.glob("*.json")) if base.is_dir() else []:
        try:
            meta = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("endpoint"):
            out.append({**meta, "_file": str(f)})
    return out


def serves_on(meta: dict, host) -> bool:
    ep = urlsplit(str(meta.get("endpoint") or "")).hostname
    if not ep:
        return False
    return ep == host.address or (ep in LOCAL_ADDRESSES and host.is_local)


def _where(where, *loc) -> str | None:
    return where(*loc) if where else None


def resolve(name: str, host, *, inventory: str, where=None, metas: list[dict] | None = None) -> Watched:
    """The URLs to probe on inventory host `name`; an InputError naming the inventory line when none."""
    from launcher.errors import InputError

    w = host.watch
    if w is not None and w.urls:
        return Watched(w.urls, f"inventory {_where(where, 'hosts', name, 'watch', 'url') or f'{inventory}: hosts.{name}.watch.url'}",
                       w.recipe)
    metas = deployments() if metas is None else metas
    if w is not None and w.recipe:  # the recipe named there first
        mine = [m for m in metas if m.get("recipe") == w.recipe]
        metas = mine + [m for m in metas if m not in mine]
    serving = [m for m in metas if serves_on(m, host)]
    if serving:
        urls = list(dict.fromkeys(str(m["endpoint"]).rstrip("/") for m in serving))
        recipes = list(dict.fromkeys(str(m.get("recipe")) for m in serving))
        return Watched(urls, "the deployment(s) launch started there: " + ", ".join(
            f"{m.get('recipe')} ({m['_file']})" if m.get("_file") else str(m.get("recipe")) for m in serving),
            (w.recipe if w is not None and w.recipe else None) or (recipes[0] if len(recipes) == 1 else None))
    workers = [m for m in metas if name in (m.get("hosts") or {}) and not serves_on(m, host)]
    hint = (f" (it runs part of {workers[0].get('recipe')}, served from {workers[0].get('endpoint')}: "
            "that endpoint is watched on its head node)") if workers else ""
    raise InputError(
        f"nothing to watch on {name}: no `watch.url`, and no deployment launch started on {host.address}{hint}",
        where=_where(where, "hosts", name, "watch") or _where(where, "hosts", name) or f"{inventory}: hosts.{name}",
        fix=f"add `url: http://{host.address}:8000` (the model server) under hosts.{name}.watch, or start the server "
            "with `launch up RECIPE` from this machine so the watchdog finds it")
