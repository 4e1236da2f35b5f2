"""What happens on a session's socket becomes the state of its tasks: the one place it does.

:class:`PushRouter` is the channels' listener. A pushed final or guardrail event goes to the
tracker it belongs to (see :meth:`SessionState.route`), progress events to the session's
current task, every event to the session's listeners; a socket that drops, comes back or is
refused turns into polls that cover the gap.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import anyio

from webrun_async._tasks.registry import SessionState
from webrun_async._tasks.tracker import Tracker
from webrun_async.types.events import (
    AgentThought,
    BrowserAction,
    ResponseUpdate,
    SessionEnded,
    SessionEvent,
)
from webrun_async.types.tasks import TaskFailure, TaskGuardrail, TaskResult, TaskTerminated

__all__ = ["PushHost", "PushRouter", "poll_unsettled"]


class PushHost(Protocol):
    """What the router needs from the client's runtime."""

    def poll_in(self, tracker: Tracker, delay: float) -> None:
        """Poll a task in ``delay`` seconds."""
        ...

    def schedule_next(self, tracker: Tracker) -> None:
        """Schedule a task's next poll at the normal pace."""
        ...

    def promote(self, state: SessionState) -> None:
        """The session's next task runs now."""
        ...

    def session_gone(self, state: SessionState) -> None:
        """The session has ended."""
        ...


def poll_unsettled(host: PushHost, state: SessionState, now: bool = True) -> None:
    """Poll the session's named, unsettled tasks: at once, or at the normal pace."""
    for tracker in state.handles:
        if not tracker.settled and tracker.task_id is not None:
            if now:
                host.poll_in(tracker, 0)
            else:
                host.schedule_next(tracker)


class PushRouter:
    """The listener of every session's socket (see the module docstring)."""

    __slots__ = ("_host",)

    def __init__(self, host: PushHost) -> None:
        self._host = host

    def socket_up(self, state: SessionState, reconnected: bool) -> None:
        """A session's socket (re)connected: after a gap, poll to catch what was missed."""
        if reconnected:
            # Final events sent during the gap are lost: known-final trackers leave the queue.
            while state.handles and state.handles[0].server_final:
                state.pop_first()
            poll_unsettled(self._host, state)

    def socket_refused(self, state: SessionState) -> None:
        """The server refused the socket back: poll now to learn what became of the tasks."""
        poll_unsettled(self._host, state)

    def socket_down(self, state: SessionState) -> None:
        """A session's socket dropped: poll at the normal pace until it is back."""
        poll_unsettled(self._host, state, now=False)

    def dispatch(self, state: SessionState, event: SessionEvent) -> None:
        """Route one pushed event to the tracker it belongs to and to the session's listeners."""
        host = self._host
        if isinstance(event, TaskResult | TaskFailure | TaskTerminated | TaskGuardrail):
            trackers = state.route(event)
            now = asyncio.get_running_loop().time()
            for tracker in trackers:
                tracker.offer(event, now, pushed=True)  # no-op once settled
            if trackers and event.terminal:
                for tracker in trackers:
                    tracker.server_final = True
                for missed in state.retire(trackers):
                    if missed not in trackers:
                        host.poll_in(missed, 0)
                host.promote(state)
        elif isinstance(event, AgentThought | BrowserAction | ResponseUpdate) and state.handles:
            state.handles[0].progress(event)
        for listener in list(state.listeners):
            try:
                listener.send_nowait(event)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                state.listeners.remove(listener)  # that reader went away
                listener.close()
        if isinstance(event, SessionEnded):
            host.session_gone(state)
