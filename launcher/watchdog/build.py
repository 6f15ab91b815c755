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
    wd = inv.watchdog
    sd = state_dir or (default_state() / "watchdog")
    if wd:
        policy = D.Policy(**{**policy.__dict__, "max_cycles": wd.max_cycles, "window": wd.window,
                             "delay_max": wd.delay_max,
                             # next to the cycle budget (`watchdog: {max_restarts, restart_window}`) where
                             # the inventory schema has them
                             **{k: getattr(wd, k) for k in ("max_restarts", "restart_window")
                                if getattr(wd, k, None) is not None}})
    budget = Budget(max_cycles=policy.max_cycles, window=policy.window, path=sd / f"{inv.name}.budget.json",
                    wall=clock.wall)
    restart_budget = Budget(max_cycles=policy.max_restarts, window=policy.restart_window,
                            path=sd / f"{inv.name}.restarts.json", wall=clock.wall)
    alerter = Alerter(command=wd.alert_command if wd else None, webhook=wd.alert_webhook if wd else None,
                      gave_up_dir=sd)
    return Watchdog(nodes, policy=policy, clock=clock, journal=journal, prober=Prober(timeout=policy.timeout, icmp=icmp),
                    reference=inv.reference, budget=budget, restart_budget=restart_budget, alerter=alerter,
                    restarter=Restarter({n.name: inv.hosts[n.name] for n in nodes},
                                        recipes={n.name: n.recipe or n.served_recipe for n in nodes}),
                    pause_file=(wd.pause_file if wd and wd.pause_file else str(sd / "pause")), dry_run=dry_run)
