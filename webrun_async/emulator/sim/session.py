"""Sessions and tasks: their state, simulated clock, usage and event publication.

The objects here hold state only; `engine.Engine` drives them. Every state change of a task goes
through `Task.set_status` / `Task.set_paused`, which keeps the simulated clock, the hold waiters
and the wake-up event of the simulation coroutine consistent.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .directives import Directives
from .taskspec import SessionOptions, TaskSpec

__all__ = [
    "EmulatedSession",
    "EmulatedTaskStatus",
    "EmulatedUsage",
    "Listener",
    "SimClock",
    "Task",
]

logger = logging.getLogger("webrun_async.emulator")

Listener = Callable[[str, dict[str, Any]], None]
"""An event listener: called with the event name and its JSON-ready payload."""

# Simulated consumption per second of unpaused task time (counted in 10 ms ticks), and the
# documented prices.
TICKS_PER_SECOND = 100
PROMPT_TOKENS_PER_SECOND = 2000
COMPLETION_TOKENS_PER_SECOND = 500
PRICE_PER_PROMPT_TOKEN = 0.60 / 1_000_000
PRICE_PER_COMPLETION_TOKEN = 2.70 / 1_000_000
PRICE_PER_COMPUTE_SECOND = 0.02 / 60


class EmulatedTaskStatus(enum.StrEnum):
    """Where a task is in its life. Paused is a flag on a running task, not a status."""

    QUEUED = "queued"
    RUNNING = "running"
    GUARDRAIL = "guardrail"
    COMPLETED = "completed"
    FAILED = "failed"
    TERMINATED = "terminated"


FINAL_STATUSES = frozenset(
    {EmulatedTaskStatus.COMPLETED, EmulatedTaskStatus.FAILED, EmulatedTaskStatus.TERMINATED}
)
SETTLED_STATUSES = FINAL_STATUSES | {EmulatedTaskStatus.GUARDRAIL}


@dataclass(frozen=True, slots=True)
class EmulatedUsage:
    """Token, time and cost consumption of a task."""

    prompt_tokens: int
    completion_tokens: int
    completion_time: float
    cost: float

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def for_elapsed(cls, elapsed: float, spec: TaskSpec) -> EmulatedUsage:
        """Usage after `elapsed` unpaused seconds, tokens capped by the task's limits.

        Time is counted in whole ticks so that every field moves together: when the cost
        grows, so do the tokens and the completion time.
        """
        ticks = int(elapsed * TICKS_PER_SECOND + 1e-9)
        seconds = ticks / TICKS_PER_SECOND
        prompt = min(ticks * PROMPT_TOKENS_PER_SECOND // TICKS_PER_SECOND, spec.max_input_tokens)
        completion = min(
            ticks * COMPLETION_TOKENS_PER_SECOND // TICKS_PER_SECOND, spec.max_output_tokens
        )
        cost = (
            prompt * PRICE_PER_PROMPT_TOKEN
            + completion * PRICE_PER_COMPLETION_TOKEN
            + seconds * PRICE_PER_COMPUTE_SECOND
        )
        return cls(prompt, completion, round(seconds, 2), round(cost, 6))

    def canonical(self) -> dict[str, Any]:
        """The snake_case `usage` object of the current docs."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "completion_time": self.completion_time,
            "cost": self.cost,
        }

    def legacy(self) -> dict[str, Any]:
        """The camelCase `usage` object of the older docs."""
        return {
            "inputTokens": self.prompt_tokens,
            "outputTokens": self.completion_tokens,
            "computeTime": self.completion_time,
            "cost": self.cost,
        }


class SimClock:
    """Accumulates the unpaused time a task has run, on the event loop's clock."""

    __slots__ = ("_accumulated", "_since")

    def __init__(self) -> None:
        self._accumulated = 0.0
        self._since: float | None = None

    @property
    def running(self) -> bool:
        """Whether time is currently accruing."""
        return self._since is not None

    def run(self, now: float, running: bool) -> None:
        """Start or stop accruing time at loop time `now`."""
        if running and self._since is None:
            self._since = now
        elif not running and self._since is not None:
            self._accumulated += now - self._since
            self._since = None

    def elapsed(self, now: float) -> float:
        """Seconds accrued up to loop time `now`."""
        if self._since is None:
            return self._accumulated
        return self._accumulated + (now - self._since)


class Task:
    """One task of a session. Inspect it through `Emulator.state.tasks`."""

    def __init__(
        self, task_id: str, session: EmulatedSession, spec: TaskSpec, directives: Directives
    ) -> None:
        self.task_id = task_id
        self.session = session
        self.spec = spec
        self.directives = directives
        self.status = EmulatedTaskStatus.QUEUED
        self.paused = False
        self.clock = SimClock()
        self.guardrail_value: str | None = None
        # Replies to guardrails may carry credentials: stored for inspection, never logged.
        self.guardrail_replies: list[str] = []
        self.result: dict[str, Any] | None = None
        self.error: tuple[str, str] | None = None
        self.completed_at: float | None = None
        self.final_usage: EmulatedUsage | None = None
        self.runner: asyncio.Task[None] | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._change: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"<Task {self.session.session_id}/{self.task_id} {self.status.value}>"

    @property
    def settled(self) -> bool:
        """Whether a hold waiting on this task may answer (guardrail or final)."""
        return self.status in SETTLED_STATUSES

    @property
    def finished(self) -> bool:
        """Whether the task reached a final status."""
        return self.status in FINAL_STATUSES

    def usage(self, now: float) -> EmulatedUsage:
        """Usage so far, or the final usage once finished."""
        if self.final_usage is not None:
            return self.final_usage
        return EmulatedUsage.for_elapsed(self.clock.elapsed(now), self.spec)

    def set_status(self, status: EmulatedTaskStatus, now: float) -> None:
        """Move to `status`, keeping clock, waiters and the simulation in step."""
        self.status = status
        self._sync(now)
        if self.settled:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def set_paused(self, paused: bool, now: float) -> None:
        """Freeze or unfreeze the simulated clock (pause, takeOverControl)."""
        self.paused = paused
        self._sync(now)

    def refresh(self, now: float) -> None:
        """Re-evaluate whether time accrues after a change outside the task (lost instance)."""
        self._sync(now)

    def add_waiter(self, waiter: asyncio.Future[None]) -> None:
        """Resolve `waiter` when the task settles."""
        self._waiters.append(waiter)

    def discard_waiter(self, waiter: asyncio.Future[None]) -> None:
        """Forget a waiter that gave up."""
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    def change_event(self) -> asyncio.Event:
        """An event set at the next state change (the simulation waits on it)."""
        if self._change is None:
            self._change = asyncio.Event()
        return self._change

    def _sync(self, now: float) -> None:
        running = self.status is EmulatedTaskStatus.RUNNING and not self.paused
        self.clock.run(now, running and not self.session.orphaned)
        if self._change is not None:
            self._change.set()
            self._change = None


class EmulatedSession:
    """A browser session: its tasks, queue, activity and event listeners."""

    def __init__(
        self, session_id: str, options: SessionOptions, created_at: float, now: float
    ) -> None:
        self.session_id = session_id
        self.options = options
        self.created_at = created_at
        self.last_activity = now
        self.tasks: dict[str, Task] = {}
        self.queue: deque[Task] = deque()
        self.current: Task | None = None
        self.ended_at: float | None = None
        self.end_reason: str | None = None
        # Accepted manual interactions in order (TYPE text may be sensitive: never logged).
        self.interactions: list[dict[str, Any]] = []
        # The browser instance is disconnected and its grace period runs (docs: "Orphaned").
        self.orphaned = False
        self._listeners: list[Listener] = []

    def __repr__(self) -> str:
        return f"<Session {self.session_id} {'live' if self.live else self.end_reason}>"

    @property
    def live(self) -> bool:
        """Whether the session has not ended."""
        return self.end_reason is None

    @property
    def busy(self) -> bool:
        """Whether a task is actively running (running, not paused, instance connected)."""
        task = self.current
        return (
            task is not None
            and task.status is EmulatedTaskStatus.RUNNING
            and not task.paused
            and not self.orphaned
        )

    def set_orphaned(self, orphaned: bool, now: float) -> None:
        """Mark the instance lost (the current task's clock stops) or restored."""
        self.orphaned = orphaned
        if self.current is not None:
            self.current.refresh(now)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(event, payload)` for every event; returns the unsubscribe callable."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def publish(self, event: str, payload: dict[str, Any]) -> None:
        """Deliver an event to every listener; a failing listener is logged and skipped."""
        for listener in tuple(self._listeners):
            try:
                listener(event, payload)
            except Exception:
                logger.exception("event listener of session %s failed", self.session_id)

    def clear_listeners(self) -> None:
        """Drop every listener (after the session ended)."""
        self._listeners.clear()
