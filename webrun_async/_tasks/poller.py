"""One poll scheduler for every handle of a client.

A waiting handle is an entry in a heap keyed by when it is next due; one task sleeps until the
earliest entry is due and starts that poll. A poll in flight is a short-lived task; a handle
between polls costs its heap entry and nothing else. No more polls run at once than the pool
has connections: when thousands fall due together (handles attached in bulk, a reconnect),
the rest wait in the heap, in due order, rather than as thousands of tasks queued at the pool.
Rescheduling pushes a new entry and leaves the old one to be skipped (an entry is current only
while it matches ``handle._due``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
from typing import TYPE_CHECKING, Any

from webrun_async._core.exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
)

if TYPE_CHECKING:
    from webrun_async._tasks.handle import TaskHandle
    from webrun_async._tasks.runtime import Runtime

__all__ = ["TIMER_SLACK", "Poller"]

logger = logging.getLogger("webrun_async")

# Timers may fire up to a millisecond early (uvloop's, libuv's, have millisecond resolution):
# an entry this close to due counts as due, or the scheduler would wake again and again until
# the clock catches up (ten wake-ups per poll on uvloop, measured).
TIMER_SLACK = 0.001


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Poller:
    """Polls each scheduled handle when it is due, never more than once at a time."""

    __slots__ = (
        "_heap",
        "_in_flight",
        "_limit",
        "_next",
        "_runtime",
        "_seq",
        "_task",
        "_waiter",
    )

    def __init__(self, runtime: Runtime, limit: int) -> None:
        self._runtime = runtime
        self._limit = limit
        self._heap: list[tuple[float, int, TaskHandle[Any]]] = []
        self._seq = itertools.count()
        self._waiter: asyncio.Future[None] | None = None
        self._next = math.inf
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    def schedule(self, handle: TaskHandle[Any], delay: float) -> None:
        """Poll ``handle`` in ``delay`` seconds (replacing any earlier schedule)."""
        loop = asyncio.get_running_loop()
        due = loop.time() + max(delay, 0.0)
        handle._due = due
        heapq.heappush(self._heap, (due, next(self._seq), handle))
        if self._task is None:
            self._task = loop.create_task(self._run())
        elif due < self._next and self._waiter is not None:
            _wake(self._waiter)

    def unschedule(self, handle: TaskHandle[Any]) -> None:
        """Forget ``handle``'s pending poll (its heap entry is skipped when reached)."""
        handle._due = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        heap = self._heap
        while True:
            while heap and heap[0][2]._due != heap[0][0]:
                heapq.heappop(heap)  # rescheduled, unscheduled or finished since
            now = loop.time()
            due = bool(heap) and heap[0][0] <= now + TIMER_SLACK
            if due and len(self._in_flight) < self._limit:
                _, _, handle = heapq.heappop(heap)
                handle._due = None
                task = loop.create_task(self._poll(handle))
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

    async def _poll(self, handle: TaskHandle[Any]) -> None:
        runtime = self._runtime
        if handle._settled_for_good or handle.task_id is None or handle.session_id is None:
            return
        observed = asyncio.get_running_loop().time()
        try:
            state = await runtime.client.tasks.get(handle.session_id, handle.task_id)
        except APIStatusError as exc:
            if exc.status in (401, 403, 404):  # no such task, or no longer ours to see
                handle._fail(exc)
                return
            logger.debug("poll of task %s failed: %s", handle.task_id, exc)
        except (APIConnectionError, APIResponseValidationError) as exc:
            logger.debug("poll of task %s failed: %s", handle.task_id, exc)
        except Exception as exc:  # a poll must never kill the scheduler
            handle._fail(exc)
            return
        else:
            handle._offer(state, observed)
        if not handle._settled_for_good:
            runtime.schedule_next(handle)

    async def aclose(self) -> None:
        """Stop scheduling and cancel polls in flight."""
        tasks = [t for t in (self._task, *self._in_flight) if t is not None]
        self._task = None
        self._heap.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
