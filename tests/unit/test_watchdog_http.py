"""The probes' keep-alive connection (launcher.http.KeepAlive) and the lazy /metrics parse.

The servers here are tiny asyncio HTTP/1.1 servers on 127.0.0.1 that stand for uvicorn: Content-Length
answers, a chunked one, an idle connection closed by the server (uvicorn closes after 5 s), and one
that never answers (a hung engine)."""
from __future__ import annotations

import asyncio

from launcher.http import KeepAlive
from launcher.watchdog.probes import Prober, Target, heartbeat_counters, parse_metrics
from tests.loopback import LoopbackServer

METRICS = b"""# HELP vllm:num_requests_running x
vllm:num_requests_running{engine="0",model_name="m"} 2.0
vllm:num_requests_running{engine="1",model_name="m"} 1.0
vllm:generation_tokens_total{engine="0",model_name="m"} 1234.0
vllm:generation_tokens_created{engine="0",model_name="m"} 99.0
vllm:request_prompt_tokens_bucket{le="1.0",model_name="m"} 7.0
vllm:prompt_tokens_total{model_name="m"} 5e3
"""


def test_heartbeat_counters_match_the_full_parse():
    gen, prompt, running = heartbeat_counters(METRICS)
    full = parse_metrics(METRICS.decode())
    assert (gen, prompt, running) == (1234.0, 5000.0, 3.0)
    assert gen == full["vllm:generation_tokens_total"] and running == full["vllm:num_requests_running"]
    # the first line may be a sample too (no leading comment)
    assert heartbeat_counters(b"vllm:num_requests_running 4\n") == (0.0, 0.0, 4.0)


class Server(LoopbackServer):
    """Counts connections; `mode` decides how each request is answered."""

    def __init__(self, mode="keep"):
        self.mode, self.connections, self.requests = mode, 0, []

    async def handle(self, reader, writer):
        self.connections += 1
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                headers = {}
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    k, _, v = h.decode().partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                self.requests.append((line.split()[0].decode(), line.split()[1].decode(), headers, body))
                if self.mode == "hang":
                    await asyncio.sleep(30)
                    return
                if self.mode == "chunked":
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
                if self.mode == "close-idle":  # the server drops the idle connection (uvicorn's keep-alive)
                    writer.close()
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def test_one_connection_reused_across_requests_with_headers():
    async def go():
        async with Server() as s:
            c = KeepAlive(s.url, headers={"Authorization": "Bearer k"})
            answers = [await c.request("GET", "/health") for _ in range(5)]
            post = await c.request("POST", "/v1/chat/completions", json={"max_tokens": 1})
            await c.aclose()
            return s, c, answers, post
    s, c, answers, post = asyncio.run(go())
    assert [r.status_code for r in answers] == [200] * 5 and answers[0].text == "ok"
    assert s.connections == 1 and c.connects == 1
    method, path, headers, body = s.requests[-1]
    assert (method, path, body) == ("POST", "/v1/chat/completions", b'{"max_tokens": 1}')
    assert headers["authorization"] == "Bearer k" and headers["host"].startswith("127.0.0.1:")


def test_server_closing_idle_connection_reconnects_and_chunked_body():
    async def go():
        async with Server("close-idle") as s:
            c = KeepAlive(s.url)
            codes = []
            for _ in range(3):
                codes.append((await c.request("GET", "/health")).status_code)
                await asyncio.sleep(0.05)  # the close reaches us while idle
            async with Server("chunked") as s2:
                body = (await KeepAlive(s2.url).request("GET", "/metrics")).content
            return s, c, codes, body
    s, c, codes, body = asyncio.run(go())
    assert codes == [200, 200, 200] and s.connections == 3 and c.connects == 3
    assert body == b"hello world"


def test_hung_server_times_out_and_next_probe_uses_a_fresh_connection():
    async def go():
        async with Server("hang") as s:
            p = Prober(timeout=1.0)
            first = await p.probe(Target("n", [s.url]))
            conn, _ = p.conn(s.url)
            s.mode = "keep"
            second = await p.probe(Target("n", [s.url]))
            await p.aclose()
            return first, second, conn, s
    first, second, conn, s = asyncio.run(go())
    assert not first.service_ok and first.reason == f"health {s.url}: timed out" and first.elapsed < 5.0
    assert [c.name for c in first.checks] == ["health"]  # /metrics only after a 200 /health
    assert [c.name for c in second.checks] == ["health", "heartbeat"]
    assert conn.connects == 2  # the timed-out connection was dropped, not reused mid-answer


def test_refused_connection_is_reported():
    from conftest import free_port

    async def go():
        p = Prober(timeout=1.0)
        o = await p.probe(Target("n", [f"http://127.0.0.1:{free_port()}"]))
        await p.aclose()
        return o
    o = asyncio.run(go())
    assert not o.service_ok and o.reason.endswith("connection refused")
