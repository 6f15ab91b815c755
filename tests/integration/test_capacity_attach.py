"""Attach recipes (engine: openai): the KV pool of a vLLM endpoint is read from its /metrics, so the
sessions sharing it divide it; an endpoint without it gets a clear warning when several sessions share
it (only the per-request length is known)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from launcher.bringup import module_for
from launcher.capacity import derive_limits
from launcher.plan import build_for
from launcher.sim import SimConfig, VllmSim

KEY = "attach-key-0123456789"
SERVED = "nvidia/nemotron-3-super"


def _recipe(tmp_path, base_url: str, sessions: int):
    path = tmp_path / "attach.yaml"
    path.write_text(f"name: attach\nengine: openai\nmodel: {SERVED}\nopenai:\n  base_url: {base_url}\n"
                    f"api_key:\n  env: ATTACH_KEY\nagent:\n  context: auto\n  sessions: {sessions}\n")
    return build_for(str(path))


@pytest.fixture
def sim():
    s = VllmSim(SimConfig(api_key=KEY, quiet=True, kv_tokens=300000, max_model_len=131072)).start()
    yield s
    s.stop()


class Warnings:
    def __init__(self):
        self.lines: list[str] = []

    def warn(self, text: str) -> None:
        self.lines.append(text)

    def stage(self, text: str) -> None:
        pass


def test_attached_vllm_kv_pool_is_divided_between_sessions(sim, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTACH_KEY", KEY)
    rl, plan = _recipe(tmp_path, sim.url + "/v1", sessions=4)
    w = Warnings()
    dep = module_for("openai").up(plan, rl.spec, progress=w)
    assert dep.capacity.kv_tokens == 300000 and dep.capacity.max_model_len == 131072
    assert "/metrics" in dep.capacity.source
    assert w.lines == []
    limits = derive_limits(dep.capacity, sessions=4, requested="auto")
    # 4 sessions share 300,000 tokens: 75,000 each, not the 131,072 one request may have
    assert limits.context <= 300000 // 4
    assert limits.context > 0.9 * (300000 // 4)
    assert "KV 300,000 / 4 sessions" in limits.reasoning


class _PlainGateway:
    """An OpenAI-compatible endpoint with a models list and no vLLM /metrics (a gateway)."""

    def __init__(self):
        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path == "/v1/models":
                    body = json.dumps({"object": "list", "data": [
                        {"id": SERVED, "object": "model", "max_model_len": 131072}]}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                else:
                    body = b'{"error": "not found"}'
                    self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_attached_endpoint_without_kv_warns_when_sessions_share_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTACH_KEY", KEY)
    gw = _PlainGateway()
    try:
        rl, plan = _recipe(tmp_path, gw.url + "/v1", sessions=4)
        w = Warnings()
        dep = module_for("openai").up(plan, rl.spec, progress=w)
        assert dep.capacity.kv_tokens is None and dep.capacity.max_model_len == 131072
        assert len(w.lines) == 1 and "4 sessions" in w.lines[0] and "per-request length 131,072" in w.lines[0]
        # one session: nothing to divide, nothing to warn about
        rl, plan = _recipe(tmp_path, gw.url + "/v1", sessions=1)
        w = Warnings()
        module_for("openai").up(plan, rl.spec, progress=w)
        assert w.lines == []
    finally:
        gw.stop()
