"""The socket.io server object, and the engine.io operations the emulator needs beyond its API.

python-socketio and python-engineio ship no type information, so everything they return is
`Any`; this module keeps that surface small and typed for the rest of the emulator.

What socket.io's public API does not offer, done with engine.io's public objects:

* Cutting a connection abruptly (`cut`). engine.io closes a socket *without* a close packet
  when its transport dies: `AsyncSocket.close(abort=True)`, the call its own websocket
  handler makes when the connection drops. That runs the disconnect handlers and forgets the
  socket, but leaves the transport open, so `cut` also puts the `None` sentinel on the
  socket's packet queue, the engine's own signal that a transport is finished: the websocket
  writer closes the websocket without sending anything, and a pending long-poll returns empty
  (the next one is refused as an unknown session). The client sees neither a socket.io
  DISCONNECT nor an engine.io CLOSE, only a transport that went away, which it treats as a
  network failure and reconnects.
* Releasing a long-poll when a socket.io session is over (`release_poll`). engine.io keeps a
  polling client's pending GET open until the ping timeout even after the client sent its
  CLOSE, and the client's read loop waits for that GET (30 s) before it can finish
  disconnecting. The same `None` sentinel answers the GET at once.
* Closing every connection at shutdown (`close_transports`), with a CLOSE packet this time.
* Cancelling engine.io's background tasks (ping timers sleep for the ping interval) so that
  closing the emulator leaves nothing pending.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import engineio  # type: ignore[import-untyped, unused-ignore]
import socketio  # type: ignore[import-untyped, unused-ignore]

__all__ = ["NAMESPACE", "SocketServer", "UndecodablePacket", "refuse"]

logger = logging.getLogger("webrun_async.emulator")

NAMESPACE = "/"


class _EngineServer(engineio.AsyncServer):  # type: ignore[misc, unused-ignore]
    """An engine.io server that remembers its background tasks so that they can be cancelled."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.background: set[asyncio.Task[Any]] = set()

    def start_background_task(self, target: Any, *args: Any, **kwargs: Any) -> asyncio.Task[Any]:
        """Start `target` like engine.io does, and keep the task."""
        task: asyncio.Task[Any] = super().start_background_task(target, *args, **kwargs)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task


class UndecodablePacket(ValueError):
    """A socket.io packet that is not one: broken framing, bad JSON, or JSON nested too deep."""


class _Packet(socketio.packet.Packet):  # type: ignore[misc, unused-ignore]
    """socket.io's packet, with every way decoding fails turned into `UndecodablePacket`.

    python-socketio lets a broken packet's ValueError (or a deep payload's RecursionError)
    escape to engine.io, which logs it as an ERROR with a traceback; a client's garbage is
    not the server's error.
    """

    def decode(self, encoded_packet: Any) -> Any:
        """Decode like socket.io does, or raise `UndecodablePacket`."""
        try:
            return super().decode(encoded_packet)
        except (ValueError, RecursionError) as exc:
            raise UndecodablePacket(type(exc).__name__) from None


class SocketServer(socketio.AsyncServer):  # type: ignore[misc, unused-ignore]
    """`socketio.AsyncServer` on aiohttp, with the operations of this module's docstring.

    Events of one connection are handled one at a time, in arrival order (`async_handlers`
    off): a client's messages take effect in the order it sent them.
    """

    def __init__(self, cors_origins: tuple[str, ...] = ()) -> None:
        """`cors_origins`: web origins allowed besides the emulator's own (`"*"`: any)."""
        super().__init__(
            async_mode="aiohttp",
            async_handlers=False,
            # None is engine.io's same-origin check: a browser page of another origin is
            # refused ("Not an accepted origin"); clients sending no Origin are unaffected.
            cors_allowed_origins=list(cors_origins) or None,
            serializer=_Packet,
            logger=False,
            engineio_logger=False,
        )

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        # socket.io's own hook for each engine.io message: a packet that cannot be decoded
        # ends that client's connection, quietly, instead of an ERROR per packet.
        try:
            await super()._handle_eio_message(eio_sid, data)
        except UndecodablePacket as exc:
            logger.debug("closing a socket that sent an undecodable packet (%s)", exc)
            # In the background: closing from inside the request that carried the packet
            # would wait for that very request.
            self.eio.start_background_task(self.eio.disconnect, eio_sid)

    def _engineio_server_class(self) -> type[_EngineServer]:
        # socket.io's hook for choosing its engine.io server class.
        return _EngineServer

    def is_connected(self, sid: str) -> bool:
        """Whether the socket completed its connection (and is not being disconnected)."""
        return bool(self.manager.is_connected(sid, NAMESPACE))

    def members(self, room: str) -> list[str]:
        """The socket ids in `room`, including sockets still connecting."""
        return [sid for sid, _ in self.manager.get_participants(NAMESPACE, room)]

    async def cut(self, sid: str) -> bool:
        """Drop one socket's connection abruptly (see the module docstring).

        Returns whether a live connection was cut.
        """
        socket = self._engine_socket(sid)
        if socket is None or socket.closed or socket.closing:
            return False
        await socket.close(wait=False, abort=True, reason=self.eio.reason.TRANSPORT_ERROR)
        socket.queue.put_nowait(None)
        return True

    def release_poll(self, sid: str) -> None:
        """Answer a pending long-poll of a socket whose socket.io session is over."""
        socket = self._engine_socket(sid)
        if socket is not None and not socket.upgraded:
            socket.queue.put_nowait(None)

    async def close_transports(self, patience: float) -> None:
        """Close every engine.io connection, giving clients `patience` seconds to do it first.

        After a socket.io disconnect a client closes its own engine.io connection, which is the
        cleanest end for both sides; whatever is still open after that gets a CLOSE packet and
        its transport released.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        # engine.io signals nothing when one of its sockets has closed, hence the polling.
        while loop.time() < deadline and any(  # noqa: ASYNC110
            not socket.closed for socket in self.eio.sockets.values()
        ):
            await asyncio.sleep(0.005)
        for socket in list(self.eio.sockets.values()):
            if not socket.closed and not socket.closing:
                await socket.close(wait=False, reason=self.eio.reason.SERVER_DISCONNECT)
            socket.queue.put_nowait(None)

    async def stop_background(self) -> None:
        """Stop engine.io's monitor task and cancel its other background tasks."""
        await self.shutdown()
        tasks = list(self.eio.background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _engine_socket(self, sid: str) -> Any:
        eio_sid = self.manager.eio_sid_from_sid(sid, NAMESPACE)
        return None if eio_sid is None else self.eio.sockets.get(eio_sid)


def refuse(message: str) -> BaseException:
    """The exception a connect handler raises; the client gets `connect_error` with `message`."""
    error: BaseException = socketio.exceptions.ConnectionRefusedError(message)
    return error
