"""A tiny Azure-OpenAI-shaped gateway in front of the vLLM simulator (test double, stdlib only).

It stands for Azure OpenAI's wire contract as its public REST reference describes it: chat at
`/openai/deployments/{deployment}/chat/completions?api-version=…`, the model list at
`/openai/models?api-version=…`, the key in an `api-key` header (401 without it), 404
DeploymentNotFound for an unknown deployment, 400 without `api-version`. Requests are forwarded to
the simulator's /v1 routes with its Bearer key, streams included.
"""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class AzureGateway:
    def __init__(self, upstream: str, upstream_key: str, *, key: str, deployment: str, model: str):
        self.upstream, self.upstream_key = upstream.rstrip("/"), upstream_key
        self.key, self.deployment, self.model = key, deployment, model
        self.paths: list[str] = []
        gw = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _forward(self, method: str, path: str, body: bytes | None) -> None:
                req = urllib.request.Request(gw.upstream + path, data=body, method=method, headers={
                    "Authorization": f"Bearer {gw.upstream_key}", "Content-Type": "application/json"})
                try:
                    resp = urllib.request.urlopen(req, timeout=30)
                except urllib.error.HTTPError as exc:
                    resp = exc
                self.send_response(resp.status if hasattr(resp, "status") else resp.code)
                ctype = resp.headers.get("Content-Type", "application/json")
                self.send_header("Content-Type", ctype)
                if "event-stream" in ctype:
                    self.send_header("Connection", "close")
                    self.end_headers()
                    while chunk := resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536):
                        self.wfile.write(chunk)
                        self.wfile.flush()
                    self.close_connection = True
                    return
                data = resp.read()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                url = urlsplit(self.path)
                gw.paths.append(self.path)
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                if not parse_qs(url.query).get("api-version"):
                    return self._send(400, {"error": {"code": "MissingApiVersionParameter",
                                                      "message": "The api-version query parameter (?api-version=) "
                                                                 "is required for all requests."}})
                if self.headers.get("api-key") != gw.key:
                    return self._send(401, {"error": {"code": "401", "message": "Access denied due to invalid "
                                                      "subscription key or wrong API endpoint."}})
                if method == "GET" and url.path == "/openai/models":
                    return self._send(200, {"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]})
                prefix = "/openai/deployments/"
                if method == "POST" and url.path.startswith(prefix) and url.path.endswith("/chat/completions"):
                    dep = url.path[len(prefix):-len("/chat/completions")]
                    if dep != gw.deployment:
                        return self._send(404, {"error": {"code": "DeploymentNotFound", "message":
                                                          "The API deployment for this resource does not exist."}})
                    payload = json.loads(body or b"{}")
                    payload["model"] = gw.model
                    return self._forward("POST", "/v1/chat/completions", json.dumps(payload).encode())
                return self._send(404, {"error": {"code": "404", "message": "Resource not found"}})

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.5},
                                         daemon=True)

    def start(self) -> "AzureGateway":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
