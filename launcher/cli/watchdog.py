"""`launch watchdog INVENTORY …` and `launch harden HOST [--apply]`."""
from __future__ import annotations

from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("watchdog")
    def watchdog(
        inventory: str = typer.Argument(..., help="Inventory name or YAML path (hosts with `watch:` and `power:`)."),
        once: bool = typer.Option(False, "--once", help="One round of probes and decisions, then exit."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Say what it would do; switch nothing."),
        period: float = typer.Option(10.0, "--period", help="Seconds between probe rounds."),
        timeout: float = typer.Option(10.0, "--timeout", help="Seconds each probe may take."),
        failures: int = typer.Option(3, "--failures", help="Consecutive failed probes before acting."),
        grace: float = typer.Option(1200.0, "--grace", help="Start-up grace (boot + model load), seconds."),
        restart_grace: float = typer.Option(120.0, "--restart-grace", help="Seconds a restarted server gets at least (it gets the whole start-up grace, counted from when the restart finished)."),
        off_wait: float = typer.Option(10.0, "--off-wait", help="Seconds the power stays off in a cycle."),
        journal: Optional[str] = typer.Option(None, "--journal", help="JSONL journal (default: state dir)."),
        icmp: bool = typer.Option(False, "--icmp", help="Also ping each host."),
        install: Optional[str] = typer.Option(None, "--install", help="`systemd`: write a unit and say how to enable it (with --dry-run: print it, write nothing)."),
    ):
        """Power-cycle a wedged node, never a healthy busy one (run it on a separate machine)."""
        import asyncio
        import os

        from launcher import ui
        from launcher.errors import InputError
        from launcher.paths import state_dir
        from launcher.spec.load import load_inventory
        from launcher.watchdog import decide as D
        from launcher.watchdog.build import from_inventory
        from launcher.watchdog.journal import Journal

        for name, v in (("--period", period), ("--timeout", timeout)):
            if v <= 0:
                raise InputError(f"{name} must be > 0", fix=f"e.g. {name} 10")
        if failures < 1:
            raise InputError("--failures must be at least 1", fix="e.g. --failures 3")
        loaded = load_inventory(inventory)
        inv = loaded.spec
        if install is not None:
            if install != "systemd":
                raise InputError(f"unknown --install target {install!r}", fix="use --install systemd")
            from launcher.watchdog.systemd import env_names, exec_start, plan as unit_plan, write as write_unit

            args = [f"--period={period:g}", f"--timeout={timeout:g}", f"--failures={failures}", f"--grace={grace:g}",
                    f"--restart-grace={restart_grace:g}", f"--off-wait={off_wait:g}"]
            if journal:
                args.append(f"--journal={journal}")
            if icmp:
                args.append("--icmp")
            p = unit_plan(exec_start(str(loaded.source.path) if hasattr(loaded.source, "path") else inventory, args),
                          env_names=env_names(inv))
            if not dry_run:  # --dry-run: show the unit and the commands, write nothing
                write_unit(p)
            ui.out(p.instructions(written=not dry_run))
            return
        policy = D.Policy(period=period, timeout=timeout, failures=failures, grace=grace,
                          restart_grace=restart_grace, off_wait=off_wait)
        jpath = journal or str(state_dir() / "watchdog" / f"{inv.name}.jsonl")
        j = Journal(jpath)
        wd = from_inventory(inv, policy=policy, journal=j, dry_run=dry_run, icmp=icmp, where=loaded.where)
        under_systemd = bool(os.environ.get("INVOCATION_ID"))  # systemd sets it for every service it starts
        for n in wd.nodes.values():
            if n.power is None:
                hint = ""
                host_power = getattr(inv.hosts.get(n.name), "power", None)
                var = getattr(getattr(host_power, "credentials", None), "env", None)
                if under_systemd and var and not os.environ.get(var):
                    from launcher.paths import config_dir
                    from launcher.watchdog.systemd import ENV_FILE

                    hint = (f"; under systemd this shell's variables are not seen: put the line {var}=… in "
                            f"{config_dir() / ENV_FILE} (mode 0600, the unit's EnvironmentFile), then "
                            "`systemctl [--user] restart launch-watchdog`")
                ui.warn(f"{n.name}: no usable power driver ({n.power_error or 'no `power:`'}): it can be watched, "
                        f"not cycled{hint}")
            else:
                for cap, why in n.power.driver.unsupported.items():
                    ui.info(f"{n.name}: {n.power.driver.describe()}: no {cap}: {why}")
        ui.info(f"watching {len(wd.nodes)} node(s) every {period:g} s; journal {jpath}"
                + ("; DRY RUN: nothing will be switched" if dry_run else ""))
        try:
            asyncio.run(wd.run(once=once))
        except KeyboardInterrupt:
            ui.info("stopped")
        finally:
            j.close()

    @app.command("harden")
    def harden(
        host: str = typer.Argument(..., help="user@host, a host, or INVENTORY:HOSTNAME."),
        apply: bool = typer.Option(False, "--apply", help="Install over ssh (needs passwordless sudo)."),
        prefer: str = typer.Option("(^|/)(vllm|python3?)$", "--prefer", help="earlyoom --prefer regex (the model server)."),
        json_out: bool = typer.Option(False, "--json"),
    ):
        """Keep a node reachable under memory pressure: sshd OOMScoreAdjust=-1000 and earlyoom."""
        from launcher import ui
        from launcher.harden import harden as run_harden, ssh_runner

        target: object = host
        if ":" in host and "@" not in host.split(":", 1)[0] and not host.split(":", 1)[1].isdigit():
            from launcher.errors import InputError
            from launcher.spec.load import load_inventory

            inv_ref, name = host.split(":", 1)
            inv = load_inventory(inv_ref).spec
            if name not in inv.hosts:
                raise InputError(f"no host {name!r} in {inv.name}", fix=f"one of: {', '.join(inv.hosts)}")
            target = inv.hosts[name]
        elif "@" in host:
            from launcher.spec.inventory import Host, SshSpec

            user, addr = host.split("@", 1)
            target = Host(address=addr, ssh=SshSpec(user=user))
        say = (lambda _m: None) if json_out else ui.out
        results = run_harden(ssh_runner(target), apply=apply, prefer=prefer, say=say)
        if json_out:
            ui.print_json({"host": host, "applied": apply, "steps": results})
        if apply and not all(r["ok"] for r in results):
            raise typer.Exit(1)
