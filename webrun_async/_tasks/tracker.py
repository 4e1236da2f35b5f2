"""``Tracker``: what the client knows of one task it follows, and the race that settles it.

A tracker takes answers from the held request that started the task, from socket events and
from polls, in any order and any number; the first final one settles it and later ones are
ignored, so exactly one outcome is delivered. Status only moves forward. Trackers are the
task layer's view of a task; :class:`~webrun_async.TaskHandle` is the user's, and talks to its
tracker only. A tracker talks to the client's runtime through :class:`TrackerHost`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectSendStream

from webrun_async._core.backend import require_asyncio
from webrun_async._core.exceptions import (
    BudgetExceeded,
    GuardrailTriggered,
    OutputValidationError,
    TaskError,
    TaskFailed,
    TaskTimeoutError,
)
from webrun_async._core.params import OutputSpec
from webrun_async._core.results import raise_for_outcome
from webrun_async._tasks.work import retrieve
from webrun_async.types.common import Usage
from webrun_async.types.events import AgentThought, BrowserAction, ResponseUpdate, TaskEvent
from webrun_async.types.sessions import SessionMessage, StateChange
from webrun_async.types.tasks import (
    TaskFailure,
    TaskGuardrail,
    TaskResult,
    TaskStatus,
    TaskTerminated,
    TaskUnknownStatus,
)

if TYPE_CHECKING:
    from webrun_async._tasks.handle import TaskHandle
    from webrun_async._tasks.registry import SessionState

__all__ = ["DEADLINE_MARGIN", "GuardrailCallback", "TaskHandleStatus", "Tracker", "TrackerHost"]

logger = logging.getLogger("webrun_async")

GuardrailCallback = Callable[[TaskGuardrail], Awaitable[str | None]]
"""Answers a guardrail automatically: return the reply, or ``None`` to stop the task."""

TaskHandleStatus = Literal[
    "queued",
    "starting",
    "running",
    "guardrail",
    "completed",
    "failed",
    "terminated",
    "cancelled",
    "budget_exceeded",
    "timed_out",
    "detached",
    "error",
]
"""Where a :class:`~webrun_async.TaskHandle` stands (its ``status``); the last eight are final.

Not to be confused with :data:`webrun_async.types.TaskStatus`, the server's answers."""

STOP = StateChange(new_state="stop")
COMPUTE_USD_PER_SECOND = 0.02 / 60
"""The service's documented compute price ($0.02 a minute of session time): the floor of a
task's cost while the service reports none."""
DEADLINE_MARGIN = 10.0
"""Seconds a task may outlive its ``max_duration`` before the SDK stops it and raises
``TaskTimeoutError``: the service enforces ``max_duration`` itself, and this covers the time its
final answer takes to arrive."""
GUARDRAIL_RESUME_GRACE = 10.0  # seconds a just-answered prompt is not taken for a new one


class TrackerHost(Protocol):
    """What a tracker needs from the client's runtime."""

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any, if_open: bool = False) -> None:
        """Run ``fn(*args)`` in the client's background work."""
        ...

    async def cleanup(self, work: Awaitable[object], what: str) -> None:
        """Run clean-up shielded, bounded, logging failures."""
        ...

    def poll_in(self, tracker: Tracker, delay: float) -> None:
        """Poll the tracker's task in ``delay`` seconds."""
        ...

    def unschedule(self, tracker: Tracker) -> None:
        """Forget the tracker's pending poll."""
        ...

    def schedule_next(self, tracker: Tracker) -> None:
        """Schedule the next poll from the socket's health, budget and deadline."""
        ...

    def add_spend(self, amount: float) -> None:
        """Count money spent by a task."""
        ...

    def client_limit_crossed(self, amount: float) -> tuple[float, float] | None:
        """``(limit, total)`` if spending ``amount`` more crosses the client's ``max_cost``."""
        ...

    def watch_budget(self, tracker: Tracker) -> None:
        """Watch the cost floor of a task whose cost the service does not report yet."""
        ...

    def settled(self, tracker: Tracker) -> None:
        """The tracker has its outcome."""
        ...

    async def send_control(self, state: SessionState, message: SessionMessage) -> None:
        """Send a control message to a session."""
        ...

    async def end_session(self, state: SessionState) -> None:
        """Terminate a session."""
        ...


class Tracker:
    """The task layer's record of one followed task (see the module docstring)."""

    __slots__ = (
        "__weakref__",
        "callbacks",
        "cancel_pending",
        "deadline",
        "driver",
        "due",
        "echo_expected",
        "future",
        "guardrail",
        "guardrail_pushed",
        "history",
        "host",
        "max_cost",
        "max_duration",
        "named",
        "on_guardrail",
        "one_shot",
        "owner",
        "queued",
        "resumed_at",
        "server_final",
        "session",
        "session_id",
        "settled",
        "spec",
        "started_at",
        "status",
        "subscribers",
        "task_id",
        "usage",
        "warned",
    )

    def __init__(
        self,
        host: TrackerHost,
        spec: OutputSpec,
        *,
        one_shot: bool,
        max_duration: float,
        max_cost: float | None = None,
        on_guardrail: GuardrailCallback | None = None,
    ) -> None:
        self.host = host
        self.spec = spec
        self.one_shot = one_shot
        self.max_duration = max_duration
        self.max_cost = max_cost
        self.on_guardrail = on_guardrail
        self.future: asyncio.Future[TaskResult[Any]] = require_asyncio().create_future()
        self.future.add_done_callback(retrieve)
        self.owner: TaskHandle[Any]  # the user's face of it, set by TaskHandle
        self.session: SessionState | None = None
        self.session_id: str | None = None
        self.task_id: str | None = None
        self.status: TaskHandleStatus = "queued"
        self.usage = Usage()
        self.guardrail: TaskGuardrail | None = None
        self.guardrail_pushed = False  # the socket has delivered the pending prompt
        self.echo_expected = False  # an answered prompt the socket has yet to deliver
        self.settled = False
        self.server_final = False  # the server reported the task final (not just this tracker)
        self.queued = False  # in its session's queue (SessionState.handles)
        self.history: list[TaskEvent] | None = None
        self.subscribers: list[MemoryObjectSendStream[TaskEvent]] | None = None
        self.callbacks: list[Callable[[TaskHandle[Any]], None]] | None = None
        self.driver: anyio.CancelScope | None = None
        self.named: asyncio.Future[None] | None = None
        self.due: float | None = None  # when the poller next polls it (None: not scheduled)
        self.deadline: float | None = None
        self.started_at: float | None = None  # loop time the task was sent (or followed)
        self.resumed_at = -math.inf
        self.cancel_pending = False
        self.warned = False

    def ids(self) -> dict[str, Any]:
        """The ids errors carry."""
        return {"session_id": self.session_id, "task_id": self.task_id}

    def attach_to(self, state: SessionState) -> None:
        """The task runs (or will run) in ``state``'s session."""
        self.session = state
        self.session_id = state.id

    def named_as(self, task_id: str) -> None:
        """The server has named the task."""
        self.task_id = task_id
        if self.session is not None:
            self.session.named(self)
        if self.named is not None and not self.named.done():
            self.named.set_result(None)

    def deadline_from(self, now: float) -> float:
        """The deadline of the task if it starts now: its ``max_duration`` plus the margin."""
        return now + self.max_duration + DEADLINE_MARGIN

    def started(self, now: float) -> None:
        """The task was started (or is followed) from ``now``: its deadline runs."""
        self.deadline = self.deadline_from(now)
        if self.started_at is None:
            self.started_at = now
            self.host.watch_budget(self)

    def cost_floor(self, now: float) -> float:
        """The least the task has cost by ``now``: its reported cost, or its compute time."""
        if self.started_at is None or self.settled:
            return self.usage.cost
        return max(self.usage.cost, (now - self.started_at) * COMPUTE_USD_PER_SECOND)

    def fresh_future(self) -> None:
        """Replace a future that raised ``GuardrailTriggered``: the task goes on."""
        if self.future.done():
            self.future = asyncio.get_running_loop().create_future()
            self.future.add_done_callback(retrieve)

    # -- answers ---------------------------------------------------------------------------------

    def offer(self, answer: TaskStatus, observed: float, *, pushed: bool = False) -> None:
        """Take one answer (held request, poll, or socket event when ``pushed``) into account."""
        if self.settled:
            return
        if answer.task_id and self.task_id is None:
            self.named_as(answer.task_id)
        spent = 0.0
        usage = getattr(answer, "usage", None)
        if isinstance(usage, Usage) and usage.cost >= self.usage.cost:
            spent, self.usage = usage.cost - self.usage.cost, usage
        if answer.terminal:
            self._conclude(answer, spent)
            self.host.add_spend(spent)  # past the client's max_cost, the others stop
            return
        self.host.add_spend(spent)
        if isinstance(answer, TaskUnknownStatus) and not self.warned:
            self.warned = True
            logger.warning(
                "task %s answered an unknown status %r; following it until its deadline",
                self.task_id,
                answer.status,
            )
        if isinstance(answer, TaskGuardrail):
            self._guardrail_hit(answer, observed, pushed)
        else:
            if self.status == "starting":
                self.status = "running"
            if observed > self.resumed_at:
                self.resumed_at = -math.inf  # the reply was taken: a later prompt is new
        if not self.settled and self.max_cost is not None and self.usage.cost > self.max_cost:
            self.over_budget("task", self.max_cost, self.usage.cost)

    def progress(self, event: AgentThought | BrowserAction | ResponseUpdate) -> None:
        """A progress event of the task."""
        if self.settled:
            return
        if self.status in ("starting", "queued"):
            self.status = "running"
        self.resumed_at = -math.inf  # the agent moved on: a new prompt is a new question
        self.push(event)

    def _guardrail_hit(self, prompt: TaskGuardrail, observed: float, pushed: bool) -> None:
        if self.guardrail is not None:
            self.guardrail_pushed = self.guardrail_pushed or pushed
            return  # already known
        if pushed and self.echo_expected:
            # The socket's copy of a prompt a poll showed first and that was answered since:
            # progress events pushed before it must not make it look like a new question.
            self.echo_expected = False
            return
        if observed < self.resumed_at + GUARDRAIL_RESUME_GRACE:
            return  # a stale view of the prompt just answered
        self.guardrail = prompt
        self.guardrail_pushed = pushed
        self.status = "guardrail"
        self.push(prompt)
        if self.on_guardrail is not None:
            self.host.spawn(self._answer_automatically, prompt, if_open=True)
        elif not self.future.done():
            # Nothing changes until somebody answers, but the deadline still holds.
            if self.deadline is None:
                self.host.unschedule(self)
            else:
                self.host.poll_in(self, self.deadline - asyncio.get_running_loop().time())
            exc = GuardrailTriggered(
                prompt.value,
                kind=prompt.kind,
                responder=self._answer,
                usage=self.usage,
                **self.ids(),
            )
            self.future.set_exception(exc)
            self.run_callbacks()

    async def _answer(self, text: str, stop: bool) -> None:
        await self.owner.respond(text, stop=stop)

    async def _answer_automatically(self, prompt: TaskGuardrail) -> None:
        callback = self.on_guardrail
        assert callback is not None
        try:
            reply = await callback(prompt)
        except Exception as exc:
            self.fail(exc)
            await self.stop_remote_cleanly()
            return
        if self.guardrail is prompt:
            await self.owner.respond(reply or "", stop=reply is None)

    def _conclude(self, answer: TaskStatus, spent: float) -> None:
        self.server_final = True
        if isinstance(answer, TaskResult | TaskFailure | TaskTerminated):
            if not answer.task_id:
                answer = msgspec.structs.replace(answer, task_id=self.task_id or "")
            self.push(answer)
        status: TaskHandleStatus
        try:
            result: TaskResult[Any] | BaseException = raise_for_outcome(
                answer, self.spec, responder=None
            )
            status = "completed"
        except OutputValidationError as exc:
            result, status = exc, "completed"
        except TaskFailed as exc:
            result, status = exc, "failed"
        except TaskError as exc:
            result, status = exc, "terminated"
        if isinstance(result, TaskResult):
            crossed = self._crossed(spent)
            if crossed is not None:
                # It finished inside the hold, before its cost could be seen: the work is
                # over, the limit was not kept; say so, with the result.
                scope, limit, total = crossed
                result = self._budget_error(scope, limit, total, result)
                status = "budget_exceeded"
        self.settle(result, status)

    def _crossed(self, spent: float) -> tuple[Literal["task", "client"], float, float] | None:
        if self.max_cost is not None and self.usage.cost > self.max_cost:
            return "task", self.max_cost, self.usage.cost
        client = self.host.client_limit_crossed(spent)
        return None if client is None else ("client", *client)

    def _budget_error(
        self,
        scope: Literal["task", "client"],
        limit: float,
        spent: float,
        result: TaskResult[Any] | None = None,
    ) -> BudgetExceeded:
        what = (
            "the task completed before its cost could be seen (within the service's 50 s "
            "hold); its result is on .result"
            if result is not None
            else "the work was stopped"
        )
        return BudgetExceeded(
            f"the {scope}'s max_cost of ${limit:g} was crossed (${spent:.4f} spent); {what}",
            limit=limit,
            spent=spent,
            usage=self.usage,
            result=result,
            **self.ids(),
        )

    def over_budget(self, scope: Literal["task", "client"], limit: float, spent: float) -> None:
        """A ``max_cost`` was crossed: settle, and stop the remote work."""
        if self.settled:
            return
        self.settle(self._budget_error(scope, limit, spent), "budget_exceeded")
        self.host.spawn(self.stop_remote_cleanly, if_open=True)

    def time_out(self) -> None:
        """The task outlived its deadline: settle, and stop the remote work."""
        exc = TaskTimeoutError(
            f"the task was still unfinished {self.max_duration:g} s after it started (its "
            f"max_duration; the SDK waited {DEADLINE_MARGIN:g} s more for its answer)",
            usage=self.usage,
            **self.ids(),
        )
        self.settle(exc, "timed_out")
        self.host.spawn(self.stop_remote_cleanly, if_open=True)

    def fail(self, exc: BaseException) -> None:
        """Settle with an error of the client's own (a failed request, say)."""
        self.settle(exc, "error")

    async def stop_remote_cleanly(self) -> None:
        """:meth:`stop_remote`, shielded and bounded, logging failures."""
        await self.host.cleanup(self.stop_remote(), f"stopping task {self.task_id}")

    async def stop_remote(self) -> None:
        """Stop the remote work: end a one-shot session, or stop a session's current task.

        A tracker settled locally stays in its session's queue until the server reports its
        task final, so its position tells whether its task is the one running. A one-shot
        session not created yet is ended by its lease when it is.
        """
        state = self.session
        if state is None or state.ended or self.server_final:
            return
        if self.one_shot:
            await self.host.end_session(state)
        elif state.current() is self:
            await self.host.send_control(state, STOP)
        elif self.queued:
            self.cancel_pending = True  # queued behind another task: stop it when it starts

    # -- settling ---------------------------------------------------------------------------------

    def settle(self, outcome: TaskResult[Any] | BaseException, status: TaskHandleStatus) -> None:
        """Give the tracker its final outcome, once."""
        if self.settled:
            return
        self.settled = True
        self.status = status
        self.guardrail = None
        self.fresh_future()
        if isinstance(outcome, BaseException):
            self.future.set_exception(outcome)
        else:
            self.future.set_result(outcome)
        if self.named is not None and not self.named.done():
            self.named.set_result(None)
        for send in self.subscribers or ():
            send.close()
        self.subscribers = None
        driver, self.driver = self.driver, None
        if driver is not None:
            driver.cancel()  # a loser of the race: its held request is no longer needed
        self.host.settled(self)
        self.run_callbacks()

    def run_callbacks(self) -> None:
        """Call the done-callbacks with the handle."""
        for callback in list(self.callbacks or ()):
            try:
                callback(self.owner)
            except Exception:
                logger.exception("a TaskHandle done-callback failed")

    def push(self, event: TaskEvent) -> None:
        """Record an event and hand it to every subscriber."""
        if self.history is None:
            self.history = []
        self.history.append(event)
        subscribers = self.subscribers
        if subscribers:
            for send in list(subscribers):
                try:
                    send.send_nowait(event)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    subscribers.remove(send)  # that reader went away
                    send.close()
