"""A stand-in for LM Studio's `lms` CLI that drives the LM Studio simulator (launcher/sim/lmstudio.py).

Put on PATH through launcher.sim.shims (`write_shims(bin_dir, ["lms"])`). What it stands for (LM Studio's
CLI docs; ../shared/reference/laptop-engines.md):
- `lms server start [--port N]` returns once the server answers (LM Studio's daemon keeps serving
  after the command exits): here it spawns `launch sim lmstudio --port N` in its own session, with the
  extra simulator flags of LMS_SIM_ARGS (e.g. "--v0-only --max-context 32768"), and records it in
  ~/.lmstudio/sim-server.json. `lms server stop`, `lms server status [--json]`.
- `lms load KEY [--context-length N] [--gpu X] [--identifier ID] [-y]`: loads through the simulator's
  /__lms channel (the real CLI talks to the daemon, not the REST API, so it works on 0.3.x servers
  without /api/v1); the context may be silently reduced, exactly as the REST load is.
- `lms ps --json`: loaded instances with `identifier`, `modelKey`, `contextLength`, `maxContextLength`.
- `lms ls --json`, `lms unload [ID] [--all]`.
Which server: LMS_SIM_URL, else the one `lms server start` recorded, else http://127.0.0.1:1234.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:1234"
START_WAIT_S = 30.0


def state_path() -> Path:
    return Path(os.environ.get("HOME") or Path.home()) / ".lmstudio" / "sim-server.json"


def _state() -> dict:
    try:
        return json.loads(state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def server_url() -> str:
    return os.environ.get("LMS_SIM_URL") or _state().get("url") or DEFAULT_URL


def _client(url: str, read: float = 30.0):
    from launcher import http

    return http.client(base_url=url, retries=0, connect=2.0, read=read)


def _answers(url: str) -> bool:
    import httpx

    try:
        with _client(url, read=5.0) as c:
            return c.get("/v1/models").status_code == 200
    except httpx.HTTPError:
        return False


def _fail(msg: str, code: int = 1) -> int:
    print(f"Error: {msg}", file=sys.stderr)
    return code


def _call(method: str, path: str, body: dict | None = None):
    """(status, JSON) from the simulator; (0, None) when nothing answers."""
    import httpx

    try:
        with _client(server_url()) as c:
            r = c.request(method, path, json=body) if body is not None else c.request(method, path)
            return r.status_code, r.json()
    except (httpx.HTTPError, ValueError):
        return 0, None


def server_start(port: int) -> int:
    url = f"http://127.0.0.1:{port}"
    if _answers(url):
        print(f"Success! Server is now running on port {port}")
        return 0
    log_dir = state_path().parent
    log_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "launcher.cli.main", "sim", "lmstudio", "--port", str(port),
            *shlex.split(os.environ.get("LMS_SIM_ARGS", ""))]
    with open(log_dir / "sim-server.log", "ab") as log:  # never our stdout: the caller waits for its EOF
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return _fail(f"the server exited with code {proc.returncode} (see {log_dir / 'sim-server.log'})")
        if _answers(url):
            state_path().write_text(json.dumps({"url": url, "pid": proc.pid}), encoding="utf-8")
            print(f"Success! Server is now running on port {port}")
            return 0
        time.sleep(0.1)
    proc.terminate()
    return _fail(f"the server did not answer on port {port} within {START_WAIT_S:g} s")


def server_stop() -> int:
    st = _state()
    pid = st.get("pid")
    if not pid:
        print("The server is not running.")
        return 0
    try:
        os.kill(int(pid), signal.SIGTERM)
    except ProcessLookupError:
        pass
    for _ in range(100):  # bounded: 10 s
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    state_path().unlink(missing_ok=True)
    print("Stopped the server.")
    return 0


def server_status(as_json: bool) -> int:
    url = server_url()
    running = _answers(url)
    port = int(url.rsplit(":", 1)[1])
    if as_json:
        print(json.dumps({"running": running, "port": port}))
    else:
        print(f"The server is running on port {port}." if running else "The server is not running.")
    return 0


def load(a) -> int:
    if a.estimate_only:
        print(f"Estimate for {a.key}: not simulated")
        return 0
    body = {"model": a.key, "context_length": a.context_length, "identifier": a.identifier}
    status, res = _call("POST", "/__lms/load", body)
    if status == 0:
        return _fail(f"LM Studio is not running at {server_url()}. Start it with `lms server start`.")
    if status != 200:
        return _fail((res or {}).get("error") or f"HTTP {status}")
    print(f'Loading model "{a.key}"...\nModel loaded successfully.\n'
          f'To use the model in the API/SDK, use the identifier "{res["identifier"]}".')
    return 0


def unload(a) -> int:
    status, res = _call("POST", "/__lms/unload", {"all": a.all, "identifier": a.identifier})
    if status != 200:
        return _fail(f"no model '{a.identifier}' is loaded" if status else "LM Studio is not running")
    print(f"Unloaded {', '.join(res['unloaded']) or 'nothing'}")
    return 0


def listing(path: str, as_json: bool) -> int:
    status, res = _call("GET", path)
    if status != 200:
        return _fail(f"LM Studio is not running at {server_url()}")
    if as_json:
        print(json.dumps(res))
    else:
        for row in res:
            print(row.get("identifier") or row.get("modelKey"))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lms")
    sub = p.add_subparsers(dest="cmd", required=True)
    srv = sub.add_parser("server").add_subparsers(dest="action", required=True)
    start = srv.add_parser("start")
    start.add_argument("--port", type=int, default=1234)
    start.add_argument("--cors", action="store_true")
    srv.add_parser("stop")
    srv.add_parser("status").add_argument("--json", action="store_true")
    ld = sub.add_parser("load")
    ld.add_argument("key")
    ld.add_argument("--context-length", type=int)
    ld.add_argument("--gpu")
    ld.add_argument("--identifier")
    ld.add_argument("--ttl", type=int)
    ld.add_argument("-y", "--yes", action="store_true")
    ld.add_argument("--estimate-only", action="store_true")
    ul = sub.add_parser("unload")
    ul.add_argument("identifier", nargs="?")
    ul.add_argument("--all", action="store_true")
    sub.add_parser("ps").add_argument("--json", action="store_true")
    sub.add_parser("ls").add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if a.cmd == "server":
        return {"start": lambda: server_start(a.port), "stop": server_stop,
                "status": lambda: server_status(a.json)}[a.action]()
    if a.cmd == "load":
        return load(a)
    if a.cmd == "unload":
        return unload(a)
    return listing("/__lms/ps" if a.cmd == "ps" else "/__lms/ls", a.json)


if __name__ == "__main__":
    sys.exit(main())
