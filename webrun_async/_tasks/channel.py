"""One socket.io connection per live session: typed events in, serialised control messages out.

The connection shares the client's aiohttp session. Its handlers are plain functions: Engine.IO
starts one task per incoming message in arrival order, and a handler that does not suspend
runs to completion in that order, so events reach handles and listeners in the order the
server sent them. python-socketio reconnects by itself after a network failure; the runtime
is told of every loss and return so that polling can cover the gap and reconcile after it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import anyio
import msgspec
import socketio  # type: ignore[import-untyped]

from webrun_async._core.events import decode_event
from webrun_async._tasks.work import retrieve
from webrun_async.types.events import SessionEnded, SessionEvent

if TYPE_CHECKING:
    from webrun_async._core.transport import Transport
    from webrun_async._tasks.options import RuntimeOptions
    from webrun_async._tasks.registry import SessionState
    from webrun_async._tasks.work import BackgroundWork

__all__ = ["ChannelListener", "Channels", "SessionChannel"]


class ChannelListener(Protocol):
    """Who is told what happens on a session's socket (the client's runtime)."""

    def socket_up(self, state: SessionState, reconnected: bool) -> None:
        """The socket connected (again, after a gap, when ``reconnected``)."""
        ...

    def socket_down(self, state: SessionState) -> None:
        """The socket dropped; python-socketio is trying to reconnect."""
        ...

    def socket_refused(self, state: SessionState) -> None:
        """The server refused the socket back (the session probably ended)."""
        ...

    def dispatch(self, state: SessionState, event: SessionEvent) -> None:
        """One event pushed by the server, in the order it was sent."""
        ...


logger = logging.getLogger("webrun_async")

_EVENTS = ("message", "end_session", "instance:disconnected", "instance:reconnected")
_to_builtins = msgspec.to_builtins


class SessionChannel:
    """The socket.io connection of one session.

    Attributes:
        connected: Whether the socket is connected now.
    """

    __slots__ = (
        "_closed",
        "_connecting",
        "_ended",
        "_http",
        "_listener",
        "_lock",
        "_sio",
        "_state",
        "_url",
        "connected",
        "was_up",
    )

    def __init__(
        self,
        listener: ChannelListener,
        state: SessionState,
        url: str,
        http: aiohttp.ClientSession,
        reconnect_attempts: int,
    ) -> None:
        self._listener = listener
        self._state = state
        self._url = url
        self._http = http
        self.connected = False
        self.was_up = False
        self._closed = False
        self._connecting: asyncio.Future[bool] | None = None
        self._lock = asyncio.Lock()  # emits go out one at a time, in call order
        self._ended: asyncio.Future[None] | None = None
        sio = socketio.AsyncClient(
            http_session=http,
            reconnection=True,
            reconnection_attempts=reconnect_attempts,
            reconnection_delay=0.5,
            reconnection_delay_max=5,
            logger=False,
            engineio_logger=False,
            handle_sigint=False,
        )
        sio.on("connect", self._on_connect)
        sio.on("disconnect", self._on_disconnect)
        sio.on("connect_error", self._on_connect_error)
        for name in _EVENTS:
            sio.on(name, self._handler(name))
        self._sio = sio

    def __repr__(self) -> str:
        return f"SessionChannel({self._state.id!r}, connected={self.connected})"

    def _handler(self, name: str) -> Any:
        def handle(*args: Any) -> None:
            event = decode_event(name, args[0] if args else None, self._state.id)
            ended = self._ended
            if isinstance(event, SessionEnded) and ended is not None and not ended.done():
                ended.set_result(None)
            if not self._closed:
                self._listener.dispatch(self._state, event)

        return handle

    def _on_connect(self) -> None:
        if self._closed:  # a reconnection that was under way when the channel closed
            self._sio.start_background_task(self._sio.disconnect)
            return
        reconnected = self.was_up
        self.connected = self.was_up = True
        if reconnected:
            logger.info("session %s: socket reconnected; reconciling by polling", self._state.id)
        self._listener.socket_up(self._state, reconnected)

    def _on_disconnect(self, reason: Any = None) -> None:
        self.connected = False
        if not self._closed:
            self._listener.socket_down(self._state)

    def _on_connect_error(self, data: Any = None) -> None:
        # A refused reconnection usually means the session ended while the socket was down.
        if self.was_up and not self._closed:
            self._listener.socket_refused(self._state)

    async def connect(self, within: float) -> bool:
        """Connect with the session id as auth; ``False`` if refused or unreachable in time.

        The handshake runs in a task of its own: a caller cancelled meanwhile does not cut
        it short (aiohttp can lose track of a connection cancelled mid-upgrade); closing the
        channel waits for it, then disconnects.
        """
        task = self._connecting = asyncio.ensure_future(self._connect(within))
        task.add_done_callback(retrieve)
        return await asyncio.shield(task)

    async def _connect(self, within: float) -> bool:
        try:
            with anyio.fail_after(within):
                await self._sio.connect(
                    self._url,
                    auth={"sessionId": self._state.id},
                    transports=["websocket"],
                    wait_timeout=within,
                )
        except (socketio.exceptions.ConnectionError, TimeoutError, OSError) as exc:
            logger.debug("session %s: no socket (%s); polling instead", self._state.id, exc)
            await self._shut()
            return False
        return True

    async def emit(self, message: Any) -> bool:
        """Send a control message (a request Struct); ``False`` when not connected."""
        payload = _to_builtins(message)
        async with self._lock:
            if not self.connected:
                return False
            try:
                await self._sio.emit("message", payload)
            except socketio.exceptions.BadNamespaceError:
                return False
        return True

    async def terminate(self, message: Any, within: float) -> bool:
        """Ask for termination over the socket and wait for ``end_session`` to confirm it."""
        loop = asyncio.get_running_loop()
        self._ended = loop.create_future()
        if not await self.emit(message):
            return False
        try:
            with anyio.fail_after(within):
                await self._ended
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Disconnect, and stop reconnecting. Idempotent; safe under cancellation.

        ``disconnect()`` alone leaves python-socketio's reconnection task running when the
        socket has just dropped: the socket would come back on a session nobody follows, and a
        reconnection after the client's pool closed opens an aiohttp session of its own.
        """
        self.connected = False
        self._closed = True
        self._sio.reconnection = False  # a drop from now on starts no reconnection task
        with anyio.CancelScope(shield=True):
            connecting = self._connecting
            if connecting is not None and not connecting.done():
                await asyncio.wait([connecting])  # bounded by the connect timeout
            await self._shut()

    async def _shut(self) -> None:
        sio = self._sio
        sio.reconnection = False
        try:
            await sio.shutdown()  # disconnects, or aborts the reconnection under way
            if sio.connected:  # that reconnection attempt succeeded meanwhile
                await sio.disconnect()
        except Exception as exc:  # closing must not fail the caller
            logger.debug("session %s: socket close failed: %s", self._state.id, exc)
        http = getattr(sio.eio, "http", None)
        if http is not None and http is not self._http and not http.closed:
            await http.close()  # opened by engineio itself


class Channels:
    """The sessions' sockets of one client: opened per the mode and the cap, closed in the
    background (closing the client waits for them)."""

    __slots__ = ("_listener", "_options", "_transport", "_work", "open")

    def __init__(
        self,
        listener: ChannelListener,
        transport: Transport,
        options: RuntimeOptions,
        work: BackgroundWork,
    ) -> None:
        self._listener = listener
        self._transport = transport
        self._options = options
        self._work = work
        self.open = 0

    async def ensure(self, state: SessionState) -> SessionChannel | None:
        """Connect the session's socket if the mode and the cap allow; ``None`` means poll."""
        options = self._options
        if state.channel is not None or state.ended or options.mode == "poll":
            return state.channel
        if options.mode == "auto" and self.open >= options.max_sockets:
            return None
        info = state.info
        url = (info.socket_url if info is not None else None) or self._transport.base_url
        channel = SessionChannel(
            self._listener, state, url, self._transport.session, options.socket_reconnect_attempts
        )
        state.channel = channel
        self.open += 1
        try:
            connected = await channel.connect(options.socket_connect_timeout)
        except BaseException:
            if state.channel is channel:
                self.close(state)
            raise
        if not connected:
            if state.channel is channel:
                state.channel = None
                self.open -= 1
            return None
        if state.ended or not state.tracked:  # it ended, or was detached, while connecting
            self.close(state)
            return None
        return channel

    def close(self, state: SessionState) -> None:
        """Close the session's socket (in the background), if it has one."""
        channel, state.channel = state.channel, None
        if channel is not None:
            self.open -= 1
            self._work.track(channel.close())
