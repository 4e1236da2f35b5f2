"""One ordered sender per session: the session's published events, out to its sockets.

`EmulatedSession.publish` calls its listeners synchronously, while emitting over socket.io is a
coroutine; a queue and one task per session bridge the two and keep publish order (unless the
fault plan says otherwise: `drop_socket`, `duplicate` and `reorder`, see `faults`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, Protocol

from webrun_async.emulator.faults import Faults
from webrun_async.emulator.sim.session import EmulatedSession

__all__ = ["END_SESSION", "Outlet", "SessionPush"]

logger = logging.getLogger("webrun_async.emulator")

END_SESSION = "end_session"

_Item = tuple[str, dict[str, Any]] | None
# How long an event held back by a `reorder` fault waits for a next event to overtake it.
_REORDER_WAIT = 0.2


class Outlet(Protocol):
    """Where a `SessionPush` delivers (the socket server)."""

    def listening(self, session_id: str) -> bool:
        """Whether any socket of the session is connected now."""
        ...

    async def deliver(self, session_id: str, event: str, payload: dict[str, Any]) -> None:
        """Emit one event to every connected socket of the session."""
        ...

    async def hang_up(self, session_id: str) -> None:
        """Disconnect every socket of the session (it has ended)."""
        ...

    async def cut(self, session_id: str) -> None:
        """Cut the session's connections abruptly, as a network failure would."""
        ...


class SessionPush:
    """The queue and the task that deliver one session's events, in publish order.

    Created when the first socket of a session connects. The task ends once it has delivered
    `end_session` and disconnected the session's sockets, or when `finish()` is called.
    """

    def __init__(self, session: EmulatedSession, outlet: Outlet, faults: Faults) -> None:
        self.session_id = session.session_id
        self._outlet = outlet
        self._faults = faults
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._unsubscribe = session.subscribe(self._on_event)
        self.task = asyncio.create_task(self._run(), name=f"webrun-emulator-push-{self.session_id}")

    def _on_event(self, event: str, payload: dict[str, Any]) -> None:
        # Push is live only: an event published while no socket is connected is dropped, never
        # replayed. `end_session` always goes in, since it is what finishes this sender.
        if event == END_SESSION or self._outlet.listening(self.session_id):
            self._queue.put_nowait((event, payload))

    async def _run(self) -> None:
        held: tuple[str, dict[str, Any]] | None = None  # overtaken by the next event
        try:
            while True:
                if held is None:
                    item = await self._queue.get()
                else:
                    try:
                        async with asyncio.timeout(_REORDER_WAIT):
                            item = await self._queue.get()
                    except TimeoutError:
                        await self._send(*held)  # nothing came to overtake it
                        held = None
                        continue
                if item is None:
                    if held is not None:
                        await self._send(*held)
                    return
                event, payload = item
                fault = None if event == END_SESSION else self._faults.draw("event")
                if fault == "reorder" and held is None:
                    held = item
                    continue
                if fault == "drop_socket":
                    await self._guarded(self._outlet.cut(self.session_id))  # the event is lost
                else:
                    await self._send(event, payload)
                    if fault == "duplicate":
                        await self._send(event, payload)
                if held is not None:
                    await self._send(*held)
                    held = None
                if event == END_SESSION:
                    await self._guarded(self._outlet.hang_up(self.session_id))
                    return
        finally:
            self._unsubscribe()

    async def _send(self, event: str, payload: dict[str, Any]) -> None:
        await self._guarded(self._outlet.deliver(self.session_id, event, payload))

    async def _guarded(self, step: Awaitable[None]) -> None:
        try:
            await step
        except Exception:
            logger.exception("socket delivery for session %s failed", self.session_id)

    async def finish(self) -> None:
        """Deliver what is already queued, then stop (the emulator is closing)."""
        self._queue.put_nowait(None)
        await self.task
