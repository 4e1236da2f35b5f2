"""What the client knows about each live session: its queue of tasks, socket and listeners."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from anyio.streams.memory import MemoryObjectSendStream

from webrun_async.types.events import SessionEvent
from webrun_async.types.sessions import SessionInfo
from webrun_async.types.tasks import TaskStatus

if TYPE_CHECKING:
    from webrun_async._tasks.channel import SessionChannel
    from webrun_async._tasks.lease import SessionLease
    from webrun_async._tasks.tracker import Tracker

__all__ = ["SessionState"]

_INDEX_FROM = 16
"""A session queue longer than this keeps an index of its handles by task id, so that routing
an event stays O(1) however many tasks are queued or attached in one session; shorter queues
are scanned (cheaper than a dict, and most sessions hold a task or two)."""


class SessionState:
    """What the client knows about one live session.

    ``handles`` are the session's tasks this client follows, in the order they were started.
    Tasks in a session run one at a time and the socket delivers each task's events in order,
    ending with its final event; so progress events belong to the first handle, and a final
    event without a known task id to the oldest unnamed one. With a socket connected, a handle
    leaves the queue only when the socket delivers its final event (even if the held request
    or a poll answered first), so that late progress events still find their task; without
    one, as soon as its task is known to be final.

    The queue changes only through :meth:`add`, :meth:`remove`, :meth:`pop_first` and
    :meth:`named`, which keep the index (see ``_INDEX_FROM``) in step with it.
    """

    __slots__ = (
        "adopted",
        "channel",
        "done_ids",
        "ended",
        "ends_with",
        "handles",
        "id",
        "index",
        "info",
        "lease",
        "listeners",
        "tracked",
    )

    def __init__(self, session_id: str, info: SessionInfo | None = None) -> None:
        self.id = session_id
        self.info = info
        self.channel: SessionChannel | None = None
        # A list, not a deque: it holds a task or two, and every waiting handle pays for its
        # session's containers (an empty deque costs 600 bytes).
        self.handles: list[Tracker] = []
        self.index: dict[str, list[Tracker]] | None = None  # see _INDEX_FROM
        self.done_ids: deque[str] | None = None  # recently final tasks, to drop stale events
        self.listeners: list[MemoryObjectSendStream[SessionEvent]] = []
        self.ended = False
        self.tracked = True  # terminated when the client closes
        self.lease: SessionLease | None = None  # the owner of its life, when this client has one
        self.ends_with: str | None = None  # a run-task session: it ends when this task does
        self.adopted = False  # looked after only because tasks in it were attached

    # -- the queue -------------------------------------------------------------------------------

    def add(self, handle: Tracker, *, first: bool = False) -> None:
        """Queue ``handle`` last (or ``first``: a task started before all the others)."""
        handle.queued = True
        if first:
            self.handles.insert(0, handle)
        else:
            self.handles.append(handle)
        index = self.index
        if index is not None:
            if handle.task_id is not None:
                same = index.setdefault(handle.task_id, [])
                if first:
                    same.insert(0, handle)
                else:
                    same.append(handle)
        elif len(self.handles) > _INDEX_FROM:
            index = self.index = {}
            for queued in self.handles:
                if queued.task_id is not None:
                    index.setdefault(queued.task_id, []).append(queued)

    def named(self, handle: Tracker) -> None:
        """``handle`` has just learnt its task id."""
        index = self.index
        if index is not None and handle.queued and handle.task_id is not None:
            same = index.setdefault(handle.task_id, [])
            same.append(handle)
            if len(same) > 1:  # rare: keep the queue's order among handles of one task
                order = {id(h): n for n, h in enumerate(self.handles)}
                same.sort(key=lambda h: order.get(id(h), -1))

    def remove(self, handle: Tracker) -> None:
        """Take ``handle`` out of the queue, wherever it is (no-op if it is not queued)."""
        if handle.queued:
            self.handles.remove(handle)
            self._unindex(handle)

    def pop_first(self) -> Tracker:
        """Take the oldest handle out of the queue."""
        handle = self.handles.pop(0)
        self._unindex(handle)
        return handle

    def _unindex(self, handle: Tracker) -> None:
        handle.queued = False
        index = self.index
        if index is None:
            return
        if not self.handles:
            self.index = None  # back to scanning until the queue grows again
        elif handle.task_id is not None and (same := index.get(handle.task_id)) is not None:
            for n, queued in enumerate(same):
                if queued is handle:
                    del same[n]
                    break
            if not same:
                del index[handle.task_id]

    def with_task(self, task_id: str) -> list[Tracker]:
        """The queued handles following task ``task_id``, in queue order."""
        index = self.index
        if index is not None:
            return list(index.get(task_id, ()))
        return [h for h in self.handles if h.task_id == task_id]

    def route(self, event: TaskStatus) -> list[Tracker]:
        """The handles a final (or guardrail) event belongs to (several may follow one task)."""
        if event.task_id:
            named = self.with_task(event.task_id)
            if named or (self.done_ids is not None and event.task_id in self.done_ids):
                return named  # none: a late event of a task already finished
        for handle in self.handles:
            if handle.task_id is None:
                return [handle]
        if not event.task_id and self.handles:
            return [self.handles[0]]
        return []

    def current(self) -> Tracker | None:
        """The handle of the task the server is running now (the first not known final)."""
        for handle in self.handles:
            if not handle.server_final:
                return handle
        return None

    def retire(self, leaving: list[Tracker]) -> list[Tracker]:
        """Drop the queued handles ``leaving`` and every handle before them from the queue;
        returns the dropped ones that were not known final (their events were missed: poll
        them)."""
        missed: list[Tracker] = []
        left = len(leaving)
        while left and self.handles:
            first = self.pop_first()
            if any(first is handle for handle in leaving):
                left -= 1
            elif not first.server_final:
                missed.append(first)
        return missed
