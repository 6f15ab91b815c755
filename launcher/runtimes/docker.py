"""Docker runtime: containers through the docker SDK (local socket, unix://, tcp:// or ssh:// daemon).

A plan Process with a ContainerSpec becomes a labelled container (launcher.recipe / launcher.plan-hash
/ launcher.role, plus launcher.process / launcher.host / launcher.address); deployments are found by
those labels, not remembered. A Process with exec_in runs by `docker exec` inside that process's
container (the Ray head), its output redirected to a log file in the container; exec processes are
also recorded in state.py because execs carry no labels. Secrets go into the container (or exec)
environment at create time: the Docker API has no other way, and they never appear in argv.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable, Iterator

from launcher import state
from launcher.errors import RuntimeFailure
from launcher.runtimes.base import CommandResult, ExitInfo, Handle, Runtime
from launcher.runtimes.common import LineSplitter, check_env, exit_from_status
from launcher.runtimes.docker_api import (Clients, ExecStream, PullProgress, daemon_errors, ensure_image,
                                          is_local_url, make_client, shutdown_response)
from launcher.spec.inventory import LOCAL_ADDRESSES

EXEC_LOG_DIR = "/tmp/launcher-logs"
# $1 log path; then the argv. Records the pid (for stop and `tail --pid`), then becomes the process.
EXEC_WRAP = 'log=$1; shift; mkdir -p "${log%/*}"; echo $$ > "$log.pid"; exec "$@" > "$log" 2>&1'
# $1 log path, $2 line count (+1 = all), $3 non-empty to follow until the process ends
EXEC_TAIL = ('if [ -n "$3" ]; then exec tail -n "$2" -F --pid="$(cat "$1.pid")" "$1" 2>/dev/null; '
             'else exec tail -n "$2" "$1" 2>/dev/null; fi')
EXEC_KILL = 'kill -s "$2" "$(cat "$1.pid")" 2>/dev/null; exit 0'


def device_requests(gpus: str):
    """ContainerSpec.gpus -> docker DeviceRequests: "all", a count ("2"), or "device=0,1"; "none" -> []."""
    from docker.types import DeviceRequest

    g = (gpus or "").strip()
    if g in ("", "none", "0"):
        return []
    if g == "all":
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    if g.startswith("device="):
        return [DeviceRequest(device_ids=g[7:].split(","), capabilities=[["gpu"]])]
    return [DeviceRequest(count=int(g), capabilities=[["gpu"]])]


class DockerRuntime(Runtime):
    name = "docker"

    def __init__(self, *, on_pull: Callable[[PullProgress], None] | None = None, poll_interval: float = 0.2,
                 client_factory: Callable[[str], object] | None = None, sleep: Callable[[float], None] = time.sleep):
        self.on_pull = on_pull
        self.poll_interval = poll_interval
        self.clients = Clients(client_factory or (lambda url: make_client(url, self.ssh_argv_for(url))))
        self._sleep = sleep
        self._ssh_hosts: dict[str, dict] = {}  # ssh:// daemon URL -> its inventory host

    # -- ssh:// daemons ------------------------------------------------------------------------
    def know_hosts(self, plan) -> None:
        """Remember which inventory host each of the plan's ssh:// daemons is, so the ssh that
        reaches it gets that host's ssh user, port, identity file and options."""
        for p in plan.processes:
            if p.docker_url and p.host in plan.hosts:
                self.know_host(p.docker_url, p.host, plan.hosts[p.host])

    def know_host(self, url: str, name: str, host: dict) -> None:
        """Remember the inventory host behind one ssh:// daemon."""
        if url.startswith("ssh://"):
            self._ssh_hosts.setdefault(url, {**host, "name": name})

    def ssh_argv_for(self, url: str) -> list[str] | None:
        """`ssh [options] DEST` for an ssh:// daemon: its inventory host's settings (from know_hosts
        or from the deployment notes of an earlier launch), or None (the URL alone)."""
        if not url.startswith("ssh://"):
            return None
        host = self._ssh_hosts.get(url)
        if host is None:
            from launcher.deploy import docker_ssh_host

            host = docker_ssh_host(url)
        if host is None:
            return None
        from urllib.parse import urlsplit

        from launcher.runtimes.ssh import SshRuntime

        u = urlsplit(url)
        ssh = dict(host.get("ssh") or {})
        if u.username:
            ssh["user"] = u.username
        if u.port:
            ssh["port"] = u.port
        return SshRuntime().ssh_argv({**host, "address": u.hostname or host.get("address"), "ssh": ssh})

    def client(self, url: str | None):
        return self.clients.get(url)

    # -- start ---------------------------------------------------------------------------------
    def start(self, proc, plan, secrets: dict[str, str]) -> Handle:
        if proc.exec_in:
            return self._start_exec(proc, plan, secrets)
        spec = proc.container
        where = f"{plan.recipe}: process {proc.name}"
        if spec is None:
            raise RuntimeFailure(f"process {proc.name} has no container spec", where=where)
        url = proc.docker_url or "local"
        env = {**spec.env, **secrets}
        check_env(env, where)
        client = self.client(url)
        ensure_image(client, url, spec.image, self.on_pull)
        self._clear_name(client, url, spec.name, plan.recipe)
        # the endpoint and served name let `launch status INVENTORY` probe a deployment that another
        # machine started (no notes here): found by these labels on the inventory's daemons
        labels = {**spec.labels, "launcher.recipe": plan.recipe, "launcher.plan-hash": plan.hash,
                  "launcher.role": proc.role, "launcher.process": proc.name, "launcher.host": proc.host,
                  "launcher.address": proc.address, "launcher.endpoint": plan.endpoint,
                  "launcher.served": plan.served_name or ""}
        volumes = {self._host_path(p, proc, plan): {"bind": c, "mode": "rw"} for p, c in spec.volumes.items()}
        kwargs = dict(image=spec.image, name=spec.name, entrypoint=spec.entrypoint or None,
                      command=spec.command, environment=env, labels=labels, detach=True, tty=False,
                      ipc_mode=spec.ipc_mode or None, shm_size=spec.shm_size or None,
                      device_requests=device_requests(spec.gpus), volumes=volumes)
        if spec.network_mode:
            kwargs["network_mode"] = spec.network_mode
        elif spec.ports:
            kwargs["ports"] = dict(spec.ports)
        with daemon_errors(url, f"creating container {spec.name}"):
            container = client.containers.create(**kwargs)
            container.start()
        return Handle(runtime=self.name, recipe=plan.recipe, plan_hash=plan.hash, process=proc.name,
                      role=proc.role, host=proc.host, address=proc.address,
                      ref={"docker_url": url, "container_id": container.id, "container_name": spec.name})

    def _clear_name(self, client, url: str, name: str, recipe: str) -> None:
        """A stopped container of ours under the same name is removed; anything else is an error."""
        import docker.errors

        with daemon_errors(url, f"checking container {name}"):
            try:
                old = client.containers.get(name)
            except docker.errors.NotFound:
                return
            ours = (old.labels or {}).get("launcher.recipe") == recipe
            if ours and old.status != "running":
                old.remove(force=True)
                return
        if ours:
            raise RuntimeFailure(f"container {name} is already running", where=f"docker {url}",
                                 fix=f"`launch down {recipe}` first, or use --replace")
        raise RuntimeFailure(f"a container named {name} exists and was not started by launch",
                             where=f"docker {url}", fix=f"remove or rename it (`docker rm -f {name}`)")

    def _host_path(self, path: str, proc, plan) -> str:
        """Expand ~ on the Docker host: here for a local daemon, the remote $HOME over ssh otherwise."""
        if not path.startswith("~"):
            return path
        if is_local_url(proc.docker_url) or proc.address in LOCAL_ADDRESSES:
            return os.path.expanduser(path)
        host = {"address": proc.address, **(plan.hosts.get(proc.host) or {})}
        home = None
        res = self.run(host, ["sh", "-c", 'echo "$HOME"'], timeout=15)
        if res.code == 0 and res.stdout.strip().startswith("/"):
            home = res.stdout.strip()
        if home is None:
            user = (host.get("ssh") or {}).get("user")
            if not user:
                raise RuntimeFailure(f"cannot expand {path} on {proc.host}: its home directory is unknown",
                                     where=f"{plan.recipe}: process {proc.name}",
                                     fix="set hf_cache to an absolute path in the inventory")
            home = "/root" if user == "root" else f"/home/{user}"
        return home + path[1:]

    def _start_exec(self, proc, plan, secrets) -> Handle:
        where = f"{plan.recipe}: process {proc.name}"
        target = next((p for p in plan.processes if p.name == proc.exec_in and p.container), None)
        if target is None:
            raise RuntimeFailure(f"process {proc.name} runs inside {proc.exec_in}, which has no container",
                                 where=where)
        url = proc.docker_url or target.docker_url or "local"
        env = {**proc.env, **secrets}
        check_env(env, where)
        client = self.client(url)
        container = self._find_container(client, url, plan.recipe, plan.hash, proc.exec_in)
        if container is None or container.status != "running":
            raise RuntimeFailure(f"container {target.container.name} ({proc.exec_in}) is not running",
                                 where=where, fix=f"start {proc.exec_in} first (launch starts processes in plan order)")
        log = f"{EXEC_LOG_DIR}/{state.safe_name(plan.recipe)}-{state.safe_name(proc.name)}.log"
        with daemon_errors(url, f"exec in {container.name}"):
            exec_id = client.api.exec_create(container.id, ["sh", "-c", EXEC_WRAP, "sh", log, *proc.argv],
                                             environment=[f"{k}={v}" for k, v in env.items()],
                                             stdout=False, stderr=False)["Id"]
            client.api.exec_start(exec_id, detach=True)
        handle = Handle(runtime=self.name, recipe=plan.recipe, plan_hash=plan.hash, process=proc.name,
                        role=proc.role, host=proc.host, address=proc.address, log_path=log,
                        ref={"docker_url": url, "container_id": container.id, "container_name": container.name,
                             "exec_id": exec_id, "log": log})
        state.record(handle)
        return handle

    def _find_container(self, client, url, recipe, plan_hash, process):
        with daemon_errors(url, "listing containers"):
            found = client.containers.list(all=True, filters={"label": [
                f"launcher.recipe={recipe}", f"launcher.plan-hash={plan_hash}", f"launcher.process={process}"]})
        return found[0] if found else None

    # -- exit / stop ---------------------------------------------------------------------------
    def exit_info(self, handle: Handle) -> ExitInfo | None:
        import docker.errors

        url, client = handle.ref["docker_url"], self.client(handle.ref["docker_url"])
        if handle.ref.get("exec_id"):
            with daemon_errors(url, f"checking {handle.process}"):
                try:
                    ex = client.api.exec_inspect(handle.ref["exec_id"])
                except docker.errors.NotFound:
                    ex = None
            if ex is not None and ex.get("Running"):
                return None
            info = self._container_exit(client, url, handle)
            if info is not None and (ex is None or info.oom_killed):
                info.reason = f"its container {handle.ref['container_name']}: {info.reason}"
                return info
            if ex is None:
                return ExitInfo(reason="the exec is gone (the Docker daemon restarted?)")
            return exit_from_status(int(ex.get("ExitCode") or 0))
        return self._container_exit(client, url, handle)

    def _container_exit(self, client, url, handle) -> ExitInfo | None:
        import docker.errors

        with daemon_errors(url, f"inspecting {handle.ref['container_name']}"):
            try:
                st = client.api.inspect_container(handle.ref["container_id"])["State"]
            except docker.errors.NotFound:
                return ExitInfo(reason=f"container {handle.ref['container_name']} was removed")
        if st.get("Running") or st.get("Restarting"):
            return None
        code = st.get("ExitCode")
        if st.get("OOMKilled"):
            return ExitInfo(code=code, signal=9 if code == 137 else None, oom_killed=True,
                            reason=f"container OOMKilled (exit {code})")
        if st.get("Status") == "created":
            return ExitInfo(reason="container created but never started")
        info = exit_from_status(int(code or 0))
        info.reason = f"container {info.reason}"
        if st.get("Error"):
            info.reason += f": {st['Error']}"
        return info

    def stop(self, handle: Handle, timeout: float = 15.0, *, remove: bool = True) -> None:
        """Containers: docker stop (TERM, KILL after timeout), then remove unless remove=False.
        Exec processes: TERM to the recorded pid inside the container, KILL after timeout."""
        import docker.errors

        url, client = handle.ref["docker_url"], self.client(handle.ref["docker_url"])
        if handle.ref.get("exec_id"):
            if self.exit_info(handle) is None:
                self._exec_detached(client, url, handle, ["sh", "-c", EXEC_KILL, "sh", handle.ref["log"], "TERM"])
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and self.exit_info(handle) is None:
                    self._sleep(self.poll_interval)
                if self.exit_info(handle) is None:
                    self._exec_detached(client, url, handle, ["sh", "-c", EXEC_KILL, "sh", handle.ref["log"], "KILL"])
            state.forget(handle)
            return
        with daemon_errors(url, f"stopping {handle.ref['container_name']}"):
            try:
                c = client.containers.get(handle.ref["container_id"])
                if c.status in ("running", "restarting", "paused"):
                    c.stop(timeout=max(1, int(timeout)))
                if remove:
                    c.remove(force=True)
            except docker.errors.NotFound:
                pass

    def _exec_detached(self, client, url, handle, cmd) -> None:
        import docker.errors

        with daemon_errors(url, f"exec in {handle.ref['container_name']}"):
            try:
                eid = client.api.exec_create(handle.ref["container_id"], cmd, stdout=False, stderr=False)["Id"]
                client.api.exec_start(eid, detach=True)
            except (docker.errors.NotFound, docker.errors.APIError):
                pass  # the container stopped meanwhile

    # -- logs ----------------------------------------------------------------------------------
    def logs(self, handle: Handle, *, follow: bool = False, tail: int | None = None) -> Iterator[str]:
        lines, _close = self.open_logs(handle, follow=follow, tail=tail)
        return lines

    def open_logs(self, handle: Handle, *, follow: bool = False,
                  tail: int | None = None) -> tuple[Iterator[str], Callable[[], None]]:
        """The log as lines, and a close() another thread may call to end a follow at once (the
        SDK's stream otherwise blocks until the container ends: a healthy server's never does)."""
        holder: dict = {"closed": False, "chunks": None}
        lock = threading.Lock()

        def close() -> None:
            with lock:
                holder["closed"] = True
                chunks = holder["chunks"]
            if chunks is None:
                return
            if isinstance(chunks, ExecStream):
                chunks.close()
            else:  # the SDK's CancellableStream: shut its connection down (works over ssh:// too)
                shutdown_response(getattr(chunks, "_response", None))

        def lines() -> Iterator[str]:
            chunks = self._log_chunks(handle, follow, tail)
            if chunks is None:
                return
            with lock:
                holder["chunks"] = chunks
                closed = holder["closed"]
            if closed:
                close()
                return
            split = LineSplitter()
            it = iter(chunks)
            try:
                for chunk in it:
                    yield from split.feed(chunk)
                yield from split.flush()
            finally:
                try:  # ExecStream: its generator releases the response; the SDK's stream closes itself
                    getattr(it, "close", lambda: None)()
                except Exception:  # noqa: BLE001 - closing a broken stream
                    pass

        return lines(), close

    def _log_chunks(self, handle: Handle, follow: bool, tail: int | None):
        import docker.errors

        url, client = handle.ref["docker_url"], self.client(handle.ref["docker_url"])
        if handle.ref.get("exec_id"):
            cmd = ["sh", "-c", EXEC_TAIL, "sh", handle.ref["log"], "+1" if tail is None else str(tail),
                   "1" if follow else ""]
            with daemon_errors(url, f"reading the log of {handle.process}"):
                try:
                    eid = client.api.exec_create(handle.ref["container_id"], cmd)["Id"]
                except docker.errors.NotFound:
                    return None
                except docker.errors.APIError:
                    return None  # container not running: its exec logs are gone with it
            return ExecStream(client, eid)
        with daemon_errors(url, f"reading the log of {handle.ref['container_name']}"):
            try:
                c = client.containers.get(handle.ref["container_id"])
            except docker.errors.NotFound:
                return None
            return c.logs(stream=True, follow=follow, tail="all" if tail is None else tail,
                          stdout=True, stderr=True)

    # -- run / find ----------------------------------------------------------------------------
    def run(self, host: dict, argv: list[str], *, timeout: float = 10.0) -> CommandResult:
        """A short command on the Docker host itself (nvidia-smi, meminfo): locally, or over ssh."""
        from launcher.runtimes.local import run_local
        from launcher.runtimes.ssh import SshRuntime

        if host.get("address", "local") in LOCAL_ADDRESSES:
            return run_local(argv, timeout=timeout)
        return SshRuntime().run(host, argv, timeout=timeout)

    def check(self, url: str) -> str | None:
        """None when the daemon answers /_ping; else the error text (for preflight lists)."""
        try:
            with daemon_errors(url, "Docker daemon check"):
                self.client(url).ping()
        except RuntimeFailure as exc:
            return exc.render()
        return None

    def has_image(self, url: str, image: str) -> bool:
        import docker.errors

        with daemon_errors(url, f"checking image {image}"):
            try:
                self.client(url).images.get(image)
                return True
            except docker.errors.ImageNotFound:
                return False

    def find(self, recipe: str | None = None, *, docker_urls: list[str] | None = None) -> list[Handle]:
        """Containers labelled by launch on the given daemons (default: the local one and those in
        state records), plus recorded exec processes. Dead ones included: check exit_info()."""
        records = state.load(recipe, runtime=self.name)
        urls = list(dict.fromkeys(docker_urls or ["local", *(h.ref["docker_url"] for h in records)]))
        out: list[Handle] = []
        for url in urls:
            label = [f"launcher.recipe={recipe}"] if recipe else ["launcher.recipe"]
            try:
                with daemon_errors(url, "listing containers"):
                    found = self.client(url).containers.list(all=True, filters={"label": label})
            except RuntimeFailure:
                if docker_urls:
                    raise
                continue
            for c in found:
                lb = c.labels or {}
                out.append(Handle(runtime=self.name, recipe=lb.get("launcher.recipe", ""),
                                  plan_hash=lb.get("launcher.plan-hash", ""),
                                  process=lb.get("launcher.process", c.name), role=lb.get("launcher.role", ""),
                                  host=lb.get("launcher.host", ""), address=lb.get("launcher.address", ""),
                                  ref={"docker_url": url, "container_id": c.id, "container_name": c.name,
                                       **{k: lb[f"launcher.{k}"] for k in ("endpoint", "served")
                                          if lb.get(f"launcher.{k}")}}))
        out += [h for h in records if h.ref.get("exec_id") and (not docker_urls or h.ref["docker_url"] in urls)]
        return out
