"""The real llama.cpp llama-server for tests: a tiny random-weight model on a random 127.0.0.1 port.

    from llama_server import LlamaServer, llama_server_binary, tiny_model

    binary = llama_server_binary()              # require(): fails under scripts/test, skips elsewhere
    model = tiny_model(tmp_path_factory)        # written once per session (cached on disk too)
    with LlamaServer(binary, model, api_key="k").start() as srv:
        httpx.get(srv.url + "/health")          # srv.base_url ends at /v1; srv.alias is the served id

The server gets `--jinja` (tool calls through the chat template) and the key through the
environment (LLAMA_API_KEY), never argv. stop() kills it (and its process group); the context
manager and the fixtures' finalizers always call it.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import free_port, require

DEFAULT_BINARY = (Path(os.environ.get("LAUNCHER_CI_CACHE", Path.home() / ".cache" / "launcher-ci"))
                  / f"llama-server-{os.environ.get('LLAMA_CPP_PYTHON_VERSION', '0.3.36')}" / "bin" / "llama-server")
ALIAS = "tiny-qwen2"


def llama_server_binary() -> str:
    """Path of the llama-server binary (env LAUNCHER_TEST_LLAMA_SERVER, else the CI cache)."""
    path = os.environ.get("LAUNCHER_TEST_LLAMA_SERVER") or str(DEFAULT_BINARY)
    return require("llama-server", path, "scripts/build_llama_server.sh builds it from the llama-cpp-python sdist")


def tiny_model(tmp_path_factory=None, *, binary: str | None = None, seed: int = 0) -> Path:
    """The tiny GGUF for this llama-server build, written once and cached next to the build.

    Cached as <cache>/tiny-models/tiny-qwen2-<hash>.gguf (the hash covers the vocab file, the template
    and the writer), so a session pays the ~3 s write once per machine."""
    from fixtures.tiny_gguf import TEMPLATE, __file__ as writer_file, vocab_path, write_tiny_gguf

    vocab = vocab_path(binary or os.environ.get("LAUNCHER_TEST_LLAMA_SERVER") or DEFAULT_BINARY)
    require("the qwen2 vocab GGUF", str(vocab), "scripts/build_llama_server.sh copies it next to llama-server")
    h = hashlib.sha256()
    for part in (vocab.stat().st_size, vocab.stat().st_mtime_ns, TEMPLATE.read_bytes(),
                 Path(writer_file).read_bytes(), seed):
        h.update(str(part).encode() if not isinstance(part, bytes) else part)
    cache = vocab.parent / "tiny-models"
    target = cache / f"tiny-qwen2-{h.hexdigest()[:12]}.gguf"
    if target.exists():
        return target
    tmp = (Path(tmp_path_factory.mktemp("gguf")) if tmp_path_factory else cache) / f"{target.name}.{os.getpid()}.part"
    write_tiny_gguf(tmp, vocab=vocab, seed=seed)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)  # atomic; another session writing the same file is harmless
    except OSError:
        return tmp  # cache not writable (or another filesystem): use the temp copy
    return target


class LlamaServer:
    """One llama-server process. start() returns once /health says ok (or raises with the log tail)."""

    def __init__(self, binary: str, model: str | os.PathLike, *, api_key: str | None = None, ctx: int = 8192,
                 parallel: int = 2, threads: int = 1, alias: str = ALIAS, extra_args: list[str] | None = None,
                 log_path: str | os.PathLike | None = None, port: int | None = None):
        self.binary, self.model, self.api_key = binary, str(model), api_key
        self.port = port or free_port()
        self.alias = alias
        self.argv = [binary, "-m", self.model, "--host", "127.0.0.1", "--port", str(self.port),
                     "-c", str(ctx), "-np", str(parallel), "-t", str(threads), "-a", alias, "--jinja",
                     *(extra_args or [])]
        self.log_path = Path(log_path) if log_path else Path(self.model).with_suffix(f".{self.port}.log")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def start(self, timeout: float = 60) -> "LlamaServer":
        import httpx

        env = dict(os.environ)
        env.pop("LLAMA_API_KEY", None)
        if self.api_key:
            env["LLAMA_API_KEY"] = self.api_key  # the environment, never argv
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"llama-server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2, trust_env=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama-server not healthy within {timeout:g} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def __enter__(self) -> "LlamaServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
