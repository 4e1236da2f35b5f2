"""The client's background machinery: its task group, its sessions, sockets, polls and budget.

Everything the client starts is registered here so that it can be followed while it runs and
ended when the client closes: sessions (terminated unless detached), their socket.io channels
(capped in number), the handles waiting on tasks (one shared poll scheduler), the requests that
create sessions (finished and reaped even if their caller went away), and the money spent.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from webrun_async._core.codec import decoder, encode
from webrun_async._core.config import HOLD_SECONDS
from webrun_async._core.exceptions import (
    APIStatusError,
    BudgetExceeded,
    ClientClosedError,
    InvalidParameterError,
    SessionTerminated,
    UsageError,
)
from webrun_async._core.gate import FifoGate
from webrun_async._core.ratelimit import task_bucket
from webrun_async._core.results import decode_started_task, raise_for_outcome
from webrun_async._tasks.channel import SessionChannel
from webrun_async._tasks.handle import TaskHandle
from webrun_async._tasks.poller import TIMER_SLACK, Poller
from webrun_async.types.common import Ack
from webrun_async.types.events import (
    AgentThought,
    BrowserAction,
    ResponseUpdate,
    SessionEnded,
    SessionEvent,
)
from webrun_async.types.sessions import (
    NewTask,
    SendMessageRequest,
    SessionInfo,
    StartSessionRequest,
    StateChange,
)
from webrun_async.types.tasks import (
    TaskFailure,
    TaskGuardrail,
    TaskRef,
    TaskResult,
    TaskStatus,
    TaskTerminated,
)

if TYPE_CHECKING:
    from webrun_async._client import AsyncWebRun
    from webrun_async._core.params import OutputSpec
    from webrun_async._core.transport import Transport
    from webrun_async._tasks.handle import GuardrailCallback
    from webrun_async.types.sessions import SessionMessage

__all__ = ["FollowMode", "Runtime", "RuntimeOptions", "SessionState"]

logger = logging.getLogger("webrun_async")

R = TypeVar("R")

FollowMode = Literal["auto", "socket", "poll"]
"""How handles learn about their tasks.

``auto``: a socket per session while fewer than ``max_sockets`` are open, with a slow safety-net
poll; polling every 2-3 s otherwise. ``socket``: a socket for every session whatever the cap, and
no polling while it is connected. ``poll``: no sockets; polling every 2-3 s.
"""

_TERMINATE = StateChange(new_state="terminate")
_TERMINATE_RETRIES = 8
_STOP = StateChange(new_state="stop")
START_SESSION = "POST /start/start-session"
SEND_MESSAGE = "POST /start/send-message"


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """The client options the runtime works by (see :class:`~webrun_async.AsyncWebRun`)."""

    mode: FollowMode = "auto"
    max_sockets: int = 500
    max_sessions: int | None = None
    max_cost: float | None = None
    on_guardrail: GuardrailCallback | None = None
    poll_interval: float = 2.0
    safety_poll_interval: float = 30.0
    socket_connect_timeout: float = 5.0
    socket_reconnect_attempts: int = 5
    cleanup_timeout: float = 15.0


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
        "handles",
        "id",
        "index",
        "info",
        "listeners",
        "slot",
        "tracked",
    )

    def __init__(self, session_id: str, info: SessionInfo | None = None) -> None:
        self.id = session_id
        self.info = info
        self.channel: SessionChannel | None = None
        # A list, not a deque: it holds a task or two, and every waiting handle pays for its
        # session's containers (an empty deque costs 600 bytes).
        self.handles: list[TaskHandle[Any]] = []
        self.index: dict[str, list[TaskHandle[Any]]] | None = None  # see _INDEX_FROM
        self.done_ids: deque[str] | None = None  # recently final tasks, to drop stale events
        self.listeners: list[MemoryObjectSendStream[SessionEvent]] = []
        self.ended = False
        self.tracked = True  # terminated when the client closes
        self.slot = False  # holds a place under max_sessions
        self.adopted = False  # looked after only because tasks in it were attached

    # -- the queue -------------------------------------------------------------------------------

    def add(self, handle: TaskHandle[Any], *, first: bool = False) -> None:
        """Queue ``handle`` last (or ``first``: a task started before all the others)."""
        handle._queued = True
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

    def named(self, handle: TaskHandle[Any]) -> None:
        """``handle`` has just learnt its task id."""
        index = self.index
        if index is not None and handle._queued and handle.task_id is not None:
            same = index.setdefault(handle.task_id, [])
            same.append(handle)
            if len(same) > 1:  # rare: keep the queue's order among handles of one task
                order = {id(h): n for n, h in enumerate(self.handles)}
                same.sort(key=lambda h: order.get(id(h), -1))

    def remove(self, handle: TaskHandle[Any]) -> None:
        """Take ``handle`` out of the queue, wherever it is (no-op if it is not queued)."""
        if handle._queued:
            self.handles.remove(handle)
            self._unindex(handle)

    def pop_first(self) -> TaskHandle[Any]:
        """Take the oldest handle out of the queue."""
        handle = self.handles.pop(0)
        self._unindex(handle)
        return handle

    def _unindex(self, handle: TaskHandle[Any]) -> None:
        handle._queued = False
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

    def with_task(self, task_id: str) -> list[TaskHandle[Any]]:
        """The queued handles following task ``task_id``, in queue order."""
        index = self.index
        if index is not None:
            return list(index.get(task_id, ()))
        return [h for h in self.handles if h.task_id == task_id]

    def route(self, event: TaskStatus) -> list[TaskHandle[Any]]:
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

    def current(self) -> TaskHandle[Any] | None:
        """The handle of the task the server is running now (the first not known final)."""
        for handle in self.handles:
            if not handle._server_final:
                return handle
        return None

    def retire(self, leaving: list[TaskHandle[Any]]) -> list[TaskHandle[Any]]:
        """Drop the queued handles ``leaving`` and every handle before them from the queue;
        returns the dropped ones that were not known final (their events were missed: poll
        them)."""
        missed: list[TaskHandle[Any]] = []
        left = len(leaving)
        while left and self.handles:
            first = self.pop_first()
            if any(first is handle for handle in leaving):
                left -= 1
            elif not first._server_final:
                missed.append(first)
        return missed


class Runtime:
    """Runs a client's background work; see the module docstring."""

    def __init__(self, client: AsyncWebRun, transport: Transport, options: RuntimeOptions):
        self.client = client
        self.transport = transport
        self.options = options
        self.sessions: dict[str, SessionState] = {}
        self.poller = Poller(self, transport.max_connections)
        self.spent = 0.0
        self._over_budget = False
        self._handles: set[TaskHandle[Any]] = set()
        self._session_gate = FifoGate(options.max_sessions) if options.max_sessions else None
        self._sockets_open = 0
        self._loose: set[asyncio.Future[Any]] = set()
        self._tg: TaskGroup | None = None
        self._runner: asyncio.Task[None] | None = None
        self._pending: list[tuple[Callable[..., Awaitable[Any]], tuple[Any, ...]]] = []
        self._stop: asyncio.Event | None = None
        self._closing = False

    # -- the task group ------------------------------------------------------------------------

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any, if_open: bool = False) -> None:
        """Run ``fn(*args)`` in the client's task group (started on first use).

        Work that only matters while the client is open (``if_open=True``: stopping a task,
        answering a guardrail) is dropped once it is closing: closing ends every session.

        Raises:
            ClientClosedError: The client is closing or closed (unless ``if_open``).
        """
        if self._closing:
            if if_open:
                return
            raise ClientClosedError("the client is closed; create a new AsyncWebRun")
        if self._tg is not None:
            self._tg.start_soon(self._guarded, fn, *args)
            return
        self._pending.append((fn, args))
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for fn, args in self._pending:
                tg.start_soon(self._guarded, fn, *args)
            self._pending.clear()
            await self._stop.wait()
            tg.cancel_scope.cancel()
        self._tg = None

    @staticmethod
    async def _guarded(fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        # One failing piece of background work must not cancel all the others.
        try:
            await fn(*args)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception:
            logger.exception("background work failed")

    # -- handles ---------------------------------------------------------------------------------

    def new_handle(
        self,
        spec: OutputSpec,
        *,
        one_shot: bool,
        max_duration: float,
        max_cost: object = None,
        on_guardrail: object = None,
    ) -> TaskHandle[Any]:
        """A handle this runtime follows, its options checked (the client's callback by
        default).

        Raises:
            InvalidParameterError: A bad ``max_cost`` or ``on_guardrail``.
            BudgetExceeded: The client's ``max_cost`` is spent.
            ClientClosedError: The client is closed.
        """
        if max_cost is not None and (
            isinstance(max_cost, bool) or not isinstance(max_cost, int | float) or max_cost <= 0
        ):
            raise InvalidParameterError(
                "max_cost", f"must be a positive number of USD, got {max_cost!r}"
            )
        if on_guardrail is not None and not callable(on_guardrail):
            raise InvalidParameterError("on_guardrail", "must be an async callable")
        handle: TaskHandle[Any] = TaskHandle(
            self,
            spec,
            one_shot=one_shot,
            max_duration=max_duration,
            max_cost=None if max_cost is None else float(max_cost),
            on_guardrail=on_guardrail or self.options.on_guardrail,
        )
        self._adopt(handle)
        return handle

    def _adopt(self, handle: TaskHandle[Any]) -> None:
        """Follow a new handle (refusing it when the client is closed or over budget)."""
        if self._closing:
            raise ClientClosedError("the client is closed; create a new AsyncWebRun")
        limit = self.options.max_cost
        if limit is not None and self.spent >= limit:
            raise BudgetExceeded(
                f"the client's max_cost of ${limit:g} is spent (${self.spent:.4f}); "
                "no new task was started",
                limit=limit,
                spent=self.spent,
            )
        self._handles.add(handle)

    def handle_settled(self, handle: TaskHandle[Any]) -> None:
        """A handle has its outcome: stop polling it, and end what ended with it."""
        self._handles.discard(handle)
        self.poller.unschedule(handle)
        state = handle._state
        if state is None:
            return
        if handle.task_id:
            if state.done_ids is None:
                state.done_ids = deque(maxlen=64)
            state.done_ids.append(handle.task_id)
        channel = state.channel
        pushing = channel is not None and channel.connected
        if handle._server_final and not pushing and handle._queued:
            state.remove(handle)  # with a socket, its final event retires it
            self._promote(state)
        if handle._one_shot and handle._server_final and not state.ended:
            # A one-shot task ends its session with it (terminateOnCompletion), or was
            # terminated with it.
            self.session_gone(state)

    def _promote(self, state: SessionState) -> None:
        # The next task now runs on the server; stop it if it was cancelled while queued.
        current = state.current()
        if current is not None and current._cancel_pending:
            current._cancel_pending = False
            self.spawn(self._stop_current, state, if_open=True)

    async def _stop_current(self, state: SessionState) -> None:
        await self.cleanup(self.send_control(state, _STOP), f"stopping a task in {state.id}")

    @staticmethod
    def outcome(answer: TaskStatus, spec: OutputSpec) -> TaskResult[Any]:
        """The result of a final answer, or raise the error it stands for."""
        return raise_for_outcome(answer, spec, responder=None)

    def schedule_next(self, handle: TaskHandle[Any]) -> None:
        """Schedule the handle's next poll from its socket's health, budget and deadline."""
        if handle._settled_for_good or handle.task_id is None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = handle._deadline
        if deadline is not None and now >= deadline - TIMER_SLACK:  # the poller may be early
            handle._time_out()
            return
        options = self.options
        interval = options.poll_interval * (1.0 + random.random() / 2)  # 2-3 s, spread out
        channel = handle._state.channel if handle._state is not None else None
        needs_usage = handle._max_cost is not None or options.max_cost is not None
        if channel is not None and channel.connected and not needs_usage:
            interval = options.safety_poll_interval
            if options.mode == "socket" and deadline is not None:
                interval = deadline - now  # pure push: poll only to enforce the deadline
        if deadline is not None:
            interval = min(interval, deadline - now)
        self.poller.schedule(handle, interval)

    # -- money -----------------------------------------------------------------------------------

    def add_spend(self, amount: float) -> None:
        """Count spending seen on a handle; past the client's max_cost, stop all work."""
        if amount <= 0:
            return
        self.spent += amount
        limit = self.options.max_cost
        if limit is not None and self.spent > limit and not self._over_budget:
            self._over_budget = True
            logger.warning(
                "client max_cost $%g crossed ($%.4f): stopping all tasks", limit, self.spent
            )
            for handle in list(self._handles):
                handle._over_budget("client", limit, self.spent)

    # -- sessions --------------------------------------------------------------------------------

    def register(self, session_id: str, info: SessionInfo | None = None) -> SessionState:
        """Track a session (it will be terminated when the client closes)."""
        state = self.sessions.get(session_id)
        if state is None:
            state = self.sessions[session_id] = SessionState(session_id, info)
        return state

    async def acquire_slot(self) -> None:
        """Wait (in arrival order) for a place under ``max_sessions``."""
        if self._session_gate is not None:
            await self._session_gate.acquire()

    def release_slot(self) -> None:
        """Give back a place under ``max_sessions``."""
        if self._session_gate is not None:
            self._session_gate.release()

    async def start_session(self, request: StartSessionRequest, *, slot: bool) -> SessionState:
        """Start a session and register it; cancelling the caller cannot leak it."""

        async def start() -> SessionState:
            info = await self.transport.request(
                "POST",
                "/start/start-session",
                _decode_info,
                body=encode(request),
                bucket=task_bucket(START_SESSION),
            )
            state = self.register(info.session_id, info)
            state.slot = slot
            return state

        return await self.create_safely(start(), lambda state: state.id)

    def detach_session(self, state: SessionState) -> None:
        """Stop looking after a session: it keeps running when the client closes."""
        state.tracked = False
        self.sessions.pop(state.id, None)
        self._close_channel(state)
        for listener in state.listeners:
            listener.close()
        state.listeners.clear()
        if state.slot:
            state.slot = False
            self.release_slot()
        logger.info("session %s detached; it keeps running (and costing)", state.id)

    def session_gone(self, state: SessionState) -> None:
        """The session has ended: release its place and socket, let its listeners finish."""
        if state.ended:
            return
        state.ended = True
        if self.sessions.get(state.id) is state:
            del self.sessions[state.id]
        if state.slot:
            state.slot = False
            self.release_slot()
        self._close_channel(state)
        for listener in state.listeners:
            listener.close()
        state.listeners.clear()
        for handle in state.handles:
            if not handle._settled_for_good and handle.task_id is not None:
                self.poller.schedule(handle, 0)  # learn how its task ended

    async def end_session(self, session_id: str) -> None:
        """Terminate a session (over its socket when connected, else REST); no-op if ended."""
        state = self.sessions.get(session_id)
        if state is None or state.ended:
            return
        channel = state.channel
        confirmed = False
        if channel is not None and channel.connected:
            wait = min(3.0, self.options.cleanup_timeout / 3)
            confirmed = await channel.terminate(_TERMINATE, wait)
        if not confirmed:
            try:
                # Clean-up skips the client-side rate limiter: leaving a session running is
                # worse than one request over the budget, which the server may still refuse.
                # Terminating twice is harmless, so it is retried like a GET, and more
                # persistently than other requests (within cleanup_timeout when closing).
                await self.transport.request(
                    "POST",
                    "/start/send-message",
                    _decode_ack,
                    body=encode(SendMessageRequest(session_id=session_id, message=_TERMINATE)),
                    idempotent=True,
                    min_retries=_TERMINATE_RETRIES,
                )
            except APIStatusError as exc:
                if exc.status not in (401, 404):  # 401/404: the session is already gone
                    raise
        self.session_gone(state)
        logger.debug("terminated session %s", session_id)

    async def create_safely(
        self, request: Coroutine[Any, Any, R], session_of: Callable[[R], str | None]
    ) -> R:
        """Await a request that creates a session so that cancelling the caller cannot leak it.

        The request runs in a task of its own. If the caller is cancelled before the answer
        arrives, the request is left to finish and the session it created is terminated then;
        closing the client waits for that (within ``cleanup_timeout``).
        """
        task = asyncio.ensure_future(request)
        try:
            return await asyncio.shield(task)
        except BaseException:
            if not task.done():
                self._loose.add(task)
                task.add_done_callback(functools.partial(self._orphan_done, session_of))
            raise

    def _orphan_done(
        self, session_of: Callable[[Any], str | None], task: asyncio.Task[Any]
    ) -> None:
        self._loose.discard(task)
        if task.cancelled() or task.exception() is not None:
            return
        session_id = session_of(task.result())
        if session_id is not None:
            reaper = asyncio.ensure_future(
                self.cleanup(self.end_session(session_id), f"reaping session {session_id}")
            )
            self._loose.add(reaper)
            reaper.add_done_callback(self._loose.discard)

    async def cleanup(self, work: Awaitable[object], what: str) -> None:
        """Run clean-up shielded from cancellation, bounded in time, logging (not raising)."""
        with anyio.CancelScope(shield=True):
            try:
                with anyio.fail_after(self.options.cleanup_timeout):
                    await work
            except Exception as exc:
                logger.error("clean-up failed while %s: %s", what, exc)

    # -- sockets and control ---------------------------------------------------------------------

    async def ensure_channel(self, state: SessionState) -> SessionChannel | None:
        """Connect the session's socket if the mode and the cap allow; ``None`` means poll."""
        options = self.options
        if state.channel is not None or state.ended or options.mode == "poll":
            return state.channel
        if options.mode == "auto" and self._sockets_open >= options.max_sockets:
            return None
        url = (state.info.socket_url if state.info is not None else None) or self.transport.base_url
        channel = SessionChannel(self, state, url)
        state.channel = channel
        self._sockets_open += 1
        if not await channel.connect(options.socket_connect_timeout):
            if state.channel is channel:
                state.channel = None
                self._sockets_open -= 1
            return None
        return channel

    def _close_channel(self, state: SessionState) -> None:
        channel, state.channel = state.channel, None
        if channel is not None:
            self._sockets_open -= 1
            closer = asyncio.ensure_future(channel.close())
            self._loose.add(closer)
            closer.add_done_callback(self._loose.discard)

    def socket_up(self, state: SessionState, reconnected: bool) -> None:
        """A session's socket (re)connected: after a gap, poll to catch what was missed."""
        if reconnected:
            # Final events sent during the gap are lost: known-final handles leave the queue.
            while state.handles and state.handles[0]._server_final:
                state.pop_first()
            for handle in state.handles:
                if not handle._settled_for_good and handle.task_id is not None:
                    self.poller.schedule(handle, 0)

    def socket_refused(self, state: SessionState) -> None:
        """The server refused the socket back: poll now to learn what became of the tasks."""
        for handle in state.handles:
            if not handle._settled_for_good and handle.task_id is not None:
                self.poller.schedule(handle, 0)

    def socket_down(self, state: SessionState) -> None:
        """A session's socket dropped: poll at the normal pace until it is back."""
        for handle in state.handles:
            if not handle._settled_for_good and handle.task_id is not None:
                self.schedule_next(handle)

    def dispatch(self, state: SessionState, event: SessionEvent) -> None:
        """Route one pushed event to the handle it belongs to and to the session's listeners."""
        if isinstance(event, TaskResult | TaskFailure | TaskTerminated | TaskGuardrail):
            handles = state.route(event)
            now = asyncio.get_running_loop().time()
            for handle in handles:
                handle._offer(event, now)  # no-op once settled
            if handles and event.terminal:
                for handle in handles:
                    handle._server_final = True
                for missed in state.retire(handles):
                    if missed not in handles:
                        self.poller.schedule(missed, 0)
                self._promote(state)
        elif isinstance(event, AgentThought | BrowserAction | ResponseUpdate) and state.handles:
            state.handles[0]._progress(event)
        for listener in list(state.listeners):
            try:
                listener.send_nowait(event)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                state.listeners.remove(listener)  # that reader went away
                listener.close()
        if isinstance(event, SessionEnded):
            self.session_gone(state)

    async def post_message(self, session_id: str, message: SessionMessage) -> TaskStatus | Ack:
        """``POST /start/send-message``: a newTask is held and answers with the task's state."""
        body = encode(SendMessageRequest(session_id=session_id, message=message))
        bucket = task_bucket(SEND_MESSAGE)
        try:
            if isinstance(message, NewTask):
                return await self.transport.request(
                    "POST",
                    "/start/send-message",
                    lambda data: decode_started_task(data, session_id),
                    body=body,
                    read_timeout=self.transport.timeouts.read_for(HOLD_SECONDS),
                    bucket=bucket,
                )
            return await self.transport.request(
                "POST", "/start/send-message", _decode_ack, body=body, bucket=bucket
            )
        except APIStatusError as exc:
            state = self.sessions.get(session_id)
            if exc.status == 401 and state is not None:  # "Session not found": it is gone
                self.session_gone(state)
            raise

    async def send_control(self, state: SessionState, message: SessionMessage) -> None:
        """Send a control message over the socket when connected, else over REST."""
        channel = state.channel
        if channel is not None and channel.connected and await channel.emit(message):
            return
        await self.post_message(state.id, message)

    async def send_new_task(self, state: SessionState, message: NewTask) -> TaskStatus:
        """Start a task over REST: the answer names the task (and may carry its result)."""
        answer = await self.post_message(state.id, message)
        assert not isinstance(answer, Ack)
        return answer

    # -- following tasks -------------------------------------------------------------------------

    def enqueue(self, handle: TaskHandle[Any], state: SessionState, message: NewTask) -> None:
        """Start a handle's task in a known session (queued there behind any running task)."""
        handle._attach_to(state)
        state.add(handle)  # submission order is the order the server runs them
        self.spawn(handle._drive, message, None)

    def following(self, ref: TaskRef) -> TaskHandle[Any] | None:
        """The live handle already following the task ``ref`` names, if any."""
        state = self.sessions.get(ref.session_id)
        if state is not None:
            for handle in state.with_task(ref.task_id):
                if not handle._settled_for_good:
                    return handle
        return None

    def follow(self, handle: TaskHandle[Any], ref: TaskRef) -> None:
        """Follow an already running task: poll it now, and connect its session's socket."""
        adopted = ref.session_id not in self.sessions
        state = self.register(ref.session_id)
        state.adopted = state.adopted or adopted
        handle._attach_to(state)
        handle._named_as(ref.task_id)
        handle._status = "running"
        state.add(handle)
        handle._deadline = asyncio.get_running_loop().time() + handle._max_duration
        self.poller.schedule(handle, 0)
        if state.channel is None and self.options.mode != "poll":
            self.spawn(self.ensure_channel, state)

    def follow_initial(self, handle: TaskHandle[Any], state: SessionState) -> None:
        """Follow the initial task of a session just started."""
        handle._attach_to(state)
        state.add(handle, first=True)  # it was started before anything else
        handle._status = "running"
        handle._deadline = asyncio.get_running_loop().time() + handle._max_duration
        task_id = state.info.task_id if state.info is not None else None
        if task_id:
            handle._named_as(task_id)
            # It started before the socket connected: what it pushed meanwhile was missed.
            self.poller.schedule(handle, 0)
        elif state.channel is None:
            handle._fail(
                UsageError(
                    "the server did not name the initial task and no socket is open to follow "
                    "it; start tasks with session.submit() instead"
                )
            )

    # -- closing -----------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop background work, reap orphans, terminate tracked sessions, settle handles."""
        if self._closing:
            return
        self._closing = True
        timeout = self.options.cleanup_timeout
        with anyio.CancelScope(shield=True):
            await self.poller.aclose()
            if self._runner is not None and self._stop is not None:
                self._stop.set()
                await self._runner
            with anyio.move_on_after(timeout):
                while self._loose:
                    await asyncio.wait(set(self._loose))
            live = [s.id for s in self.sessions.values() if s.tracked and not s.ended]
            if live:
                with anyio.move_on_after(timeout):
                    async with anyio.create_task_group() as tg:
                        for session_id in live:
                            tg.start_soon(self.cleanup, self.end_session(session_id), "closing")
            left = [s.id for s in self.sessions.values() if s.tracked and not s.ended]
            if left:
                logger.error(
                    "could not confirm termination of %d session(s) within %.0f s: %s",
                    len(left),
                    timeout,
                    ", ".join(left),
                )
            for handle in list(self._handles):
                handle._settle(
                    SessionTerminated(
                        "the client closed before the task finished; its session was ended",
                        **handle._ids(),
                    ),
                    "terminated",
                )
            for state in list(self.sessions.values()):
                self._close_channel(state)
            while self._loose:
                await asyncio.wait(set(self._loose))

    def live_sessions(self) -> list[str]:
        """Sessions that will be terminated when the client closes."""
        return [s.id for s in self.sessions.values() if s.tracked and not s.ended]


_decode_ack = decoder(Ack)
_decode_info = decoder(SessionInfo)
