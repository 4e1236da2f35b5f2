"""One poll scheduler for every task a client follows.

A waiting tracker is an entry in a heap keyed by when it is next due; one task sleeps until the
earliest entry is due and starts that poll. A poll in flight is a short-lived task; a tracker
between polls costs its heap entry and nothing else. No more polls run at once than the pool
has connections: when thousands fall due together (tasks attached in bulk, a reconnect),
the rest wait in the heap, in due order, rather than as thousands of tasks queued at the pool.
Rescheduling pushes a new entry and leaves the old one to be skipped (an entry is current only
while it matches ``tracker.due``); once stale entries outnumber current ones the heap is rebuilt,
so that settled trackers never wait in it until their deadline.

The poller knows nothing of the API: it is given the function that fetches a task's state and
the function that schedules a tracker's next poll.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from webrun_async._core.exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
)
from webrun_async._tasks.tracker import Tracker
from webrun_async.types.tasks import TaskStatus

__all__ = ["TIMER_SLACK", "Fetch", "Pace", "Poller"]

Fetch = Callable[[str, str], Awaitable[TaskStatus]]
"""Fetches a task's state: ``await fetch(session_id, task_id)``."""

logger = logging.getLogger("webrun_async")


@dataclass(frozen=True, slots=True)
class Pace:
    """How often to poll (from the client's options)."""

    poll_interval: float = 2.0
    safety_poll_interval: float = 30.0
    push_only: bool = False  # mode="socket": no polling while the socket is up
    client_budget: bool = False  # a client-wide max_cost needs live usage


# Timers may fire up to a millisecond early (uvloop's, libuv's, have millisecond resolution):
# an entry this close to due counts as due, or the scheduler would wake again and again until
# the clock catches up (ten wake-ups per poll on uvloop, measured).
TIMER_SLACK = 0.001


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Poller:
    """Polls each scheduled tracker when it is due, never more than once at a time.

    Args:
        fetch: Gets a task's state.
        then: Schedules a tracker's next poll after an answer that did not settle it.
        limit: The most polls in flight at once (the pool's size).
    """

    __slots__ = (
        "_closed",
        "_fetch",
        "_heap",
        "_in_flight",
        "_limit",
        "_next",
        "_seq",
        "_stale",
        "_task",
        "_then",
        "_waiter",
    )

    def __init__(self, fetch: Fetch, then: Callable[[Tracker], None], limit: int) -> None:
        self._fetch = fetch
        self._then = then
        self._limit = limit
        self._stale = 0  # heap entries no longer current
        self._closed = False
        self._heap: list[tuple[float, int, Tracker]] = []
        self._seq = itertools.count()
        self._waiter: asyncio.Future[None] | None = None
        self._next = math.inf
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def size(self) -> int:
        """Entries in the heap, stale ones included (for tests and benchmarks)."""
        return len(self._heap)

    def schedule_next(self, tracker: Tracker, pace: Pace) -> None:
        """Schedule ``tracker``'s next poll: 2-3 s (``poll_interval`` plus jitter, so that polls
        spread out), the safety-net interval while its socket is up and no budget needs live
        usage, only its deadline in pure push mode; never past its deadline, where it times
        out instead."""
        now = asyncio.get_running_loop().time()
        deadline = tracker.deadline
        if deadline is not None and now >= deadline - TIMER_SLACK:  # timers may fire early
            tracker.time_out()
            return
        interval = pace.poll_interval * (1.0 + random.random() / 2)
        channel = tracker.session.channel if tracker.session is not None else None
        needs_usage = tracker.max_cost is not None or pace.client_budget
        if channel is not None and channel.connected and not needs_usage:
            interval = pace.safety_poll_interval
            if pace.push_only and deadline is not None:
                interval = deadline - now  # pure push: poll only to enforce the deadline
        if deadline is not None:
            interval = min(interval, deadline - now)
        self.schedule(tracker, interval)

    def schedule(self, tracker: Tracker, delay: float) -> None:
        """Poll ``tracker`` in ``delay`` seconds (replacing any earlier schedule); no-op once
        closed."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + max(delay, 0.0)
        if tracker.due is not None:
            self._forget()
        tracker.due = due
        heapq.heappush(self._heap, (due, next(self._seq), tracker))
        if self._task is None:
            self._task = loop.create_task(self._run())
        elif due < self._next and self._waiter is not None:
            _wake(self._waiter)

    def unschedule(self, tracker: Tracker) -> None:
        """Forget ``tracker``'s pending poll."""
        if tracker.due is not None:
            tracker.due = None
            self._forget()

    def _forget(self) -> None:
        # One more entry is stale; rebuild once they are the majority (amortised O(1)).
        self._stale += 1
        heap = self._heap
        if self._stale > 64 and self._stale * 2 > len(heap):
            heap[:] = [entry for entry in heap if entry[2].due == entry[0]]
            heapq.heapify(heap)
            self._stale = 0

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        heap = self._heap
        while True:
            while heap and heap[0][2].due != heap[0][0]:
                heapq.heappop(heap)  # rescheduled, unscheduled or finished since
                self._stale = max(self._stale - 1, 0)
            now = loop.time()
            due = bool(heap) and heap[0][0] <= now + TIMER_SLACK
            if due and len(self._in_flight) < self._limit:
                _, _, tracker = heapq.heappop(heap)
                tracker.due = None
                task = loop.create_task(self._poll(tracker))
                self._in_flight.add(task)
                task.add_done_callback(self._finished)
                continue
            self._waiter = waiter = loop.create_future()
            if due:  # every connection is polling: go on when a poll ends
                self._next, timer = -math.inf, None
            else:
                self._next = heap[0][0] if heap else math.inf
                timer = loop.call_at(self._next, _wake, waiter) if heap else None
            try:
                await waiter
            finally:
                if timer is not None:
                    timer.cancel()
                self._waiter = None

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._next == -math.inf and self._waiter is not None:
            _wake(self._waiter)

    async def _poll(self, tracker: Tracker) -> None:
        session_id, task_id = tracker.session_id, tracker.task_id
        if tracker.settled or task_id is None or session_id is None:
            return
        observed = asyncio.get_running_loop().time()
        try:
            state = await self._fetch(session_id, task_id)
        except APIStatusError as exc:
            if exc.status in (401, 403, 404):  # no such task, or no longer ours to see
                tracker.fail(exc)
                return
            logger.debug("poll of task %s failed: %s", task_id, exc)
        except (APIConnectionError, APIResponseValidationError) as exc:
            logger.debug("poll of task %s failed: %s", task_id, exc)
        except Exception as exc:  # a poll must never kill the scheduler
            tracker.fail(exc)
            return
        else:
            tracker.offer(state, observed)
        if not tracker.settled:
            self._then(tracker)

    async def aclose(self) -> None:
        """Stop scheduling (for good) and cancel polls in flight."""
        self._closed = True
        tasks = [t for t in (self._task, *self._in_flight) if t is not None]
        self._task = None
        self._heap.clear()
        self._stale = 0
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
