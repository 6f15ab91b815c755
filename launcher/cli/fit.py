"""`launch fit RECIPE [--json] [--config PATH] [--memory-gib N]`: memory and context before a start."""
from __future__ import annotations

import typer


def fit(
    recipe: str = typer.Argument(..., help="Recipe name or path to a YAML file."),
    as_json: bool = typer.Option(False, "--json", help="Print the estimate as JSON."),
    config: str = typer.Option(None, "--config", help="The model's config.json (or folder, or .gguf); "
                                                      "wins over the recipe's shape: block."),
    memory_gib: float = typer.Option(None, "--memory-gib", help="Per-GPU memory, when the inventory has none."),
) -> None:
    """Estimate weights, KV bytes per token and the largest context at 1, 2 and 4 sessions."""
    from launcher import ui
    from launcher.fit_report import estimate, gib, human_bytes
    from launcher.spec.load import load_inventory, load_recipe, local_inventory

    loaded = load_recipe(recipe)
    r = loaded.spec
    if r.hosts:
        inv = load_inventory(r.hosts, relative_to=loaded.source.path.parent).spec
    else:
        inv = local_inventory()
    rep = estimate(r, inv, config_path=config, memory_gib=memory_gib, probe_local=True)
    if as_json:
        ui.print_json(rep.to_json())
        return
    rows = [
        ["model", f"{rep.model} (shape from {rep.shape_source})"],
        ["hosts", f"{', '.join(rep.hosts) or 'local'}: {gib(rep.memory_gib)} per GPU"
                  f"{' (unified)' if rep.unified_memory else ''} x {rep.utilization:g}, TP {rep.tp}"
                  + (f" ({rep.memory_source})" if rep.memory_source else "")],
        ["weights", f"{gib(rep.weights_gib)} ({gib(rep.weights_per_gpu_gib)} per GPU)"],
        ["KV cache", f"{rep.kv_cache_dtype}: {human_bytes(rep.kv_bytes_per_token)}/token "
                     f"({human_bytes(rep.kv_bytes_per_token_per_gpu)}/token per GPU)"],
    ]
    if rep.sliding_window:
        rows.append(["sliding window", f"{human_bytes(rep.sliding_bytes_per_token)}/token for at most "
                                       f"{rep.sliding_window:,} tokens"])
    if rep.state_bytes_per_sequence:
        rows.append(["Mamba state", f"{human_bytes(rep.state_bytes_per_sequence)} per sequence "
                                    f"({human_bytes(rep.state_bytes_per_sequence_per_gpu)} per GPU)"])
    rows.append(["KV budget", f"{gib(rep.kv_budget_gib)} per GPU (after reserve {gib(rep.reserve_gib)})"])
    if rep.kv_tokens_estimate is not None:
        rows.append(["KV tokens", f"about {rep.kv_tokens_estimate:,}"])
    for s, n in rep.largest_context.items():
        label = "session" if s == "1" else "sessions"
        rows.append([f"largest context, {s} {label}", "?" if n is None else f"{n:,}"])
    if rep.requested_context:
        verdict = {True: "fits", False: "does NOT fit", None: "unknown"}[rep.fits]
        rows.append([rep.requested_field, f"{rep.requested_context:,}: {verdict}"])
    ui.table(f"fit: {rep.recipe}", ["", "estimate"], rows)
    for n in rep.notes:
        ui.info(n)
    for w in rep.warnings:
        ui.warn(w)
    if rep.suggestions:
        ui.out("suggested flags:")
        for s in rep.suggestions:
            ui.out(f"  {s}")


def register(app: typer.Typer) -> None:
    app.command("fit")(fit)
