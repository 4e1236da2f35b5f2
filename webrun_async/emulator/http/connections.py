"""A deadline for request headers, which aiohttp's server does not have.

aiohttp closes a connection that stays idle for its keep-alive timeout, but a client that sends
a request's headers one byte at a time holds a connection (and a file descriptor) for as long as
it likes. Every connection here goes through a `_Guard`: a protocol in front of aiohttp's own
that starts a timer when a request's first byte arrives (or when the connection opens) and
closes the connection if the request's handler has not started `header_timeout` seconds later.
The outermost middleware tells the guard when a handler starts and ends (`Connections`).

`GuardedSite` is a `web.TCPSite` equivalent whose protocol factory wraps aiohttp's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from aiohttp import web

__all__ = ["CONNECTIONS_KEY", "Connections", "GuardedSite"]

logger = logging.getLogger("webrun_async.emulator")


class _Guard(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind a header deadline."""

    def __init__(self, inner: asyncio.Protocol, owner: Connections) -> None:
        self._inner = inner
        self._owner = owner
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._busy = 0

    # -- asyncio.Protocol, forwarded ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._owner.add(self._transport, self)
        self._inner.connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if not self._busy and self._timer is None:
            self._arm()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._transport is not None:
            self._owner.remove(self._transport)
        self._inner.connection_lost(exc)

    # -- the deadline ------------------------------------------------------------------------

    def request_started(self) -> None:
        """A handler runs: the request's headers are in."""
        self._busy += 1
        self._disarm()

    def request_ended(self) -> None:
        """The handler returned; the next request's first byte starts a new deadline."""
        self._busy -= 1

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._owner.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._busy or self._transport is None:
            return
        self._owner.expired += 1
        logger.debug("closing a connection whose request headers did not arrive in time")
        self._transport.abort()


class Connections:
    """The guarded connections of one application, found by their transport."""

    def __init__(self, header_timeout: float) -> None:
        self.header_timeout = header_timeout
        self.expired = 0
        self._guards: dict[asyncio.BaseTransport, _Guard] = {}

    def add(self, transport: asyncio.BaseTransport, guard: _Guard) -> None:
        """Track a new connection."""
        self._guards[transport] = guard

    def remove(self, transport: asyncio.BaseTransport) -> None:
        """Forget a closed connection."""
        self._guards.pop(transport, None)

    def started(self, request: web.BaseRequest) -> Callable[[], None]:
        """Mark the request's connection busy; call the returned function when it is done."""
        transport = request.transport
        guard = self._guards.get(transport) if transport is not None else None
        if guard is None:
            return _nothing
        guard.request_started()
        return guard.request_ended


def _nothing() -> None:
    return None


CONNECTIONS_KEY = web.AppKey("webrun_emulator_connections", Connections)


class GuardedSite(web.BaseSite):
    """Serve `runner` on `host:port`, each connection behind the header deadline."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        connections: Connections,
        *,
        backlog: int,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._app_runner = runner
        self._host = host
        self._port = port
        self._connections = connections

    @property
    def name(self) -> str:
        """`http://host:port` as bound."""
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        """Bind and start accepting connections."""
        await super().start()
        factory = self._app_runner.server
        if factory is None:
            raise RuntimeError("the runner is not set up")
        connections = self._connections
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Guard(factory(), connections),
            self._host,
            self._port,
            backlog=self._backlog,
        )
