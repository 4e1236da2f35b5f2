"""``TaskHandle``: a task running in the background, resolved by whichever answer comes first.

A handle is the user's face of a :class:`~webrun_async._tasks.tracker.Tracker`: a future and
a little state. Its result arrives from the held request that started the task, from a
socket.io event, or from a poll, whichever is first; later answers are ignored. A waiting
handle costs its tracker's future and one entry in the shared poll scheduler, nothing more.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import anyio

from webrun_async._core.exceptions import SessionTerminated, TaskCancelled, UsageError
from webrun_async._tasks.tracker import GuardrailCallback, TaskHandleStatus, Tracker
from webrun_async.types.common import Usage
from webrun_async.types.events import TaskEvent
from webrun_async.types.sessions import GuardrailReply
from webrun_async.types.tasks import TaskGuardrail, TaskRef, TaskResult

if TYPE_CHECKING:
    from webrun_async._tasks.registry import SessionState
    from webrun_async.types.sessions import SessionMessage

__all__ = ["GuardrailCallback", "HandleHost", "TaskHandle", "TaskHandleStatus"]

T = TypeVar("T")


class HandleHost(Protocol):
    """What a handle's user-facing verbs need from the client's runtime."""

    async def send_control(self, state: SessionState, message: SessionMessage) -> None:
        """Send a control message to a session."""
        ...

    async def end_session(self, state: SessionState) -> None:
        """Terminate a session."""
        ...

    async def cleanup(self, work: Any, what: str) -> None:
        """Run clean-up shielded, bounded, logging failures."""
        ...

    def poll_in(self, tracker: Tracker, delay: float) -> None:
        """Poll a task in ``delay`` seconds."""
        ...

    def detach_tracker(self, tracker: Tracker) -> None:
        """Stop following a task, leaving its session running when it was the last."""
        ...


class TaskHandle(Generic[T]):
    """A task running in the background. ``await handle`` for its result.

    Awaiting returns the :class:`~webrun_async.types.TaskResult` or raises
    :class:`~webrun_async.TaskFailed`, :class:`~webrun_async.GuardrailTriggered`,
    :class:`~webrun_async.SessionTerminated`, :class:`~webrun_async.BudgetExceeded`,
    :class:`~webrun_async.TaskTimeoutError` or :class:`~webrun_async.TaskCancelled`. Cancelling
    a caller that awaits a handle does not affect the handle: await it again later.
    """

    __slots__ = ("__weakref__", "_host", "_t")

    def __init__(self, host: HandleHost, tracker: Tracker) -> None:
        self._host = host
        self._t = tracker
        tracker.owner = self

    def __repr__(self) -> str:
        t = self._t
        return (
            f"TaskHandle(session_id={t.session_id!r}, task_id={t.task_id!r}, status={t.status!r})"
        )

    def __await__(self) -> Generator[Any, None, TaskResult[T]]:
        # shield(): cancelling the awaiting caller must not cancel the handle's future.
        return asyncio.shield(self._t.future).__await__()

    # -- what users read ---------------------------------------------------------------------

    @property
    def session_id(self) -> str | None:
        """The task's session, once it exists."""
        return self._t.session_id

    @property
    def task_id(self) -> str | None:
        """The task, once the server has named it."""
        return self._t.task_id

    @property
    def status(self) -> TaskHandleStatus:
        """Where the task stands now (see :data:`~webrun_async.TaskHandleStatus`)."""
        return self._t.status

    @property
    def usage(self) -> Usage:
        """Tokens, time and cost so far (updated by polls and by the final answer)."""
        return self._t.usage

    @property
    def min_cost(self) -> float:
        """The least the task has cost so far, in USD: its reported cost, or, while the service
        reports none (inside its first 50 s, until the held request answers), its compute time
        at the documented $0.02 a minute. Tokens come on top once reported."""
        return self._t.cost_floor(asyncio.get_running_loop().time())

    @property
    def guardrail(self) -> TaskGuardrail | None:
        """The agent's pending question, while it waits for an answer."""
        return self._t.guardrail

    @property
    def final(self) -> bool:
        """Whether the handle has its final outcome."""
        return self._t.settled

    def done(self) -> bool:
        """Whether awaiting the handle would return (or raise) at once."""
        return self._t.future.done()

    def add_done_callback(self, callback: Callable[[TaskHandle[T]], None]) -> None:
        """Call ``callback(handle)`` each time the handle resolves (again after a guardrail)."""
        t = self._t
        if t.future.done():
            callback(self)
        if t.callbacks is None:
            t.callbacks = []
        t.callbacks.append(callback)

    def remove_done_callback(self, callback: Callable[[TaskHandle[T]], None]) -> None:
        """Stop calling ``callback``; no-op if it was not added."""
        callbacks = self._t.callbacks
        if callbacks is not None:
            self._t.callbacks = [c for c in callbacks if c is not callback] or None

    async def submitted(self) -> TaskRef:
        """Wait until the server has named the task; returns its reference.

        Raises:
            The handle's own error if it fails before the task is named.
        """
        t = self._t
        while t.task_id is None or t.session_id is None:
            if t.settled:
                await self  # raises the handle's error
                break
            if t.named is None:
                t.named = asyncio.get_running_loop().create_future()
            await asyncio.shield(t.named)
        assert t.session_id is not None
        assert t.task_id is not None
        return TaskRef(session_id=t.session_id, task_id=t.task_id)

    async def events(self) -> AsyncIterator[TaskEvent]:
        """The task's events: progress, then its final state; ends when the task does.

        Every subscriber sees every event from the start (they are kept by the handle).
        Progress events arrive over socket.io; without a socket only the final state does.
        """
        t = self._t
        send, receive = anyio.create_memory_object_stream[TaskEvent](math.inf)
        for event in t.history or ():
            send.send_nowait(event)
        if t.settled:
            send.close()
        else:
            if t.subscribers is None:
                t.subscribers = []
            t.subscribers.append(send)
        async with receive:
            async for event in receive:
                yield event

    # -- what users do -------------------------------------------------------------------------

    async def respond(self, text: str, *, stop: bool = False) -> None:
        """Answer the agent's question so the task resumes (or stop it with ``stop=True``).

        Raises:
            UsageError: No question is waiting for an answer.
        """
        t = self._t
        if t.guardrail is None or t.settled or t.session is None:
            raise UsageError("this task is not waiting for an answer")
        if not isinstance(text, str):
            raise UsageError("the answer must be a string")
        prompt, t.guardrail = t.guardrail, None
        t.resumed_at = asyncio.get_running_loop().time()
        channel = t.session.channel
        echo = t.echo_expected
        t.echo_expected = not t.guardrail_pushed and channel is not None and channel.connected
        reply = GuardrailReply(task_details=text, new_state="stop" if stop else "resume")
        try:
            await self._host.send_control(t.session, reply)
        except BaseException:
            t.guardrail = prompt  # not delivered: the question still stands
            t.echo_expected = echo
            raise
        if not t.settled:
            t.status = "running"
            t.fresh_future()  # it raised GuardrailTriggered: wait for the outcome again
            self._host.poll_in(t, 0.2)

    async def cancel(self) -> None:
        """Stop the task; awaiting the handle then raises :class:`~webrun_async.TaskCancelled`.

        A one-shot task's session is terminated; a task in a session is stopped and the session
        stays up (a task still queued behind another is stopped when its turn comes).
        """
        t = self._t
        if t.settled:
            return
        t.settle(TaskCancelled("the task was cancelled", **t.ids()), "cancelled")
        await t.stop_remote_cleanly()

    async def terminate(self) -> None:
        """End the task's session now; awaiting then raises ``SessionTerminated``."""
        t = self._t
        if not t.settled:
            t.settle(SessionTerminated("the session was terminated", **t.ids()), "terminated")
        if t.session is not None:
            await self._host.cleanup(
                self._host.end_session(t.session), f"terminating {t.session_id}"
            )

    def detach(self) -> TaskRef:
        """Stop following the task and leave it running; resume with ``client.tasks.attach``.

        The session of a one-shot task, or of tasks followed with ``client.tasks.attach`` once
        none of them is followed any more, is no longer terminated when the client closes. A
        session started with ``client.sessions.create`` stays in the client's care. Awaiting the
        handle afterwards raises :class:`~webrun_async.UsageError`.

        Raises:
            UsageError: The task has not been named by the server yet (see :meth:`submitted`).
        """
        t = self._t
        if t.task_id is None or t.session_id is None:
            raise UsageError("the task has no id yet: await handle.submitted() first")
        ref = TaskRef(session_id=t.session_id, task_id=t.task_id)
        if not t.settled:
            self._host.detach_tracker(t)
            t.settle(UsageError("this handle was detached; use client.tasks.attach()"), "detached")
        return ref
