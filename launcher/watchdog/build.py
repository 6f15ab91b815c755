"""Build a Watchdog from an inventory: targets, power drivers, reference, budgets, alerts."""
from __future__ import annotations

from launcher.power.base import Clock
from launcher.watchdog import decide as D
from launcher.watchdog.budget import Alerter, Budget
from launcher.watchdog.journal import Journal
from launcher.watchdog.loop import Node, Watchdog
from launcher.watchdog.probes import Prober, Target
from launcher.watchdog.restart import Restarter


def nodes_from(inv, *, clock: Clock, ssh_probe: bool = True, where=None, metas: list[dict] | None = None) -> list[Node]:
    """One Node per host with `watch:`; its URLs from watch.url, else the deployment launch started there
    (launcher.watchdog.discover). where: the inventory's Loaded.where, for file:line in errors."""
    from launcher.power import power_for
    from launcher.watchdog.discover import deployments, resolve

    out = []
    for name, host in inv.hosts.items():
        if not host.watch:
            continue
        if not host.watch.urls and metas is None:
            metas = deployments()
        watched = resolve(name, host, inventory=inv.name, where=where, metas=metas)
        target = Target(name, watched.urls, ssh_host=host.address if ssh_probe and not host.is_local else None,
                        ssh_port=host.ssh.port, icmp_host=host.address)
        power, err = None, None
        if host.power:
            try:
                power = power_for(host.power, where=f"{inv.name}: hosts.{name}.power", clock=clock)
            except Exception as exc:  # noqa: BLE001 - reported when a cycle would be needed, and at start
                err = getattr(exc, "what", str(exc))
        out.append(Node(name, target, power=power, power_error=err, reference=host.watch.reference,
                        recipe=host.watch.recipe, source=watched.source, served_recipe=watched.recipe))
    return out


def _recipe_inventory_is(recipe_l, inv) -> bool:
    """Does the recipe's `hosts:` name this inventory (by name, or a path to a file of that name/stem)?"""
    from pathlib import Path

    ref = recipe_l.spec.hosts
    if not ref:
        return False
    return ref == inv.name or Path(str(ref)).stem == inv.name


def members_of(name: str, node: Node, inv, metas: list[dict]) -> tuple[list[str], str]:
    """The other inventory hosts of the deployment served from node (e.g. the Ray worker of a TP=2 pair):
    from the deployment record launch up wrote (its plan's hosts), else the recipe (watch.recipe or the
    recipe found serving there) when its parallelism spans several nodes (the plan takes the first
    `parallelism.nodes` hosts of its inventory, head first). ([], "") when single-host or unknown."""
    urls = {u.rstrip("/") for u in node.target.urls}
    recipe = node.recipe or node.served_recipe
    for m in metas:
        hosts = list((m.get("hosts") or {}).keys())
        if len(hosts) > 1 and name in hosts and (str(m.get("endpoint") or "").rstrip("/") in urls
                                                 or (recipe and m.get("recipe") == recipe)):
            return [h for h in hosts if h != name and h in inv.hosts], f"deployment {m.get('recipe')} (its plan's hosts)"
    if recipe:
        from launcher.spec.load import load_recipe

        try:
            r = load_recipe(recipe)
        except Exception:  # noqa: BLE001 - an unreadable recipe: no members known (its key note says why)
            return [], ""
        n = r.spec.parallelism.nodes
        chosen = list(inv.hosts)[:n]
        if n > 1 and _recipe_inventory_is(r, inv) and name in chosen:
            return [h for h in chosen if h != name], f"recipe {recipe} (parallelism.nodes {n} over {inv.name})"
    return [], ""


def api_key_for(node: Node, metas: list[dict]) -> tuple[str | None, str]:
    """The deployment's API key for node's URLs: (key, where it comes from). From the deployment record
    launch up wrote (its endpoint is one of the URLs, or its recipe is the node's), else the recipe's
    `api_key` (watch.recipe, or the recipe found serving there), resolved through launcher.auth.resolve.
    The key is registered as a secret (masked everywhere); the note names the source, never the value."""
    from launcher.auth import register_secret, resolve
    from launcher.spec.keysource import KeySource

    urls = {u.rstrip("/") for u in node.target.urls}
    recipe = node.recipe or node.served_recipe
    source, origin = None, ""
    for m in metas:
        if m.get("api_key") and (str(m.get("endpoint") or "").rstrip("/") in urls
                                 or (recipe and m.get("recipe") == recipe)):
            try:
                source, origin = KeySource(**m["api_key"]), f"deployment {m.get('recipe')}"
                break
            except Exception:  # noqa: BLE001 - a damaged record: look further
                continue
    if source is None and recipe:
        from launcher.spec.load import load_recipe

        try:
            source, origin = load_recipe(recipe).spec.api_key, f"recipe {recipe}"
        except Exception as exc:  # noqa: BLE001 - no recipe: no key (said in the journal)
            return None, f"none (cannot read recipe {recipe}: {getattr(exc, 'what', exc)})"
        if source is None:
            return None, f"none (recipe {recipe} sets no api_key)"
    if source is None:
        return None, "none known (no deployment record or watch.recipe for these URLs)"
    try:
        key = resolve(source, where=origin)
    except Exception as exc:  # noqa: BLE001 - SecretError: said in the journal; probes go without a key
        return None, f"{source.describe()} from {origin}: unavailable ({getattr(exc, 'what', exc)})"
    register_secret(key)
    return key, f"{source.describe()} from {origin}"


def from_inventory(inv, *, policy: D.Policy, clock: Clock | None = None, journal: Journal | None = None,
                   dry_run: bool = False, state_dir=None, icmp: bool = False, where=None,
                   metas: list[dict] | None = None) -> Watchdog:
    from launcher.errors import InputError
    from launcher.paths import state_dir as default_state

    clock = clock or Clock()
    nodes = nodes_from(inv, clock=clock, where=where, metas=metas)
    if not nodes:
        raise InputError(f"inventory {inv.name} has no host with `watch:`", where=where() if where else None,
                         fix="add `watch: {url: http://HOST:8000}` (or `watch: {}` for the server launch started "
                             "there) to each host the watchdog should watch")
    from launcher.watchdog.discover import deployments

    keys: dict[str, str] = {}
    records = metas if metas is not None else deployments()
    from launcher.power import power_for
    from launcher.watchdog.loop import Member

    for n in nodes:
        key, n.api_key_note = api_key_for(n, records)
        if key:
            keys.update({u: key for u in n.target.urls})
        names, n.members_source = members_of(n.name, n, inv, records)
        for m in names:
            h = inv.hosts[m]
            power, err = None, None
            if h.power:
                try:
                    power = power_for(h.power, where=f"{inv.name}: hosts.{m}.power", clock=clock)
                except Exception as exc:  # noqa: BLE001 - said when it would be needed
                    err = getattr(exc, "what", str(exc))
            else:
                err = f"no `power:` for {m} in the inventory"
            n.members[m] = Member(m, h.address, h.ssh.port, power=power, power_error=err)
            n.target.members.append((m, h.address, h.ssh.port))
    wd = inv.watchdog
    sd = state_dir or (default_state() / "watchdog")
    if wd:
        policy = D.Policy(**{**policy.__dict__, "max_cycles": wd.max_cycles, "window": wd.window,
                             "delay_max": wd.delay_max,
                             # next to the cycle budget (`watchdog: {max_restarts, restart_window, stall}`)
                             # where the inventory schema has them
                             **{k: getattr(wd, k) for k in ("max_restarts", "restart_window", "stall")
                                if getattr(wd, k, None) is not None}})
    budget = Budget(max_cycles=policy.max_cycles, window=policy.window, path=sd / f"{inv.name}.budget.json",
                    wall=clock.wall)
    restart_budget = Budget(max_cycles=policy.max_restarts, window=policy.restart_window,
                            path=sd / f"{inv.name}.restarts.json", wall=clock.wall)
    alerter = Alerter(command=wd.alert_command if wd else None, webhook=wd.alert_webhook if wd else None,
                      gave_up_dir=sd)
    return Watchdog(nodes, policy=policy, clock=clock, journal=journal, prober=Prober(timeout=policy.timeout, icmp=icmp, keys=keys),
                    reference=inv.reference, budget=budget, restart_budget=restart_budget, alerter=alerter,
                    restarter=Restarter({n.name: inv.hosts[n.name] for n in nodes},
                                        recipes={n.name: n.recipe or n.served_recipe for n in nodes}),
                    pause_file=(wd.pause_file if wd and wd.pause_file else str(sd / "pause")), dry_run=dry_run)
