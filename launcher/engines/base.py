"""What every serving engine provides. Engines produce data only (argv, env, ports, probes);
runtimes execute. An engine never runs anything itself."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class NodeCtx:
    """One host's part in a plan, as an engine sees it."""

    name: str  # inventory host name
    address: str  # how launch reaches the host (ssh, the API endpoint)
    interface: str | None = None
    gpus: int = 1
    cluster_address: str | None = None  # the IP the nodes reach each other on (Ray, NCCL, MASTER_ADDR)

    @property
    def ip(self) -> str:
        """The address other nodes use for this one: cluster_address, else address."""
        return self.cluster_address or self.address


@dataclass
class ProcSpec:
    """A process an engine wants run (before the plan decides container or not)."""

    name: str  # "server", "ray-head", "ray-worker-1", "worker-1"
    host: str
    role: str  # server | ray-head | ray-worker | worker
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    port: int | None = None
    exec_in: str | None = None  # run inside this other process's container (Ray head)
    ready: str = "http"  # http | ray | none


class Engine:
    """Base for engine modules. Subclasses set name and override what they support."""

    name = ""
    api_key_env: str | None = None  # the variable this server reads its API key from
    default_port = 0
    unsupported: dict[str, str] = {}  # capability -> reason (checked before acting)

    def processes(self, recipe, nodes: list[NodeCtx], port: int) -> list[ProcSpec]:
        raise NotImplementedError

    def endpoint(self, recipe, nodes: list[NodeCtx], port: int) -> str:
        return f"http://{_url_host(nodes[0].address)}:{port}"


def _url_host(address: str) -> str:
    if address in ("local", "localhost", "0.0.0.0"):
        return "127.0.0.1"
    return f"[{address}]" if ":" in address else address
