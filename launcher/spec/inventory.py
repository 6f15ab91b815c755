"""The host inventory: which machines, how to reach them, how to power-cycle them."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from launcher.spec.keysource import KeySource

POWER_DRIVERS = ("shelly", "tasmota", "homeassistant", "ipmi", "redfish", "command")
LOCAL_ADDRESSES = {"localhost", "127.0.0.1", "::1", "local"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SshSpec(Strict):
    user: str | None = None
    port: int = Field(default=22, ge=1, le=65535)
    identity_file: str | None = None
    options: list[str] = Field(default_factory=list, description="extra `-o Key=Value` options")


class GpuSpec(Strict):
    count: int = Field(default=1, ge=0)
    model: str | None = None
    memory_gib: float | None = Field(default=None, gt=0, description="per GPU; for unified memory the whole pool")
    unified_memory: bool = False


class PowerSpec(Strict):
    driver: Literal["shelly", "tasmota", "homeassistant", "ipmi", "redfish", "command"]
    address: str | None = None
    credentials: KeySource | None = None
    username: str | None = None
    generation: Literal[1, 2] = 2  # shelly
    channel: int = 0  # shelly relay/switch id
    entity_id: str | None = None  # home-assistant
    system: str | None = None  # redfish system path, discovered when absent
    toggle_after: float | None = None  # plug switches itself back on after N s
    commands: dict[str, str] | None = None  # command driver: state/on/off[/cycle]
    cipher: int | None = Field(default=None, ge=0, le=17)  # ipmi: lanplus cipher suite (`-C`); 3 for BMCs without 17
    verify: bool | str = True  # redfish: TLS verification; false for a self-signed BMC, or a CA bundle path

    @model_validator(mode="after")
    def _needs(self):
        if self.driver != "command" and not self.address:
            raise ValueError(f"power driver {self.driver} needs `address`")
        if self.driver == "command" and not (self.commands and {"state", "on", "off"} <= set(self.commands)):
            raise ValueError("power driver command needs `commands:` with state, on and off")
        if self.driver == "homeassistant" and not self.entity_id:
            raise ValueError("power driver homeassistant needs `entity_id` (e.g. switch.spark_1)")
        return self


class WatchSpec(Strict):
    url: str | list[str] | None = None  # absent: the watchdog watches the deployment launch started there
    reference: str | None = None  # something the watchdog must reach before acting
    restart: str | None = None  # shell command run over ssh to restart the server (watchdog)
    recipe: str | None = None  # re-run with `launch up RECIPE` after a power cycle (watchdog)

    @property
    def urls(self) -> list[str]:
        if self.url is None:
            return []
        return [self.url] if isinstance(self.url, str) else list(self.url)


class WatchdogSpec(Strict):
    """Inventory-wide watchdog settings (`watchdog:`): budgets, brakes and who to alert."""

    max_cycles: int = Field(default=3, ge=0)  # power cycles per node per window
    window: float = Field(default=6 * 3600, gt=0)  # seconds
    delay_max: float = Field(default=30, ge=0)  # random delay before acting, seconds
    max_restarts: int = Field(default=3, ge=0)  # server restarts per node per restart_window, then alert
    restart_window: float = Field(default=6 * 3600, gt=0)  # seconds
    stall: float = Field(default=600, ge=0)  # no /metrics movement with requests running this long = a failure
    pause_file: str | None = None
    alert_command: str | None = None
    alert_webhook: str | None = None


class Host(Strict):
    address: str  # how launch reaches the host: ssh destination (an ~/.ssh/config alias works) and API URL
    cluster_address: str | None = None  # the IP the nodes reach each other on (Ray, NCCL); default: address
    ssh: SshSpec = Field(default_factory=SshSpec)
    docker: str | None = None  # "local", unix:///path, tcp://…, ssh://user@host
    gpus: GpuSpec = Field(default_factory=GpuSpec)
    interface: str | None = None  # NCCL/GLOO/UCX socket interface
    power: PowerSpec | None = None
    watch: WatchSpec | None = None
    hf_cache: str = "~/.cache/huggingface"

    @field_validator("cluster_address")
    @classmethod
    def _an_ip(cls, value: str | None):
        if value is None:
            return value
        import ipaddress

        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise ValueError(f"'{value}' is not an IP address; Ray, NCCL and vLLM's MASTER_ADDR need the "
                             "IP this host has on the link between the nodes (e.g. its ConnectX-7 port's "
                             "address, `ip -br addr` on the host): write that IP, or remove "
                             "cluster_address to use `address`") from None

    @property
    def node_ip(self) -> str:
        """The address the other nodes use for this one."""
        return self.cluster_address or self.address

    @property
    def is_local(self) -> bool:
        return self.address in LOCAL_ADDRESSES

    def docker_url(self, name: str) -> str:
        if self.docker and self.docker != "local":
            return self.docker
        if self.docker == "local" or self.is_local:
            # the daemon the docker CLI would use here: DOCKER_HOST (rootless Docker, Docker Desktop, Colima
            # export it), else the system socket
            import os

            return os.environ.get("DOCKER_HOST", "").strip() or "unix:///var/run/docker.sock"
        user = f"{self.ssh.user}@" if self.ssh.user else ""
        port = f":{self.ssh.port}" if self.ssh.port != 22 else ""
        return f"ssh://{user}{self.address}{port}"


class Inventory(Strict):
    name: str
    description: str = ""
    hosts: dict[str, Host] = Field(min_length=1)
    reference: str | None = None  # the watchdog's reachability reference (gateway)
    watchdog: WatchdogSpec | None = None

    @property
    def gpu_count(self) -> int:
        return sum(h.gpus.count for h in self.hosts.values())
