"""What a host has: GPUs and memory, free ports, `vllm` on PATH, images, weights in the HF cache.

Local hosts are probed in-process (NVML through pynvml, a bind test for ports); remote hosts with
ONE short shell script over the runtime's `run` (nvidia-smi CSV, /proc/meminfo, `ss -ltnH`,
`command -v vllm`, the HF cache dirs), under a timeout. Unified-memory GPUs (DGX Spark / GB10)
report no memory through NVML (NOT_SUPPORTED) or nvidia-smi (`[N/A]`, `Not Supported`); their
memory comes from MemAvailable in /proc/meminfo. Nothing here raises for a host's problems: every
problem lands in HostFacts.errors / .warnings with a fix, so preflight can list them all at once.
"""
from __future__ import annotations

import csv
import errno
import os
import shutil
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from launcher.auth import redact

NVIDIA_SMI_QUERY = ["nvidia-smi", "--query-gpu=index,name,memory.total,memory.used,memory.free",
                    "--format=csv,noheader,nounits"]
_NA = {"[n/a]", "n/a", "not supported", "[not supported]", "[unknown error]", ""}
DRIVER_FIX = "install the NVIDIA driver on that host (`nvidia-smi` must list the GPUs), or pick another host"


@dataclass
class Gpu:
    index: int
    name: str
    memory_total_mib: int | None
    memory_free_mib: int | None
    memory_used_mib: int | None = None
    unified: bool = False  # memory shared with the CPU (GB10): figures come from /proc/meminfo


@dataclass
class Problem:
    what: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.what} (fix: {self.fix})" if self.fix else self.what


@dataclass
class HostFacts:
    host: str
    reachable: bool = True
    gpus: list[Gpu] = field(default_factory=list)
    mem_total_mib: int | None = None
    mem_available_mib: int | None = None
    busy_ports: list[int] = field(default_factory=list)
    vllm_path: str | None = None
    images: dict[str, bool] = field(default_factory=dict)
    weights: dict[str, bool] = field(default_factory=dict)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def unified(self) -> bool:
        return any(g.unified for g in self.gpus)

    def to_json(self) -> dict:
        return asdict(self)


# -- parsers (pure) ------------------------------------------------------------------------------
def _num(text: str) -> int | None:
    t = text.strip()
    if t.lower() in _NA:
        return None
    try:
        return int(float(t))
    except ValueError:
        return None


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """`nvidia-smi --query-gpu=index,name,memory.total,memory.used,memory.free --format=csv,noheader,nounits`."""
    gpus = []
    for row in csv.reader(text.splitlines(), skipinitialspace=True):
        if len(row) < 5 or not row[0].strip().isdigit():
            continue
        total, used, free = (_num(v) for v in row[2:5])
        gpus.append(Gpu(index=int(row[0]), name=row[1].strip(), memory_total_mib=total, memory_used_mib=used,
                        memory_free_mib=free, unified=total is None or free is None))
    return gpus


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo -> {key: kB}."""
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0])
    return out


def parse_ss_ports(text: str) -> set[int]:
    """Listening TCP ports from `ss -ltnH` (local address is the 4th column)."""
    ports = set()
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 4 and ":" in cols[3]:
            port = cols[3].rsplit(":", 1)[1]
            if port.isdigit():
                ports.add(int(port))
    return ports


def parse_proc_net_tcp(text: str) -> set[int]:
    """Listening ports from /proc/net/tcp{,6} (state 0A = LISTEN)."""
    ports = set()
    for line in text.splitlines():
        cols = line.split()
        if len(cols) > 3 and cols[3] == "0A" and ":" in cols[1]:
            ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def hf_model_dir(model: str, hf_cache: str = "~/.cache/huggingface") -> str:
    """Where the HF hub caches a model: <hf_cache>/hub/models--ORG--NAME (~ unexpanded)."""
    return f"{hf_cache.rstrip('/')}/hub/models--{model.replace('/', '--')}"


def _apply_unified(facts: HostFacts) -> None:
    """GPUs without memory figures share system memory: use MemTotal / MemAvailable."""
    for g in facts.gpus:
        if g.unified:
            g.memory_total_mib = g.memory_total_mib or facts.mem_total_mib
            g.memory_free_mib = facts.mem_available_mib
            if g.memory_total_mib is not None and g.memory_free_mib is not None:
                g.memory_used_mib = g.memory_total_mib - g.memory_free_mib


def _set_meminfo(facts: HostFacts, text: str) -> None:
    info = parse_meminfo(text)
    if "MemTotal" in info:
        facts.mem_total_mib = info["MemTotal"] // 1024
    if "MemAvailable" in info:
        facts.mem_available_mib = info["MemAvailable"] // 1024


def _port_problems(facts: HostFacts, ports: Iterable[int], busy: set[int]) -> None:
    for port in ports:
        if port in busy:
            facts.busy_ports.append(port)
            facts.errors.append(Problem(f"port {port} on {facts.host} is already in use",
                                        f"stop what listens there (`ss -ltnp 'sport = :{port}'`), or pick "
                                        f"another port (`--port` / server.port)"))


def _weights(facts: HostFacts, found: dict[str, bool]) -> None:
    for model, present in found.items():
        facts.weights[model] = present
        if not present:
            facts.warnings.append(Problem(f"{model} is not in the Hugging Face cache on {facts.host}",
                                          "the first start downloads it (can take long); "
                                          f"pre-fetch with `huggingface-cli download {model}`"))


def _vllm(facts: HostFacts, path: str | None) -> None:
    facts.vllm_path = path or None
    if not path:
        facts.errors.append(Problem(f"`vllm` is not on PATH on {facts.host}",
                                    "install vLLM there (`pip install vllm` in the login environment), or "
                                    "use runtime: docker"))


# -- local ---------------------------------------------------------------------------------------
class NoGpu(Exception):
    pass


def nvml_gpus(nvml=None) -> list[Gpu]:
    """GPUs through NVML. Raises NoGpu when there is no driver/library/GPU."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise NoGpu(f"pynvml is not installed ({exc})") from None
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise NoGpu(f"NVML: {exc}") from None
    try:
        gpus = []
        for i in range(nvml.nvmlDeviceGetCount()):
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            name = nvml.nvmlDeviceGetName(h)
            name = name.decode() if isinstance(name, bytes) else str(name)
            try:
                mem = nvml.nvmlDeviceGetMemoryInfo(h)
                gpus.append(Gpu(i, name, mem.total // 2**20, mem.free // 2**20, mem.used // 2**20))
            except nvml.NVMLError as exc:
                if getattr(exc, "value", None) != nvml.NVML_ERROR_NOT_SUPPORTED:
                    raise
                gpus.append(Gpu(i, name, None, None, None, unified=True))
        return gpus
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass


def local_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError as exc:
            return exc.errno != errno.EADDRINUSE
    return True


def probe_local(name: str = "local", *, ports: Iterable[int] = (), need_gpu: bool = True,
                need_vllm: bool = False, models: Iterable[str] = (), hf_cache: str = "~/.cache/huggingface",
                nvml=None, meminfo_path: str = "/proc/meminfo") -> HostFacts:
    facts = HostFacts(host=name)
    try:
        _set_meminfo(facts, Path(meminfo_path).read_text())
    except OSError:
        pass
    if need_gpu:
        try:
            facts.gpus = nvml_gpus(nvml)
        except NoGpu as exc:
            facts.errors.append(Problem(f"no NVIDIA GPU/driver on {name} ({exc})", DRIVER_FIX))
        else:
            if not facts.gpus:
                facts.errors.append(Problem(f"no NVIDIA GPU/driver on {name} (NVML lists no GPU)", DRIVER_FIX))
        _apply_unified(facts)
    _port_problems(facts, ports, {p for p in ports if not local_port_free(p)})
    if need_vllm:
        _vllm(facts, shutil.which("vllm"))
    _weights(facts, {m: os.path.isdir(os.path.expanduser(hf_model_dir(m, hf_cache))) for m in models})
    return facts


# -- remote --------------------------------------------------------------------------------------
# $1: "1" to query GPUs; then the HF model dirs to test (with a leading ~ expanded here).
REMOTE_SCRIPT = r"""
g=$1; shift
if [ "$g" = 1 ]; then
  echo "@@smi"
  if command -v timeout >/dev/null 2>&1; then T="timeout 20"; else T=""; fi
  $T nvidia-smi --query-gpu=index,name,memory.total,memory.used,memory.free --format=csv,noheader,nounits 2>&1
  echo "@@smi-rc $?"
fi
echo "@@meminfo"; cat /proc/meminfo 2>/dev/null
if command -v ss >/dev/null 2>&1; then echo "@@ss"; ss -ltnH 2>/dev/null
else echo "@@tcp"; cat /proc/net/tcp /proc/net/tcp6 2>/dev/null; fi
echo "@@vllm"; command -v vllm 2>/dev/null
for d in "$@"; do case $d in "~/"*) d="$HOME/${d#\~/}";; esac; [ -d "$d" ] && echo "@@has $d"; done
echo "@@end"
"""


def _sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    cur = None
    for line in text.splitlines():
        if line.startswith("@@"):
            key, _, arg = line[2:].partition(" ")
            if key in ("smi-rc", "has"):
                out.setdefault(key, []).append(arg)
                continue
            cur = key
            out.setdefault(cur, [])
        elif cur:
            out[cur].append(line)
    return out


def parse_remote(name: str, text: str, *, ports: Iterable[int] = (), need_gpu: bool = True,
                 need_vllm: bool = False, models: dict[str, str] | None = None) -> HostFacts:
    """HostFacts from REMOTE_SCRIPT's output. models: {model: its HF dir as passed to the script}."""
    facts = HostFacts(host=name)
    sec = _sections(text)
    _set_meminfo(facts, "\n".join(sec.get("meminfo", [])))
    if need_gpu:
        smi = "\n".join(sec.get("smi", []))
        rc = (sec.get("smi-rc") or ["?"])[0]
        facts.gpus = parse_nvidia_smi(smi) if rc == "0" else []
        if not facts.gpus:
            why = "nvidia-smi not found" if rc == "127" else ("nvidia-smi timed out" if rc == "124" else
                                                              redact(smi.strip().splitlines()[-1]) if smi.strip()
                                                              else "nvidia-smi listed no GPU")
            facts.errors.append(Problem(f"no NVIDIA GPU/driver on {name} ({why})", DRIVER_FIX))
        _apply_unified(facts)
    busy = parse_ss_ports("\n".join(sec.get("ss", []))) | parse_proc_net_tcp("\n".join(sec.get("tcp", [])))
    _port_problems(facts, ports, busy)
    if need_vllm:
        _vllm(facts, next((ln.strip() for ln in sec.get("vllm", []) if ln.strip()), None))
    have = set(sec.get("has", []))
    _weights(facts, {m: any(h.endswith(d.split("~", 1)[-1]) for h in have) for m, d in (models or {}).items()})
    return facts


def probe_remote(name: str, host: dict, run: Callable, *, ports: Iterable[int] = (), need_gpu: bool = True,
                 need_vllm: bool = False, models: Iterable[str] = (), hf_cache: str | None = None,
                 timeout: float = 30) -> HostFacts:
    """Probe over `run(host, argv, timeout=…)` (a Runtime's run). One round trip."""
    ports = list(ports)
    dirs = {m: hf_model_dir(m, hf_cache or host.get("hf_cache") or "~/.cache/huggingface") for m in models}
    res = run(host, ["sh", "-c", REMOTE_SCRIPT, "sh", "1" if need_gpu else "0", *dirs.values()], timeout=timeout)
    if "@@end" not in res.stdout:
        err = redact(res.stderr.strip().splitlines()[-1]) if res.stderr.strip() else f"exit {res.code}"
        facts = HostFacts(host=name, reachable=res.code != 255 and res.code != 124)
        what = (f"cannot reach {name} over ssh ({err})" if not facts.reachable
                else f"probing {name} failed ({err})")
        facts.errors.append(Problem(what, f"check that `ssh {host.get('address')}` logs in without a prompt "
                                          "(BatchMode) and the host is up"))
        return facts
    return parse_remote(name, res.stdout, ports=ports, need_gpu=need_gpu, need_vllm=need_vllm, models=dirs)


def probe_docker(facts: HostFacts, url: str, images: Iterable[str], runtime=None) -> HostFacts:
    """Add the Docker daemon's answer and image presence (missing image: a warning, it gets pulled)."""
    if runtime is None:
        from launcher.runtimes import get

        runtime = get("docker")
    err = runtime.check(url)
    if err:
        facts.errors.append(Problem(f"the Docker daemon at {url} does not answer ({err.splitlines()[0]})",
                                    "start Docker there, or fix the inventory's `docker:` URL"))
        return facts
    for image in images:
        present = runtime.has_image(url, image)
        facts.images[image] = present
        if not present:
            facts.warnings.append(Problem(f"image {image} is not on {facts.host}",
                                          "launch pulls it first (large download); or `docker pull` it now"))
    return facts


def probe_host(name: str, host: dict, *, runtime: str, ports: Iterable[int] = (), models: Iterable[str] = (),
               image: str | None = None, docker_url: str | None = None, need_gpu: bool = True,
               timeout: float = 30, run: Callable | None = None) -> HostFacts:
    """Everything preflight needs about one inventory host (host: the inventory dict)."""
    from launcher.spec.inventory import LOCAL_ADDRESSES

    need_vllm = runtime in ("local", "ssh")
    hf = host.get("hf_cache") or "~/.cache/huggingface"
    if host.get("address", "local") in LOCAL_ADDRESSES and run is None:
        facts = probe_local(name, ports=ports, need_gpu=need_gpu, need_vllm=need_vllm, models=models, hf_cache=hf)
    else:
        if run is None:
            from launcher.runtimes import get

            run = get("ssh").run
        facts = probe_remote(name, host, run, ports=ports, need_gpu=need_gpu, need_vllm=need_vllm,
                             models=models, hf_cache=hf, timeout=timeout)
    if runtime == "docker" and facts.reachable and docker_url:
        probe_docker(facts, docker_url, [image] if image else [])
    return facts
