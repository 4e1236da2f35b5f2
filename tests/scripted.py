"""A real HTTP server on 127.0.0.1 that answers from a script, for transport tests.

The emulator answers like the service; some transport behaviour (retrying a 500, a reset
connection, a malformed body) needs answers on demand, so these tests script them here.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web


@dataclass
class Reply:
    """One scripted answer: a status with a JSON (or raw) body and headers."""

    status: int = 200
    json: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False  # drop the connection instead of answering
    hold: asyncio.Event | None = None  # answer only once this is set
    cut_after: int | None = None  # announce the whole body, send this many bytes, then drop

    def body(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return msgspec.json.encode(self.json if self.json is not None else {"success": True})


@dataclass
class Seen:
    """A request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    """Answers each request with the next scripted reply (or ``default`` once they run out)."""

    def __init__(self) -> None:
        self.replies: deque[Reply | Callable[[Seen], Reply]] = deque()
        self.default: Reply | Callable[[Seen], Reply] = Reply()
        self.seen: list[Seen] = []
        self.base_url = ""
        self._arrived = asyncio.Event()

    def script(self, *replies: Reply | Callable[[Seen], Reply]) -> None:
        self.replies.extend(replies)

    async def wait_for_requests(self, count: int) -> None:
        """Wait (without a fixed sleep) until ``count`` requests have arrived."""
        while len(self.seen) < count:
            self._arrived.clear()
            await self._arrived.wait()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        seen = Seen(request.method, request.path, dict(request.headers), await request.read())
        self.seen.append(seen)
        self._arrived.set()
        reply = self.replies.popleft() if self.replies else self.default
        if callable(reply):
            reply = reply(seen)
        if reply.hold is not None:
            await reply.hold.wait()
        if reply.reset:
            assert request.transport is not None
            request.transport.close()
            return web.Response()  # never reaches the client
        if reply.cut_after is not None:
            body = reply.body()
            response = web.StreamResponse(
                headers={"Content-Length": str(len(body)), **reply.headers}
            )
            await response.prepare(request)
            await response.write(body[: reply.cut_after])
            assert request.transport is not None
            request.transport.close()  # the rest never comes
            return response
        return web.Response(
            status=reply.status,
            body=reply.body(),
            headers={"Content-Type": "application/json", **reply.headers},
        )


@asynccontextmanager
async def scripted_server() -> AsyncIterator[ScriptedServer]:
    server = ScriptedServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server._handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.base_url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()
