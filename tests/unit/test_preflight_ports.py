"""Preflight's local port check answers what matters: would the server (uvicorn binds with
SO_REUSEADDR, as vLLM does) fail to bind? A port left in TIME_WAIT by a closed connection is free
for it; a listening socket is not."""
from __future__ import annotations

import socket

from launcher.preflight import _port_busy_local


def _time_wait_port() -> int:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = srv.accept()
    conn.close()  # the server side closes first: its port goes to TIME_WAIT
    client.close()
    srv.close()
    return port


def test_time_wait_port_is_free_for_a_server_but_a_listener_is_not():
    port = _time_wait_port()
    plain = socket.socket()
    try:
        plain.bind(("127.0.0.1", port))
        in_time_wait = False
    except OSError:
        in_time_wait = True  # what a check without SO_REUSEADDR would wrongly call busy
    finally:
        plain.close()
    assert in_time_wait, "the port did not enter TIME_WAIT; the test proves nothing"
    assert _port_busy_local(port) is False
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    try:
        assert _port_busy_local(port) is True
    finally:
        listener.close()
