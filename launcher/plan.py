"""Pure: (recipe, inventory, overrides) -> Plan. Every command, env var NAME, port and container
spec per host, and a stable plan hash. Nothing below this stage re-reads YAML."""
from __future__ import annotations

import hashlib
import json
import shlex

from pydantic import BaseModel, Field

from launcher.errors import InputError, SpecError
from launcher.spec.keysource import KeySource

HF_CACHE_IN_CONTAINER = "/root/.cache/huggingface"
SHM_SIZE = "10.24g"


class ContainerSpec(BaseModel):
    image: str
    name: str
    entrypoint: list[str]
    command: list[str]
    env: dict[str, str] = Field(default_factory=dict)
    secret_env: list[str] = Field(default_factory=list)  # names only; values come at start time
    labels: dict[str, str] = Field(default_factory=dict)
    network_mode: str | None = None  # "host" for multi-node
    ports: dict[str, int] = Field(default_factory=dict)  # "8000/tcp" -> host port
    ipc_mode: str = "host"
    shm_size: str = SHM_SIZE
    gpus: str = "all"
    volumes: dict[str, str] = Field(default_factory=dict)  # host path -> container path


class Process(BaseModel):
    name: str
    host: str
    address: str
    role: str
    runtime: str
    argv: list[str]
    env: dict[str, str] = Field(default_factory=dict)
    secret_env: dict[str, str] = Field(default_factory=dict)  # NAME -> source description, never a value
    port: int | None = None
    exec_in: str | None = None
    ready: str = "http"
    container: ContainerSpec | None = None
    docker_url: str | None = None

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


class Plan(BaseModel):
    recipe: str
    recipe_path: str
    inventory: str
    engine: str
    runtime: str
    model: str
    served_name: str
    endpoint: str  # http://host:port (health, metrics)
    base_url: str  # endpoint + /v1 (OpenAI-compatible clients)
    api_key: KeySource | None = None
    api_key_env: str | None = None  # the variable the server and the agent read
    api_key_where: str | None = None  # file:line of `api_key:` in the recipe, for error messages
    # the recipe's secret env references (`env: {HF_TOKEN: {env: HF_TOKEN}}`): NAME -> where the value comes
    # from, resolved at start time for every process that lists NAME in its secret_env. Sources, never values;
    # not hashed here (each process's secret_env carries the source descriptions into the hash).
    secret_env: dict[str, KeySource] = Field(default_factory=dict)
    secret_env_where: dict[str, str] = Field(default_factory=dict)  # NAME -> file:line in the recipe
    processes: list[Process] = Field(default_factory=list)
    hosts: dict[str, dict] = Field(default_factory=dict)  # host name -> inventory facts preflight needs
    startup_timeout: float = 1800
    attach_only: bool = False
    hash: str = ""

    def head(self) -> Process | None:
        return next((p for p in self.processes if p.role == "server"), None)

    def fingerprint(self) -> dict:
        """What runs: changes here change the hash; cosmetic fields (description) do not."""
        return {
            "engine": self.engine, "runtime": self.runtime, "model": self.model,
            "served": self.served_name, "endpoint": self.endpoint,
            "api_key_env": self.api_key_env,
            "processes": [p.model_dump(mode="json", exclude={"container": {"labels"}}) for p in self.processes],
        }


def compute_hash(plan: Plan) -> str:
    blob = json.dumps(plan.fingerprint(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _select_nodes(recipe_l, inv_l):
    """The hosts a recipe runs on: the first `nodes` hosts of the inventory (head first)."""
    from launcher.engines.base import NodeCtx

    r, inv = recipe_l.spec, inv_l.spec
    names = list(inv.hosts)
    want = r.parallelism.nodes
    problems = []
    if want > len(names):
        problems.append(InputError(
            f"parallelism.nodes is {want} but inventory '{inv.name}' has {len(names)} host(s)",
            where=recipe_l.where("parallelism", "nodes"),
            fix=f"add hosts to {inv_l.source.path} or lower parallelism.nodes"))
        want = len(names)
    chosen = names[:want]
    if r.engine == "vllm":
        problems += _gpu_problems(recipe_l, inv_l, chosen)
    if r.parallelism.nodes > 1 and r.runtime == "local":
        local_only = all(inv.hosts[n].is_local for n in chosen)
        if not local_only:
            problems.append(InputError(
                "runtime local runs on this machine only, but the recipe spans remote hosts",
                where=recipe_l.where("runtime"), fix="use runtime: ssh or runtime: docker"))
    if problems:
        raise SpecError(problems)
    return [NodeCtx(name=n, address=inv.hosts[n].address, interface=inv.hosts[n].interface,
                    gpus=inv.hosts[n].gpus.count, cluster_address=inv.hosts[n].cluster_address) for n in chosen]


def _gpu_problems(recipe_l, inv_l, chosen: list[str]) -> list[InputError]:
    """Tensor parallelism against the GPUs the inventory gives the chosen hosts."""
    r, inv = recipe_l.spec, inv_l.spec
    tp = r.parallelism.tensor
    counts = {n: inv.hosts[n].gpus.count for n in chosen}
    gpus = sum(counts.values())
    where = recipe_l.where("parallelism", "tensor")
    if tp > gpus:
        return [InputError(
            f"parallelism.tensor is {tp} but the {len(chosen)} host(s) used ({', '.join(chosen)}) have "
            f"{gpus} GPU(s) in inventory '{inv.name}'", where=where,
            fix=f"lower parallelism.tensor to {gpus} or less, raise parallelism.nodes, or correct "
                f"gpus.count in {inv_l.source.path}")]
    if len(chosen) < 2 or tp % len(chosen):
        return []  # one node; or an uneven split, which the recipe check already reports
    per_node = tp // len(chosen)
    short = [f"{n} has {c}" for n, c in counts.items() if c < per_node]
    if short:
        return [InputError(
            f"parallelism.tensor {tp} over {len(chosen)} nodes puts {per_node} rank(s) on each node, but "
            f"{', '.join(short)} GPU(s) in inventory '{inv.name}'", where=where,
            fix=f"lower parallelism.tensor to {len(chosen) * min(counts.values())}, or correct gpus.count in "
                f"{inv_l.source.path}")]
    if r.parallelism.backend == "ray" and tp < gpus:
        return [InputError(
            f"parallelism.tensor is {tp} but the Ray cluster of {', '.join(chosen)} has {gpus} GPUs: launch "
            f"waits for all {gpus} to join and vLLM would use {tp}, packing them onto as few nodes as it can",
            where=where,
            fix=f"set parallelism.tensor to {gpus}, or set gpus.count in {inv_l.source.path} to the GPUs each "
                f"host should give ({per_node})")]
    return []


def _container(recipe, proc, plan_name: str, multi_node: bool, host, secret_names: list[str]) -> ContainerSpec:
    image = recipe.image or "vllm/vllm-openai:latest"
    ports = {} if multi_node or proc.port is None else {f"{proc.port}/tcp": proc.port}
    return ContainerSpec(
        image=image, name=f"launcher-{plan_name}-{proc.name}", entrypoint=proc.argv[:1], command=proc.argv[1:],
        env={**recipe.plain_env, **proc.env}, secret_env=secret_names,
        labels={"launcher.recipe": plan_name, "launcher.role": proc.role},
        network_mode="host" if multi_node else None, ports=ports,
        volumes={host.hf_cache: HF_CACHE_IN_CONTAINER})


def build(recipe_l, inv_l=None, *, port: int | None = None) -> Plan:
    """Make the plan. recipe_l/inv_l are spec.load.Loaded; inv_l None means this machine."""
    from launcher import engines
    from launcher.spec.load import Loaded, local_inventory

    r = recipe_l.spec
    if inv_l is None:
        inv_l = Loaded(local_inventory(), recipe_l.source)
    inv = inv_l.spec
    engine = engines.get(r.engine)
    port = port or r.effective_port
    attach_only = r.engine == "openai"
    nodes = [] if attach_only else _select_nodes(recipe_l, inv_l)
    procs = [] if attach_only else engine.processes(r, nodes, port)
    endpoint = engine.endpoint(r, nodes, port)

    key_env = engine.api_key_env if r.api_key else None
    if r.engine == "openai" and r.api_key:
        key_env = r.api_key.env or "OPENAI_API_KEY"
    multi = len(nodes) > 1
    out: list[Process] = []
    for p in procs:
        host = inv.hosts[p.host]
        runtime = r.runtime
        # the recipe's secret env goes to every process (each node loads the weights); the API key to the server
        secret = {name: src.describe() for name, src in r.secret_env.items()}
        if p.role == "server" and r.api_key and key_env:
            secret[key_env] = r.api_key.describe()
        container = None
        docker_url = None
        if runtime == "docker" and p.exec_in is None:
            container = _container(r, p, r.name, multi, host, list(secret))
            docker_url = host.docker_url(p.host)
        elif runtime == "docker":
            docker_url = host.docker_url(p.host)
        out.append(Process(name=p.name, host=p.host, address=host.address, role=p.role, runtime=runtime,
                           argv=p.argv, env={**r.plain_env, **p.env}, secret_env=secret, port=p.port,
                           exec_in=p.exec_in, ready=p.ready, container=container, docker_url=docker_url))
    plan = Plan(
        recipe=r.name, recipe_path=str(recipe_l.source.path), inventory=inv.name, engine=r.engine,
        runtime=r.runtime, model=r.model, served_name=r.served, endpoint=endpoint,
        base_url=(r.openai.base_url.rstrip("/") if attach_only else endpoint + "/v1"),
        api_key=r.api_key, api_key_env=key_env,
        api_key_where=recipe_l.where("api_key") if r.api_key else None, processes=out,
        secret_env=dict(r.secret_env),
        secret_env_where={name: recipe_l.where("env", name) for name in r.secret_env},
        hosts={n.name: inv.hosts[n.name].model_dump(mode="json") for n in nodes},
        startup_timeout=r.startup_timeout, attach_only=attach_only)
    plan.hash = compute_hash(plan)
    for p in plan.processes:
        if p.container:
            p.container.labels["launcher.plan-hash"] = plan.hash
    return plan


def build_for(recipe_ref: str, *, port: int | None = None):
    """Load a recipe (and its inventory) by name or path and plan it. Returns (recipe Loaded, Plan)."""
    from launcher.spec.load import load_inventory, load_recipe

    recipe_l = load_recipe(recipe_ref)
    inv_l = None
    if recipe_l.spec.hosts:
        try:
            inv_l = load_inventory(recipe_l.spec.hosts, relative_to=recipe_l.source.path.parent)
        except InputError as exc:
            if isinstance(exc, SpecError):
                raise
            raise InputError(f"hosts: {exc.what}", where=recipe_l.where("hosts"), fix=exc.fix) from None
    return recipe_l, build(recipe_l, inv_l, port=port)
