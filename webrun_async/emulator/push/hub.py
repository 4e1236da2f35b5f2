"""The socket.io push channel: handshake, per-session rooms, pushed events, emitted messages.

The protocol follows the socket.io page of the docs:

* Default path `/socket.io/`, default namespace, both transports, no API key. The handshake
  auth is `{"sessionId": "<id>"}`; an unknown or ended session is refused with `connect_error`
  "Session not found".
* Each socket joins a room named after its session. Every event the session publishes reaches
  every socket of the session, in publish order, however the task was started: `message`
  events, and the named events `end_session`, `instance:disconnected`, `instance:reconnected`.
  Push is live only: nothing is replayed to a socket that connects later.
* Once `end_session` is out, the session's sockets are disconnected.
* `emit("message", {...})` is send-message's `message` for the socket's session, not held.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from webrun_async.emulator.errors import ApiError, bad_param
from webrun_async.emulator.sim.control import dispatch
from webrun_async.emulator.sim.engine import Engine
from webrun_async.emulator.sim.session import EmulatedSession

from .sender import SessionPush
from .server import SocketServer, refuse

__all__ = ["SOCKET_MESSAGE", "SocketHub"]

logger = logging.getLogger("webrun_async.emulator")

SOCKET_MESSAGE = "SOCKET message"  # The requestCounts key of emitted messages.
SESSION_NOT_FOUND = "Session not found"
SOCKETS_DISABLED = "Socket connections are disabled"
# Emulator-defined refusals (test hooks and shutdown); the docs have no such cases.
SOCKETS_REFUSED = "Socket connections for this session are refused"
SHUTTING_DOWN = "The emulator is shutting down"
# How long closing waits for disconnected clients to close their connections themselves.
_CLOSE_PATIENCE = 1.0


class SocketHub:
    """The socket.io server of one emulator, attached to its aiohttp application.

    Bookkeeping lives in the store (`Store.sockets` and the socket counters) so that
    `GET /_emulator/state` can report it.
    """

    def __init__(self, engine: Engine, app: web.Application) -> None:
        self._engine = engine
        self._store = engine.store
        self._server = SocketServer(engine.config.cors_origins)
        self._server.attach(app)
        self._server.on("connect", self._on_connect)
        self._server.on("disconnect", self._on_disconnect)
        self._server.on("message", self._on_message)
        self._members: dict[str, set[str]] = {}
        self._pushes: dict[str, SessionPush] = {}
        self._blocked: set[str] = set()
        self._closing = False

    # -- connections -----------------------------------------------------------------------

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> bool:
        session = self._admit(auth)
        session_id = session.session_id
        await self._server.enter_room(sid, session_id)
        self._store.sockets[sid] = session_id
        self._members.setdefault(session_id, set()).add(sid)
        self._store.socket_connections += 1
        if session_id not in self._pushes:
            push = SessionPush(session, self, self._engine.faults)
            self._pushes[session_id] = push
            push.task.add_done_callback(lambda _: self._forget_push(push))
        return True

    def _admit(self, auth: Any) -> EmulatedSession:
        """The live session the handshake names, or the refusal to raise."""
        session_id = auth.get("sessionId") if isinstance(auth, dict) else None
        session = self._store.live.get(session_id) if isinstance(session_id, str) else None
        if self._closing:
            problem = SHUTTING_DOWN
        elif not self._engine.config.sockets:
            problem = SOCKETS_DISABLED
        elif session is None:
            problem = SESSION_NOT_FOUND
        elif session.session_id in self._blocked:
            problem = SOCKETS_REFUSED
        else:
            return session
        self._store.socket_refused += 1
        raise refuse(problem)

    async def _on_disconnect(self, sid: str, reason: str) -> None:
        self._server.release_poll(sid)
        session_id = self._store.sockets.pop(sid, None)
        members = self._members.get(session_id or "")
        if members is not None:
            members.discard(sid)
            if not members:
                del self._members[session_id or ""]

    def _forget_push(self, push: SessionPush) -> None:
        if self._pushes.get(push.session_id) is push:
            del self._pushes[push.session_id]

    # -- the Outlet of SessionPush ----------------------------------------------------------

    def listening(self, session_id: str) -> bool:
        """Whether any socket of the session is connected now."""
        return bool(self._members.get(session_id))

    async def deliver(self, session_id: str, event: str, payload: dict[str, Any]) -> None:
        """Emit one event to the session's room."""
        # A socket still inside its connect handler has not been told it is connected yet.
        connecting = [
            sid for sid in self._server.members(session_id) if not self._server.is_connected(sid)
        ]
        await self._server.emit(event, payload, room=session_id, skip_sid=connecting)

    async def hang_up(self, session_id: str) -> None:
        """Disconnect every socket of the session (a socket.io disconnect: no reconnection)."""
        for sid in list(self._members.get(session_id, ())):
            await self._server.disconnect(sid)

    async def cut(self, session_id: str) -> None:
        """Cut the session's connections abruptly (a `drop_socket` fault)."""
        await self.drop(session_id, refuse_reconnect=False)

    # -- client messages -------------------------------------------------------------------

    async def _on_message(self, sid: str, *args: Any) -> dict[str, Any]:
        """`emit("message", {...})`: send-message's `message` for this socket's session.

        The return value is the acknowledgement, sent only when the client asked for one,
        and it is an emulator extension: the docs document no ack or reply.
        It carries the JSON body send-message would return, success or error.
        """
        self._store.request_counts[SOCKET_MESSAGE] += 1
        session = self._store.live.get(self._store.sockets.get(sid, ""))
        message = args[0] if args else None
        try:
            if session is None:
                raise ApiError(401, "Session not found or unauthorized", "SESSION_NOT_FOUND")
            if not isinstance(message, dict):
                raise bad_param("message", "must be an object")
            # Not held: an emitted newTask answers at once; its result comes as events.
            return await dispatch(self._engine, session, message, 0)
        except ApiError as exc:
            return exc.native_body()
        except Exception:
            logger.exception("unhandled error in a socket message")
            return ApiError(500, "Internal server error", "INTERNAL_ERROR").native_body()

    # -- test hooks ------------------------------------------------------------------------

    def open_sockets(self, session_id: str | None = None) -> int:
        """Sockets connected now: all of them, or those of one session."""
        if session_id is None:
            return len(self._store.sockets)
        return len(self._members.get(session_id, ()))

    async def drop(self, session_id: str, *, refuse_reconnect: bool) -> int:
        """Cut the session's connections abruptly; returns how many were cut."""
        if refuse_reconnect:
            self._blocked.add(session_id)
        cut = 0
        for sid in list(self._members.get(session_id, ())):
            if await self._server.cut(sid):
                cut += 1
        return cut

    def allow(self, session_id: str) -> None:
        """Accept the session's connections again after `drop(refuse_reconnect=True)`."""
        self._blocked.discard(session_id)

    # -- shutdown --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Deliver what is queued, disconnect every socket, and stop every background task."""
        self._closing = True
        for push in list(self._pushes.values()):
            await push.finish()
        for sid in list(self._store.sockets):
            await self._server.disconnect(sid)
        await self._server.close_transports(_CLOSE_PATIENCE)
        await self._server.stop_background()
