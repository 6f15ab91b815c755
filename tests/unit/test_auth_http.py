"""API key sources, redaction, and the HTTP client's retry policy (no real sleeps)."""
from __future__ import annotations

import httpx
import pytest

from launcher import auth
from launcher.errors import SecretError
from launcher.http import backoff_delay, client, retry_after
from launcher.spec.keysource import KeySource


def test_key_from_env_file_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", "k-env-123456")
    assert auth.resolve(KeySource(env="MY_KEY")) == "k-env-123456"
    f = tmp_path / "key"
    f.write_text("k-file-123456\n")
    assert auth.resolve(KeySource(file=str(f))) == "k-file-123456"
    assert auth.resolve(KeySource(command="printf '  k-cmd-123456\\n'")) == "k-cmd-123456"
    # every resolved value is masked in anything launcher prints
    assert auth.redact("sent k-env-123456 and k-file-123456") == "sent [set] and [set]"


def test_redaction_masks_every_occurrence_and_the_longest_secret_first():
    auth.register_secret("rk-0123456789")
    auth.register_secret("rk-0123456789-TAIL-abc")  # a longer key that starts with the shorter one
    assert auth.redact("a rk-0123456789 b rk-0123456789") == "a [set] b [set]"
    # masking the short one first would leave "-TAIL-abc" of the long key in the text
    assert auth.redact("key=rk-0123456789-TAIL-abc;") == "key=[set];"
    auth.register_secret("abc")  # too short to mask safely: it would blank out ordinary words
    assert auth.redact("abc") == "abc"


def test_key_source_errors_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_KEY", raising=False)
    with pytest.raises(SecretError, match="NOPE_KEY is not set") as e:
        auth.resolve(KeySource(env="NOPE_KEY"))
    assert "export NOPE_KEY" in e.value.fix
    with pytest.raises(SecretError, match="cannot read the API key file"):
        auth.resolve(KeySource(file=str(tmp_path / "missing")))
    with pytest.raises(SecretError, match="exit 7"):
        auth.resolve(KeySource(command="sh -c 'exit 7'"))
    with pytest.raises(SecretError, match="did not finish within 0.2 s"):
        auth.resolve(KeySource(command="sleep 5", timeout=0.2))
    with pytest.raises(SecretError, match="printed nothing"):
        auth.resolve(KeySource(command="true"))
    # a failing key command's last stderr line is quoted, with any key launcher knows masked
    auth.register_secret("sk-known-7f3e9a")
    with pytest.raises(SecretError) as e:
        auth.resolve(KeySource(command="sh -c 'echo token sk-known-7f3e9a expired >&2; exit 4'"))
    assert "token [set] expired" in e.value.what and "sk-known-7f3e9a" not in e.value.render()


def test_key_source_needs_exactly_one_kind():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        KeySource(env="A", file="b")
    with pytest.raises(ValidationError):
        KeySource()


def test_backoff_is_exponential_with_full_jitter():
    assert backoff_delay(0, 0.5, rng=lambda: 1.0) == 0.5
    assert backoff_delay(3, 0.5, rng=lambda: 1.0) == 4.0
    assert backoff_delay(3, 0.5, rng=lambda: 0.25) == 1.0
    assert backoff_delay(20, 0.5, cap=30, rng=lambda: 1.0) == 30


def test_retry_after_seconds_and_http_date():
    assert retry_after("7") == 7.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after("garbage") is None and retry_after(None) is None


def _serve(statuses: list[tuple[int, dict]]):
    """A tiny real HTTP server on 127.0.0.1 answering the given statuses in order."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            status, headers = statuses[min(len(seen), len(statuses) - 1)]
            seen.append(self.path)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return srv, seen


def _close(srv) -> None:
    srv.shutdown()
    srv.server_close()


def test_client_retries_503_honouring_retry_after_and_logs_each_retry(caplog):
    srv, seen = _serve([(503, {"Retry-After": "3"}), (429, {}), (200, {})])
    slept = []
    try:
        with caplog.at_level("INFO", logger="launcher.http"):
            with client(sleep=slept.append, rng=lambda: 0.5) as c:
                r = c.get(f"http://127.0.0.1:{srv.server_address[1]}/health")
    finally:
        _close(srv)
    assert r.status_code == 200 and len(seen) == 3
    assert slept == [3.0, 0.5]  # Retry-After 3 s, then jittered backoff 0.5 * 2**1 * 0.5
    assert sum("retry" in rec.message for rec in caplog.records) == 2


def test_client_gives_up_after_the_retry_budget():
    srv, seen = _serve([(503, {})])
    try:
        with client(retries=2, sleep=lambda s: None) as c:
            r = c.get(f"http://127.0.0.1:{srv.server_address[1]}/")
    finally:
        _close(srv)
    assert r.status_code == 503 and len(seen) == 3


def test_connection_refused_is_retried_then_raised():
    from conftest import free_port

    slept = []
    with client(retries=3, sleep=slept.append, rng=lambda: 1.0) as c:
        with pytest.raises(httpx.ConnectError):
            c.get(f"http://127.0.0.1:{free_port()}/")
    assert slept == [0.5, 1.0, 2.0]
