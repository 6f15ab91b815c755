"""A fake `ray` CLI for tests and `launch demo` (stands for Ray's `ray start` / `ray status`).

    ray start --block --head --node-ip-address=IP --port=P      the head: blocks until SIGTERM
    ray start --block --address=H:P --node-ip-address=IP        a worker joins the head at H:P
    ray status [--address H:P]                                  Ray's "Resources … 0.0/2.0 GPU" report

Simulated hosts all live on 127.0.0.1, so nodes meet through files, not a GCS port (no port can
clash with a real Ray or Redis on 6379): $LAUNCHER_SIM_RAY_DIR/cluster-<port>/<node>.json, each
holding the pid of a live `ray start`; `ray status` counts the live ones. Knobs:
  LAUNCHER_SIM_RAY_GPUS=N              GPUs each node reports (default 1)
  LAUNCHER_SIM_RAY_FAIL=worker-never-joins   workers block without ever joining (a firewalled
                                       GCS port or a wrong --node-ip-address in real life)
The texts follow Ray 2.x (`ray start` banner, `ray status` autoscaler report, the ConnectionError a
worker prints when no head answers).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ENV_DIR = "LAUNCHER_SIM_RAY_DIR"
ENV_GPUS = "LAUNCHER_SIM_RAY_GPUS"
ENV_FAIL = "LAUNCHER_SIM_RAY_FAIL"
DEFAULT_PORT = 6379
JOIN_WAIT_S = 10.0


def state_dir() -> Path:
    d = os.environ.get(ENV_DIR) or os.path.join(tempfile.gettempdir(), f"launcher-sim-ray-{os.getuid()}")
    return Path(d)


def cluster_dir(port: int) -> Path:
    return state_dir() / f"cluster-{port}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is dead for this purpose
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def live_nodes(port: int) -> list[dict]:
    out = []
    d = cluster_dir(port)
    if not d.is_dir():
        return out
    for f in sorted(d.glob("*.json")):
        try:
            node = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if _alive(int(node.get("pid", 0))):
            out.append(node)
        else:
            f.unlink(missing_ok=True)
    return out


def _opts(argv: list[str]) -> dict[str, str | bool]:
    opts: dict[str, str | bool] = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--"):
            if "=" in a:
                k, v = a[2:].split("=", 1)
                opts[k] = v
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                opts[a[2:]] = argv[i + 1]
                i += 1
            else:
                opts[a[2:]] = True
        i += 1
    return opts


def _block_until_signal(cleanup) -> int:
    stop = threading.Event()

    def handler(signum, frame):  # noqa: ARG001
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    try:
        while not stop.wait(3600):
            pass
    finally:
        cleanup()
    return 0


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def start(argv: list[str]) -> int:
    o = _opts(argv)
    ip = str(o.get("node-ip-address") or "127.0.0.1")
    gpus = float(o.get("num-gpus") or os.environ.get(ENV_GPUS) or 1)
    if o.get("head"):
        port = int(o.get("port") or DEFAULT_PORT)
        role = "head"
    else:
        addr = str(o.get("address") or os.environ.get("RAY_ADDRESS") or "")
        if ":" not in addr:
            _say("ValueError: `ray start` needs --head or --address=HEAD_IP:PORT")
            return 1
        port = int(addr.rsplit(":", 1)[1])
        role = "worker"
    d = cluster_dir(port)
    d.mkdir(parents=True, exist_ok=True)
    _say("Usage stats collection is disabled.")
    _say(f"Local node IP: {ip}")
    if role == "head":
        if any(n["role"] == "head" for n in live_nodes(port)):
            _say(f"ConnectionError: Ray is trying to start at {ip}:{port}, but is already running at "
                 f"{ip}:{port}. Please specify a different port using the `--port` flag of `ray start` "
                 "command.")
            return 1
    else:
        deadline = time.monotonic() + JOIN_WAIT_S
        while not any(n["role"] == "head" for n in live_nodes(port)):
            if time.monotonic() > deadline:
                _say(f"ConnectionError: Unable to connect to GCS (ray head) at {addr}. Check that (1) Ray with "
                     "matching version started successfully at the specified address, (2) this node can reach "
                     "the specified address, and (3) there is no firewall setting preventing access.")
                return 1
            time.sleep(0.1)
        if os.environ.get(ENV_FAIL) == "worker-never-joins":
            # the real symptom: `ray start` on the worker sits there; the head never sees the node
            return _block_until_signal(lambda: None)
    node_file = d / f"{role}-{os.getpid()}.json"
    node_file.write_text(json.dumps({"role": role, "pid": os.getpid(), "ip": ip, "gpus": gpus,
                                     "id": os.urandom(14).hex()}))
    _say("")
    _say("--------------------")
    _say("Ray runtime started.")
    _say("--------------------")
    if role == "head":
        _say("")
        _say("Next steps")
        _say("  To add another node to this Ray cluster, run")
        _say(f"    ray start --address='{ip}:{port}'")
    _say("")
    _say("--block")
    _say("  This command will now block forever until terminated by a signal.")
    _say("  Running subprocesses are monitored and a message will be printed if any of them terminate "
         "unexpectedly. Subprocesses exit with SIGTERM will be treated as graceful, thus NOT reported.")
    return _block_until_signal(lambda: node_file.unlink(missing_ok=True))


def status(argv: list[str]) -> int:
    o = _opts(argv)
    addr = str(o.get("address") or os.environ.get("RAY_ADDRESS") or "")
    if ":" in addr:
        port = int(addr.rsplit(":", 1)[1])
    else:
        clusters = [p for p in state_dir().glob("cluster-*") if p.is_dir()] if state_dir().is_dir() else []
        live = [p for p in clusters if live_nodes(int(p.name.split("-", 1)[1]))]
        port = int(live[0].name.split("-", 1)[1]) if len(live) == 1 else DEFAULT_PORT
    nodes = live_nodes(port)
    if not any(n["role"] == "head" for n in nodes):
        _say("ConnectionError: Could not find any running Ray instance. Please specify the one to connect to "
             "by setting `--address` flag or `RAY_ADDRESS` environment variable.")
        return 1
    gpus = sum(float(n.get("gpus", 0)) for n in nodes)
    cpus = 20.0 * len(nodes)
    _say(f"======== Autoscaler status: {datetime.now().isoformat(sep=' ')} ========")
    _say("Node status")
    _say("-" * 63)
    _say("Active:")
    for n in nodes:
        _say(f" 1 node_{n['id']}")
    _say("Pending:")
    _say(" (no pending nodes)")
    _say("Recent failures:")
    _say(" (no failures)")
    _say("")
    _say("Resources")
    _say("-" * 63)
    _say("Usage:")
    _say(f" 0.0/{cpus:.1f} CPU")
    _say(f" 0.0/{gpus:.1f} GPU")
    _say(f" 0B/{105.2 * len(nodes):.2f}GiB memory")
    _say(f" 0B/{45.1 * len(nodes):.2f}GiB object_store_memory")
    _say("")
    _say("Demands:")
    _say(" (no resource demands)")
    return 0


def stop(argv: list[str]) -> int:  # noqa: ARG001 - `ray stop` ends this host's nodes
    for port_dir in state_dir().glob("cluster-*"):
        for f in port_dir.glob("*.json"):
            try:
                node = json.loads(f.read_text())
                if node.get("ip") and _alive(int(node["pid"])):
                    os.kill(int(node["pid"]), signal.SIGTERM)
            except (OSError, ValueError):
                pass
    _say("Stopped all Ray processes.")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        _say("Usage: ray [start|status|stop] [OPTIONS]  (launcher's Ray simulator)")
        return 0 if args else 2
    cmd, rest = args[0], args[1:]
    if cmd == "start":
        return start(rest)
    if cmd == "status":
        return status(rest)
    if cmd == "stop":
        return stop(rest)
    if cmd == "--version":
        _say("ray, version 2.49.0 (launcher simulator)")
        return 0
    _say(f"Error: No such command '{cmd}'.")
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
