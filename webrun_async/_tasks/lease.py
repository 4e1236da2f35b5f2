"""``SessionLease``: the one owner of a session's life, from before it exists until it is gone.

A session costs money from the moment the service creates it. The lease is created before the
start-session request is written: it holds the place under ``max_sessions``, knows whether the
session may exist remotely, and carries the duty to end it. Whoever started it (a handle,
``sessions.create``, ``tasks.create``) may give up at any await point with :meth:`abandon`;
the lease then ends the session as soon as it exists, or never lets it be created unseen. Its
place is given back exactly once, by :meth:`ended`, when the session is known to be gone (or
is no longer this client's to end: detached).

    new --acquire()--> slotted --start()--> starting --answer--> live --ended()--> gone
     \\______________________ abandon() / failure ________________________________/
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from webrun_async._core.gate import FifoGate
from webrun_async.types.sessions import SessionInfo

if TYPE_CHECKING:
    from webrun_async._tasks.registry import SessionState

__all__ = ["LeaseHost", "SessionLease"]

Phase = Literal["new", "starting", "live", "gone"]
R = TypeVar("R")

SessionOf = Callable[[R], "tuple[str, SessionInfo | None] | None"]
"""The session an answer says was created (its id and start-session answer), if one is left
running."""


class LeaseHost(Protocol):
    """What a lease needs from the client's runtime."""

    def track(self, work: Coroutine[Any, Any, R]) -> asyncio.Future[R]:
        """Run ``work`` in a task of its own that closing the client waits for."""
        ...

    def register(
        self, session_id: str, info: SessionInfo | None, lease: SessionLease
    ) -> SessionState:
        """Record a session just created, owned by ``lease``."""
        ...

    def reap(self, state: SessionState, why: str) -> None:
        """End a session in the background (shielded and bounded)."""
        ...


class SessionLease:
    """The duty for one session: its place under ``max_sessions`` and its termination.

    Attributes:
        state: The session, once the service has created it.
    """

    __slots__ = ("_abandoned", "_gate", "_host", "_phase", "_slot", "state")

    def __init__(self, host: LeaseHost, gate: FifoGate | None) -> None:
        self._host = host
        self._gate = gate
        self._slot = False
        self._phase: Phase = "new"
        self._abandoned = False
        self.state: SessionState | None = None

    def __repr__(self) -> str:
        session = self.state.id if self.state is not None else None
        return f"SessionLease({self._phase}, session={session!r}, slot={self._slot})"

    @property
    def phase(self) -> Phase:
        """``new``, ``starting`` (the session may exist remotely), ``live`` or ``gone``."""
        return self._phase

    @property
    def holds_slot(self) -> bool:
        """Whether the lease holds a place under ``max_sessions`` now."""
        return self._slot

    async def acquire(self) -> None:
        """Wait (in arrival order) for a place under ``max_sessions``.

        Cancelled while waiting, the lease holds nothing.
        """
        if self._gate is not None and not self._slot and self._phase == "new":
            await self._gate.acquire()
            self._slot = True

    async def start(
        self, send: Callable[[], Awaitable[R]], session_of: SessionOf[R]
    ) -> tuple[R, SessionState | None]:
        """Send the request that creates the session (``send``) so that no answer is lost.

        The request runs in a task of its own: if the caller is cancelled at any point, the
        request still completes, and the session it created is ended then (or at once, when it
        already exists). The slot stays held until that session is gone. Returns the answer
        and the session registered from it (``None`` when ``session_of`` finds none left
        running: the lease is then over).
        """
        if self._phase != "new":
            raise RuntimeError(f"a session lease starts once (it is {self._phase})")
        self._phase = "starting"
        task = self._host.track(self._start(send, session_of))
        try:
            return await asyncio.shield(task)
        except BaseException:
            self.abandon()
            raise

    async def _start(
        self, send: Callable[[], Awaitable[R]], session_of: SessionOf[R]
    ) -> tuple[R, SessionState | None]:
        try:
            answer = await send()
            created = session_of(answer)
        except BaseException:
            self._phase = "gone"  # no session was created, as far as anyone can tell
            self._release()
            raise
        if created is None:
            self.ended()
            return answer, None
        state = self.state = self._host.register(created[0], created[1], self)
        self._phase = "live"
        if self._abandoned:
            self._host.reap(state, "its caller went away")
        return answer, state

    def own(self, state: SessionState) -> None:
        """Take on a session that exists already (attached, or created by run-task)."""
        self.state = state
        self._phase = "live"

    def abandon(self) -> None:
        """The caller no longer wants the session: end it as soon as it exists."""
        if self._abandoned or self._phase == "gone":
            return
        self._abandoned = True
        if self._phase == "new":
            self._phase = "gone"
            self._release()
        elif self._phase == "live" and self.state is not None:
            self._host.reap(self.state, "its caller went away")
        # "starting": _start ends it when the answer arrives.

    def ended(self) -> None:
        """The session is gone (or no longer ours): give its place back, once."""
        self._phase = "gone"
        self._release()

    def _release(self) -> None:
        if self._slot:
            self._slot = False
            assert self._gate is not None
            self._gate.release()
