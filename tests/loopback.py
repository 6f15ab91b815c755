"""A tiny asyncio HTTP server on 127.0.0.1 for the watchdog tests: subclasses write handle()."""
from __future__ import annotations

import asyncio


class LoopbackServer:
    url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def __aenter__(self):
        self.srv = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.srv.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.srv.close()
