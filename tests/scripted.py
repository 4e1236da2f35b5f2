"""A real HTTP server on 127.0.0.1 that answers from a script, for transport tests.

``server.script(ScriptedReply(...), ...)`` queues answers, ``server.default`` answers once they
run out (a reply, or a function of the request that returns one), and ``server.seen`` records
every request. The ``server`` fixture (``tests/conftest.py``) starts one; `client_for` makes a
client of it.

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

from webrun_async import AsyncWebRun, RetryPolicy

SCRIPTED_KEY = "wr_test_secret_key_0123456789"
"""The API key of `client_for`'s clients."""
NO_WAIT = RetryPolicy(max_retries=3, wait=False)
"""Retries as by default, without the waits."""
COMPLETED = {
    "success": True,
    "sessionId": "s1",
    "taskId": "t1",
    "type": "task_completed",
    "data": {"message": "ok"},
    "usage": {"cost": 0.01},
}
"""A completed task's answer (session s1, task t1), for ``ScriptedReply(200, COMPLETED)``."""


@dataclass
class ScriptedReply:
    """What a scripted server sends for one request: a status with a JSON (or raw) body and
    headers, or a broken answer (a reset, a held or a cut-short one)."""

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
        self.replies: deque[ScriptedReply | Callable[[Seen], ScriptedReply]] = deque()
        self.default: ScriptedReply | Callable[[Seen], ScriptedReply] = ScriptedReply()
        self.seen: list[Seen] = []
        self.base_url = ""
        self._arrived = asyncio.Event()

    def script(self, *replies: ScriptedReply | Callable[[Seen], ScriptedReply]) -> None:
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


def client_for(server: ScriptedServer, **options: Any) -> AsyncWebRun:
    """A client of ``server``: retries without waiting and no client-side limiter, unless
    ``options`` say otherwise. Use it with ``async with``."""
    return AsyncWebRun(
        SCRIPTED_KEY, base_url=server.base_url, **{"retry": NO_WAIT, "rate_limit": None, **options}
    )
