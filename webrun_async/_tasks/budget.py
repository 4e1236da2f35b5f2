"""``Budget``: the client's ``max_cost``, and every task's, kept in every window.

The service reports a task's cost once it has named the task: in the held request's answer
(up to 50 s after the start), in polls after that, and in the final answer. Inside the hold
nothing is reported, so the budget also watches a floor: the task's compute time at the
service's documented price ($0.02 a minute). A floor that crosses a limit stops the work; a
task that completes inside the hold above its limit raises ``BudgetExceeded`` with its result.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from webrun_async._tasks.poller import TIMER_SLACK
from webrun_async._tasks.tracker import COMPUTE_USD_PER_SECOND, Tracker

__all__ = ["Budget"]

logger = logging.getLogger("webrun_async")

WATCH_EVERY = 1.0
"""Seconds between two looks at the client-wide cost floor while tasks are in their hold."""


class Budget:
    """Money spent by a client's tasks, checked against the client's and each task's limit.

    Args:
        limit: The client's ``max_cost`` (``None``: no client-wide limit).
        live: The trackers still waiting for an outcome (stopped when the limit is crossed).
        closing: Whether the client is closing (watching stops then).
    """

    __slots__ = ("_closing", "_live", "_over", "_timer", "_watched", "limit", "spent")

    def __init__(
        self, limit: float | None, live: set[Tracker], closing: Callable[[], bool]
    ) -> None:
        self.limit = limit
        self.spent = 0.0
        self._live = live
        self._closing = closing
        self._over = False
        self._watched: set[Tracker] = set()  # budgeted tasks whose cost floor is watched
        self._timer: asyncio.TimerHandle | None = None

    @property
    def exhausted(self) -> bool:
        """Whether the client's limit was crossed (by reported cost or by the floor)."""
        return self._over or (self.limit is not None and self.spent >= self.limit)

    def add(self, amount: float) -> None:
        """Count spending seen on a task; past the client's limit, stop all work."""
        if amount <= 0:
            return
        self.spent += amount
        if self.limit is not None and self.spent > self.limit:
            self._stop_all(self.spent, "")

    def crossed(self, amount: float) -> tuple[float, float] | None:
        """``(limit, total)`` if spending ``amount`` more crosses the client's limit."""
        total = self.spent + amount
        return (self.limit, total) if self.limit is not None and total > self.limit else None

    def watch(self, tracker: Tracker) -> None:
        """Stop ``tracker``'s work once its cost floor crosses its own or the client's limit,
        for as long as the service reports no cost of it."""
        loop = asyncio.get_running_loop()
        if tracker.max_cost is not None and tracker.started_at is not None:
            when = tracker.started_at + tracker.max_cost / COMPUTE_USD_PER_SECOND
            loop.call_at(when + TIMER_SLACK, self._floor_crossed, tracker)
        if self.limit is not None:
            self._watched.add(tracker)
            if self._timer is None:
                self._timer = loop.call_later(WATCH_EVERY, self._client_floor)

    @staticmethod
    def _floor_crossed(tracker: Tracker) -> None:
        limit = tracker.max_cost
        if tracker.settled or limit is None:
            return
        floor = tracker.cost_floor(asyncio.get_running_loop().time())
        if floor > limit:
            tracker.over_budget("task", limit, floor)

    def _client_floor(self) -> None:
        self._timer = None
        self._watched = {t for t in self._watched if not t.settled}
        if self.limit is None or not self._watched or self._closing() or self._over:
            return
        now = asyncio.get_running_loop().time()
        unreported = sum(t.cost_floor(now) - t.usage.cost for t in self._watched)
        if self.spent + unreported > self.limit:
            self._stop_all(self.spent + unreported, " at least, by compute time")
            return
        self._timer = asyncio.get_running_loop().call_later(WATCH_EVERY, self._client_floor)

    def _stop_all(self, total: float, how: str) -> None:
        if self._over or self.limit is None:
            return
        self._over = True
        logger.warning(
            "client max_cost $%g crossed ($%.4f%s): stopping all tasks", self.limit, total, how
        )
        for tracker in list(self._live):
            tracker.over_budget("client", self.limit, total)
