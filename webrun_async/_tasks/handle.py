"""``TaskHandle``: a task running in the background, resolved by whichever answer comes first.

A handle is a future and a little state. Its result arrives from the held request that started
the task, from a socket.io event, or from a poll, whichever is first; later answers are
ignored, so exactly one result is delivered. Status only moves forward. The handle's work (the
driver) runs in the client's task group while the task is being started; afterwards a waiting
handle costs its future and one entry in the shared poll scheduler, nothing more.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectSendStream

from webrun_async._core.exceptions import (
    BudgetExceeded,
    GuardrailTriggered,
    OutputValidationError,
    SessionTerminated,
    TaskCancelled,
    TaskError,
    TaskFailed,
    TaskTimeoutError,
    UsageError,
)
from webrun_async._core.params import OutputSpec
from webrun_async.types.common import Usage
from webrun_async.types.events import AgentThought, BrowserAction, ResponseUpdate, TaskEvent
from webrun_async.types.sessions import GuardrailReply, NewTask, StartSessionRequest, StateChange
from webrun_async.types.tasks import (
    TaskFailure,
    TaskGuardrail,
    TaskRef,
    TaskResult,
    TaskStatus,
    TaskTerminated,
    TaskUnknownStatus,
)

if TYPE_CHECKING:
    from webrun_async._tasks.runtime import Runtime, SessionState

__all__ = ["GuardrailCallback", "TaskHandle", "TaskHandleStatus"]

logger = logging.getLogger("webrun_async")

T = TypeVar("T")

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
"""Where a handle stands; the last eight are final."""

_STOP = StateChange(new_state="stop")
_GUARDRAIL_RESUME_GRACE = 10.0  # seconds a just-answered prompt is not taken for a new one


def _retrieve(future: asyncio.Future[Any]) -> None:
    # A handle nobody awaits must not log "exception was never retrieved" when it fails.
    if not future.cancelled():
        future.exception()


class TaskHandle(Generic[T]):
    """A task running in the background. ``await handle`` for its result.

    Awaiting returns the :class:`~webrun_async.types.TaskResult` or raises
    :class:`~webrun_async.TaskFailed`, :class:`~webrun_async.GuardrailTriggered`,
    :class:`~webrun_async.SessionTerminated`, :class:`~webrun_async.BudgetExceeded`,
    :class:`~webrun_async.TaskTimeoutError` or :class:`~webrun_async.TaskCancelled`. Cancelling
    a caller that awaits a handle does not affect the handle: await it again later.

    Attributes:
        session_id: The task's session, once it exists.
        task_id: The task, once the server has named it.
    """

    __slots__ = (
        "__weakref__",
        "_callbacks",
        "_cancel_pending",
        "_deadline",
        "_driver",
        "_due",
        "_future",
        "_guardrail",
        "_history",
        "_max_cost",
        "_max_duration",
        "_named",
        "_on_guardrail",
        "_one_shot",
        "_queued",
        "_resumed_at",
        "_runtime",
        "_server_final",
        "_settled_for_good",
        "_spec",
        "_state",
        "_status",
        "_subscribers",
        "_usage",
        "_warned",
        "session_id",
        "task_id",
    )

    def __init__(
        self,
        runtime: Runtime,
        spec: OutputSpec,
        *,
        one_shot: bool,
        max_duration: float,
        max_cost: float | None = None,
        on_guardrail: GuardrailCallback | None = None,
    ) -> None:
        self._runtime = runtime
        self._spec = spec
        self._one_shot = one_shot
        self._max_duration = max_duration
        self._max_cost = max_cost
        self._on_guardrail = on_guardrail
        self._future: asyncio.Future[TaskResult[T]] = asyncio.get_running_loop().create_future()
        self._future.add_done_callback(_retrieve)
        self.session_id: str | None = None
        self.task_id: str | None = None
        self._state: SessionState | None = None
        self._status: TaskHandleStatus = "queued"
        self._usage = Usage()
        self._guardrail: TaskGuardrail | None = None
        self._settled_for_good = False
        self._server_final = False  # the server reported the task final (not just this handle)
        self._queued = False  # in its session's queue (SessionState.handles)
        self._history: list[TaskEvent] | None = None
        self._subscribers: list[MemoryObjectSendStream[TaskEvent]] | None = None
        self._callbacks: list[Callable[[TaskHandle[T]], None]] | None = None
        self._driver: anyio.CancelScope | None = None
        self._named: asyncio.Future[None] | None = None
        self._due: float | None = None
        self._deadline: float | None = None
        self._resumed_at = -math.inf
        self._cancel_pending = False
        self._warned = False

    def __repr__(self) -> str:
        return (
            f"TaskHandle(session_id={self.session_id!r}, task_id={self.task_id!r}, "
            f"status={self._status!r})"
        )

    def __await__(self) -> Generator[Any, None, TaskResult[T]]:
        # shield(): cancelling the awaiting caller must not cancel the handle's future.
        return asyncio.shield(self._future).__await__()

    # -- what users read ---------------------------------------------------------------------

    @property
    def status(self) -> TaskHandleStatus:
        """Where the task stands now."""
        return self._status

    @property
    def usage(self) -> Usage:
        """Tokens, time and cost so far (updated by polls and by the final answer)."""
        return self._usage

    @property
    def guardrail(self) -> TaskGuardrail | None:
        """The agent's pending question, while it waits for an answer."""
        return self._guardrail

    @property
    def final(self) -> bool:
        """Whether the handle has its final outcome."""
        return self._settled_for_good

    def done(self) -> bool:
        """Whether awaiting the handle would return (or raise) at once."""
        return self._future.done()

    def add_done_callback(self, callback: Callable[[TaskHandle[T]], None]) -> None:
        """Call ``callback(handle)`` each time the handle resolves (again after a guardrail)."""
        if self._future.done():
            callback(self)
        if self._callbacks is None:
            self._callbacks = []
        self._callbacks.append(callback)

    async def submitted(self) -> TaskRef:
        """Wait until the server has named the task; returns its reference.

        Raises:
            The handle's own error if it fails before the task is named.
        """
        while self.task_id is None or self.session_id is None:
            if self._settled_for_good:
                await self  # raises the handle's error
                break
            if self._named is None:
                self._named = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._named)
        assert self.session_id is not None
        assert self.task_id is not None
        return TaskRef(session_id=self.session_id, task_id=self.task_id)

    async def events(self) -> AsyncIterator[TaskEvent]:
        """The task's events: progress, then its final state; ends when the task does.

        Every subscriber sees every event from the start (they are kept by the handle).
        Progress events arrive over socket.io; without a socket only the final state does.
        """
        send, receive = anyio.create_memory_object_stream[TaskEvent](math.inf)
        for event in self._history or ():
            send.send_nowait(event)
        if self._settled_for_good:
            send.close()
        else:
            if self._subscribers is None:
                self._subscribers = []
            self._subscribers.append(send)
        async with receive:
            async for event in receive:
                yield event

    # -- what users do -------------------------------------------------------------------------

    async def respond(self, text: str, *, stop: bool = False) -> None:
        """Answer the agent's question so the task resumes (or stop it with ``stop=True``).

        Raises:
            UsageError: No question is waiting for an answer.
        """
        if self._guardrail is None or self._settled_for_good or self._state is None:
            raise UsageError("this task is not waiting for an answer")
        if not isinstance(text, str):
            raise UsageError("the answer must be a string")
        prompt, self._guardrail = self._guardrail, None
        self._resumed_at = asyncio.get_running_loop().time()
        reply = GuardrailReply(task_details=text, new_state="stop" if stop else "resume")
        try:
            await self._runtime.send_control(self._state, reply)
        except BaseException:
            self._guardrail = prompt  # not delivered: the question still stands
            raise
        if not self._settled_for_good:
            self._status = "running"
            if self._future.done():  # it raised GuardrailTriggered: wait for the outcome again
                self._future = asyncio.get_running_loop().create_future()
                self._future.add_done_callback(_retrieve)
            self._runtime.poller.schedule(self, 0.2)

    async def _answer(self, text: str, stop: bool) -> None:
        await self.respond(text, stop=stop)

    async def cancel(self) -> None:
        """Stop the task; awaiting the handle then raises :class:`~webrun_async.TaskCancelled`.

        A one-shot task's session is terminated; a task in a session is stopped and the session
        stays up (a task still queued behind another is stopped when its turn comes).
        """
        if self._settled_for_good:
            return
        self._settle(TaskCancelled("the task was cancelled", **self._ids()), "cancelled")
        await self._stop_remote_cleanly()

    async def terminate(self) -> None:
        """End the task's session now; awaiting then raises ``SessionTerminated``."""
        if not self._settled_for_good:
            self._settle(
                SessionTerminated("the session was terminated", **self._ids()), "terminated"
            )
        if self.session_id is not None:
            await self._runtime.cleanup(
                self._runtime.end_session(self.session_id), f"terminating {self.session_id}"
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
        if self.task_id is None or self.session_id is None:
            raise UsageError("the task has no id yet: await handle.submitted() first")
        ref = TaskRef(session_id=self.session_id, task_id=self.task_id)
        if not self._settled_for_good:
            state = self._state
            if state is not None and (self._one_shot or state.adopted):
                others = [h for h in state.handles if h is not self and not h._settled_for_good]
                if not others:
                    self._runtime.detach_session(state)
            detached = UsageError("this handle was detached; use client.tasks.attach()")
            self._settle(detached, "detached")
        return ref

    # -- the driver: starting the task ---------------------------------------------------------

    async def _drive(self, message: NewTask, session: StartSessionRequest | None) -> None:
        """Start the task: first its own session (``session`` given, one-shot), connect the
        session's socket, then send the task."""
        runtime = self._runtime
        with anyio.CancelScope() as scope:
            self._driver = scope
            try:
                if session is not None:
                    await runtime.acquire_slot()
                    try:
                        self._status = "starting"
                        started = await runtime.start_session(session, slot=True)
                    except BaseException:
                        runtime.release_slot()
                        raise
                    self._attach_to(started)
                    started.add(self)
                state = self._state
                assert state is not None
                self._status = "starting"
                await runtime.ensure_channel(state)
                await self._start_task(state, message)
            except anyio.get_cancelled_exc_class():
                raise
            except BaseException as exc:
                await self._failed_to_start(exc)
            finally:
                self._driver = None

    async def _start_task(self, state: SessionState, message: NewTask) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self._max_duration
        observed = loop.time()
        answer = await self._runtime.send_new_task(state, message)
        self._offer(answer, observed)
        if not self._settled_for_good:
            if self._status == "starting":
                self._status = "running"
            self._runtime.schedule_next(self)

    async def _failed_to_start(self, exc: BaseException) -> None:
        if isinstance(exc, Exception):
            self._fail(exc)
        if self._one_shot and self.session_id is not None:
            await self._runtime.cleanup(
                self._runtime.end_session(self.session_id), f"ending {self.session_id}"
            )

    def _attach_to(self, state: SessionState) -> None:
        self._state = state
        self.session_id = state.id

    # -- answers ---------------------------------------------------------------------------------

    def _offer(self, answer: TaskStatus, observed: float) -> None:
        """Take one answer (held request, poll or socket event) into account."""
        if self._settled_for_good:
            return
        if answer.task_id and self.task_id is None:
            self._named_as(answer.task_id)
        usage = getattr(answer, "usage", None)
        if isinstance(usage, Usage) and usage.cost >= self._usage.cost:
            spent, self._usage = usage.cost - self._usage.cost, usage
            self._runtime.add_spend(spent)
        if isinstance(answer, TaskUnknownStatus) and not self._warned:
            self._warned = True
            logger.warning(
                "task %s answered an unknown status %r; following it until its deadline",
                self.task_id,
                answer.status,
            )
        if answer.terminal:
            self._conclude(answer)
        elif isinstance(answer, TaskGuardrail):
            self._guardrail_hit(answer, observed)
        else:
            if self._status == "starting":
                self._status = "running"
            if observed > self._resumed_at:
                self._resumed_at = -math.inf  # the reply was taken: a later prompt is new
        if not self._settled_for_good:
            self._check_budget()

    def _progress(self, event: AgentThought | BrowserAction | ResponseUpdate) -> None:
        if self._settled_for_good:
            return
        if self._status in ("starting", "queued"):
            self._status = "running"
        self._resumed_at = -math.inf  # the agent moved on: a new prompt is a new question
        self._push(event)

    def _named_as(self, task_id: str) -> None:
        self.task_id = task_id
        if self._state is not None:
            self._state.named(self)
        if self._named is not None and not self._named.done():
            self._named.set_result(None)

    def _guardrail_hit(self, prompt: TaskGuardrail, observed: float) -> None:
        if self._guardrail is not None or observed < self._resumed_at + _GUARDRAIL_RESUME_GRACE:
            return  # already known, or a stale view of the prompt just answered
        self._guardrail = prompt
        self._status = "guardrail"
        self._push(prompt)
        if self._on_guardrail is not None:
            self._runtime.spawn(self._answer_automatically, prompt, if_open=True)
        elif not self._future.done():
            self._runtime.poller.unschedule(self)  # nothing changes until somebody answers
            exc = GuardrailTriggered(
                prompt.value,
                kind=prompt.kind,
                responder=self._answer,
                usage=self._usage,
                **self._ids(),
            )
            self._future.set_exception(exc)
            self._run_callbacks()

    async def _answer_automatically(self, prompt: TaskGuardrail) -> None:
        callback = self._on_guardrail
        assert callback is not None
        try:
            reply = await callback(prompt)
        except Exception as exc:
            self._fail(exc)
            await self._stop_remote_cleanly()
            return
        if self._guardrail is prompt:
            await self.respond(reply or "", stop=reply is None)

    def _conclude(self, answer: TaskStatus) -> None:
        self._server_final = True
        if isinstance(answer, TaskResult | TaskFailure | TaskTerminated):
            if not answer.task_id:
                answer = msgspec.structs.replace(answer, task_id=self.task_id or "")
            self._push(answer)
        status: TaskHandleStatus
        try:
            result: TaskResult[T] | BaseException = self._runtime.outcome(answer, self._spec)
            status = "completed"
        except OutputValidationError as exc:
            result, status = exc, "completed"
        except TaskFailed as exc:
            result, status = exc, "failed"
        except TaskError as exc:
            result, status = exc, "terminated"
        self._settle(result, status)

    def _check_budget(self) -> None:
        if self._max_cost is not None and self._usage.cost > self._max_cost:
            self._over_budget("task", self._max_cost, self._usage.cost)

    def _over_budget(self, scope: Literal["task", "client"], limit: float, spent: float) -> None:
        if self._settled_for_good:
            return
        exc = BudgetExceeded(
            f"the {scope}'s max_cost of ${limit:g} was crossed (${spent:.4f} spent); "
            "the work was stopped",
            limit=limit,
            spent=spent,
            usage=self._usage,
            **self._ids(),
        )
        self._settle(exc, "budget_exceeded")
        self._runtime.spawn(self._stop_remote_cleanly, if_open=True)

    def _time_out(self) -> None:
        exc = TaskTimeoutError(
            f"the task was still unfinished {self._max_duration:.0f} s after it started",
            usage=self._usage,
            **self._ids(),
        )
        self._settle(exc, "timed_out")
        self._runtime.spawn(self._stop_remote_cleanly, if_open=True)

    def _fail(self, exc: BaseException) -> None:
        self._settle(exc, "error")

    async def _stop_remote_cleanly(self) -> None:
        await self._runtime.cleanup(self._stop_remote(), f"stopping task {self.task_id}")

    async def _stop_remote(self) -> None:
        """Stop the remote work: end a one-shot session, or stop a session's current task.

        A handle settled locally stays in its session's queue until the server reports its
        task final, so its position tells whether its task is the one running.
        """
        state = self._state
        if state is None or state.ended or self._server_final:
            return
        if self._one_shot:
            await self._runtime.end_session(state.id)
        elif state.current() is self:
            await self._runtime.send_control(state, _STOP)
        elif self._queued:
            self._cancel_pending = True  # queued behind another task: stop it when it starts

    # -- settling ---------------------------------------------------------------------------------

    def _settle(self, outcome: TaskResult[T] | BaseException, status: TaskHandleStatus) -> None:
        """Give the handle its final outcome, once."""
        if self._settled_for_good:
            return
        self._settled_for_good = True
        self._status = status
        self._guardrail = None
        if self._future.done():  # it raised GuardrailTriggered earlier: replace that outcome
            self._future = asyncio.get_running_loop().create_future()
            self._future.add_done_callback(_retrieve)
        if isinstance(outcome, BaseException):
            self._future.set_exception(outcome)
        else:
            self._future.set_result(outcome)
        if self._named is not None and not self._named.done():
            self._named.set_result(None)
        for send in self._subscribers or ():
            send.close()
        self._subscribers = None
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.cancel()  # a loser of the race: its held request is no longer needed
        self._runtime.handle_settled(self)
        self._run_callbacks()

    def _run_callbacks(self) -> None:
        for callback in self._callbacks or ():
            try:
                callback(self)
            except Exception:
                logger.exception("a TaskHandle done-callback failed")

    def _push(self, event: TaskEvent) -> None:
        if self._history is None:
            self._history = []
        self._history.append(event)
        subscribers = self._subscribers
        if subscribers:
            for send in list(subscribers):
                try:
                    send.send_nowait(event)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    subscribers.remove(send)  # that reader went away
                    send.close()

    def _ids(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "task_id": self.task_id}
