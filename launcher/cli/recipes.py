"""launch recipes | show RECIPE | plan RECIPE."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("recipes", help="List the recipes launch can find (./recipes, config dir, shipped).")(recipes)
    app.command("show", help="Show a recipe resolved, with defaults filled in.")(show)
    app.command("plan", help="Print the exact commands per host, env names, ports and the plan hash.")(plan)


def recipes(as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    from launcher.errors import LauncherError
    from launcher.spec.load import available, load_recipe
    from launcher import ui

    rows = []
    for name, path in available("recipe").items():
        try:
            r = load_recipe(str(path)).spec
            rows.append({"name": name, "engine": r.engine, "model": r.served, "hosts": r.hosts or "local",
                         "description": r.description, "path": str(path), "error": None})
        except LauncherError as exc:
            rows.append({"name": name, "engine": "?", "model": "?", "hosts": "?", "description": "",
                         "path": str(path), "error": exc.render().splitlines()[0]})
    if as_json:
        ui.print_json(rows)
        return
    ui.table(None, ["recipe", "engine", "model", "hosts", "description"],
             [[r["name"], r["engine"], r["model"], r["hosts"],
               r["description"] if not r["error"] else f"INVALID: {r['error']}"] for r in rows])


def show(recipe: str = typer.Argument(..., help="Recipe name or path."),
         as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    import yaml

    from launcher import ui
    from launcher.spec.load import load_recipe

    loaded = load_recipe(recipe)
    data = loaded.spec.model_dump(mode="json", exclude_none=True)
    if as_json:
        ui.print_json({"path": str(loaded.source.path), "recipe": data})
        return
    ui.out(f"# {loaded.source.path}")
    ui.out(yaml.safe_dump(data, sort_keys=False).rstrip())


def plan(recipe: str = typer.Argument(..., help="Recipe name or path."),
         as_json: bool = typer.Option(False, "--json", help="Print JSON."),
         port: int = typer.Option(None, "--port", min=1, max=65535, help="Serve on this port instead of the recipe's.")):
    from launcher.plan import build_for

    _, p = build_for(recipe, port=port)
    print_plan(p, as_json=as_json)


def print_plan(p, *, as_json: bool = False) -> None:
    import shlex

    from launcher import ui

    if as_json:
        ui.print_json(p.model_dump(mode="json"))
        return
    ui.out(f"plan {p.recipe}  hash {p.hash}")
    ui.out(f"  engine {p.engine}, runtime {p.runtime}, inventory {p.inventory}")
    ui.out(f"  model {p.model} served as {p.served_name}")
    ui.out(f"  endpoint {p.base_url}" + (" (attach only: launch starts nothing)" if p.attach_only else ""))
    if p.api_key:
        ui.out(f"  API key: {p.api_key_env} <- {p.api_key.describe()} (through the environment, never argv)")
    for proc in p.processes:
        ui.out("")
        where = f"{proc.host} ({proc.address})"
        ui.out(f"[{proc.name}] on {where}, role {proc.role}, runtime {proc.runtime}"
               + (f", port {proc.port}" if proc.port else ""))
        env = dict(proc.env)
        for name, src in proc.secret_env.items():
            env[name] = f"<secret from {src}>"
        if env:
            ui.out("  env: " + " ".join(f"{k}={shlex.quote(v) if not v.startswith('<secret') else v}"
                                        for k, v in env.items()))
        c = proc.container
        if c:
            ui.out(f"  container {c.name}: image {c.image}, gpus {c.gpus}, ipc {c.ipc_mode}, shm {c.shm_size}"
                   + (f", network {c.network_mode}" if c.network_mode else "")
                   + (", ports " + ", ".join(f"{k}->{v}" for k, v in c.ports.items()) if c.ports else ""))
            ui.out("  volumes: " + ", ".join(f"{h}:{cpath}" for h, cpath in c.volumes.items()))
            ui.out("  labels: " + ", ".join(f"{k}={v}" for k, v in c.labels.items()))
            ui.out(f"  docker: {proc.docker_url}")
        if proc.exec_in:
            ui.out(f"  runs inside the {proc.exec_in} container (docker exec)")
        ui.out("  $ " + proc.command)
