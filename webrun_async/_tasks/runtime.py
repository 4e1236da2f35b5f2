"""The client's task machinery: its sessions, their leases and sockets, polls and budget.

Everything the client starts is registered here so that it can be followed while it runs and
ended when the client closes: sessions (each owned by a :class:`SessionLease`, terminated
unless detached), their socket.io channels (capped in number), the trackers of the tasks it
follows (one shared poll scheduler), and the money spent. It is the host every tracker, lease
and channel talks to through their Protocols; the endpoint calls live in ``_api.calls``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from webrun_async._api import calls
from webrun_async._core.exceptions import (
    APIConnectionError,
    APIStatusError,
    BudgetExceeded,
    ClientClosedError,
    SessionTerminated,
)
from webrun_async._core.gate import FifoGate
from webrun_async._core.params import OutputSpec, check_budget_options
from webrun_async._core.transport import Transport
from webrun_async._tasks.budget import Budget
from webrun_async._tasks.channel import Channels, SessionChannel
from webrun_async._tasks.handle import TaskHandle
from webrun_async._tasks.lease import SessionLease
from webrun_async._tasks.options import FollowMode, RuntimeOptions
from webrun_async._tasks.poller import Pace, Poller
from webrun_async._tasks.push import PushRouter, poll_unsettled
from webrun_async._tasks.registry import SessionState
from webrun_async._tasks.tracker import STOP, GuardrailCallback, Tracker
from webrun_async._tasks.work import BackgroundWork, describe, uncancellable
from webrun_async.types.common import Ack
from webrun_async.types.events import (
    SessionEvent,
)
from webrun_async.types.sessions import NewTask, SessionInfo, SessionMessage, StateChange
from webrun_async.types.tasks import (
    TaskRef,
    TaskStatus,
)

__all__ = ["FollowMode", "Runtime", "RuntimeOptions"]  # the options re-exported for the client

R = TypeVar("R")

logger = logging.getLogger("webrun_async")

_TERMINATE = StateChange(new_state="terminate")


class Runtime:
    """Runs a client's task machinery; see the module docstring."""

    def __init__(self, transport: Transport, options: RuntimeOptions) -> None:
        self.transport = transport
        self.options = options
        self.sessions: dict[str, SessionState] = {}
        self.work = BackgroundWork(options.cleanup_timeout)
        self._pace = Pace(
            poll_interval=options.poll_interval,
            safety_poll_interval=options.safety_poll_interval,
            push_only=options.mode == "socket",
            client_budget=options.max_cost is not None,
        )
        self.poller = Poller(self.fetch, self.schedule_next, transport.max_connections)
        self._trackers: set[Tracker] = set()
        self.budget = Budget(options.max_cost, self._trackers, lambda: self.work.closing)
        self.session_gate = FifoGate(options.max_sessions) if options.max_sessions else None
        self.router = PushRouter(self)
        self.channels = Channels(self.router, transport, options, self.work)

    # -- background work (the TrackerHost and LeaseHost verbs) -----------------------------------

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any, if_open: bool = False) -> None:
        """Run ``fn(*args)`` in the client's task group (see :meth:`BackgroundWork.spawn`)."""
        self.work.spawn(fn, *args, if_open=if_open)

    async def cleanup(self, work: Awaitable[object], what: str) -> None:
        """Run clean-up shielded from cancellation, bounded in time, logging (not raising)."""
        await self.work.cleanup(work, what)

    def track(self, work: Coroutine[Any, Any, R]) -> asyncio.Future[R]:
        """Run ``work`` in a task that cannot be cancelled and that closing waits for."""
        return self.work.track(work)

    def reap(self, state: SessionState, why: str) -> None:
        """End a session in the background; closing the client waits for it."""
        self.work.track(self.cleanup(self.end_session(state), f"ending session {state.id} ({why})"))

    # -- handles ---------------------------------------------------------------------------------

    def new_tracker(
        self,
        spec: OutputSpec,
        *,
        one_shot: bool,
        max_duration: float,
        max_cost: float | None = None,
        on_guardrail: GuardrailCallback | None = None,
    ) -> Tracker:
        """A tracker (and its :class:`TaskHandle`, ``tracker.owner``) this runtime follows,
        its options checked (the client's guardrail callback by default).

        Raises:
            InvalidParameterError: A bad ``max_cost`` or ``on_guardrail``.
            BudgetExceeded: The client's ``max_cost`` is spent.
            ClientClosedError: The client is closed.
        """
        check_budget_options(max_cost, on_guardrail)
        if self.work.closing:
            raise ClientClosedError("the client is closed; create a new AsyncWebRun")
        limit = self.options.max_cost
        if limit is not None and self.budget.exhausted:
            raise BudgetExceeded(
                f"the client's max_cost of ${limit:g} is spent (${self.spent:.4f}); "
                "no new task was started",
                limit=limit,
                spent=self.spent,
            )
        tracker = Tracker(
            self,
            spec,
            one_shot=one_shot,
            max_duration=max_duration,
            max_cost=None if max_cost is None else float(max_cost),
            on_guardrail=on_guardrail or self.options.on_guardrail,
        )
        TaskHandle(self, tracker)
        self._trackers.add(tracker)
        return tracker

    def settled(self, tracker: Tracker) -> None:
        """A tracker has its outcome: stop polling it, and end what ended with it."""
        self._trackers.discard(tracker)
        self.poller.unschedule(tracker)
        state = tracker.session
        if state is None:
            return
        if tracker.task_id:
            if state.done_ids is None:
                state.done_ids = deque(maxlen=64)
            state.done_ids.append(tracker.task_id)
        channel = state.channel
        pushing = channel is not None and channel.connected
        if tracker.server_final and not pushing and tracker.queued:
            state.remove(tracker)  # with a socket, its final event retires it
            self.promote(state)
        ends_session = tracker.one_shot or (
            state.ends_with is not None and state.ends_with == tracker.task_id
        )
        if ends_session and tracker.server_final and not state.ended:
            # The task ended its session with it (terminateOnCompletion), or was terminated
            # with it.
            self.session_gone(state)

    def promote(self, state: SessionState) -> None:
        """The next task of the session now runs on the server: its deadline starts, and it is
        stopped if it was cancelled while queued."""
        current = state.current()
        if current is not None and not current.settled and current.deadline is not None:
            # Queued behind the task that just ended, it starts now: so do its deadline and,
            # if it was sent while queued, its cost floor.
            now = asyncio.get_running_loop().time()
            if current.started_at is None:
                current.started(now)
            else:
                current.deadline = max(current.deadline, current.deadline_from(now))
        if current is not None and current.cancel_pending:
            current.cancel_pending = False
            self.spawn(self._stop_current, state, if_open=True)

    async def _stop_current(self, state: SessionState) -> None:
        await self.cleanup(self.send_control(state, STOP), f"stopping a task in {state.id}")

    # -- polls -------------------------------------------------------------------------------------

    async def fetch(self, session_id: str, task_id: str) -> TaskStatus:
        """Poll a task once (the poller's fetch function)."""
        return await calls.get_task(self.transport, session_id, task_id)

    def poll_in(self, tracker: Tracker, delay: float) -> None:
        """Poll the tracker's task in ``delay`` seconds."""
        self.poller.schedule(tracker, delay)

    def unschedule(self, tracker: Tracker) -> None:
        """Forget the tracker's pending poll."""
        self.poller.unschedule(tracker)

    def schedule_next(self, tracker: Tracker) -> None:
        """Schedule the tracker's next poll from its socket's health, budget and deadline."""
        if tracker.settled or tracker.task_id is None:
            return
        down = self.transport.unreachable()
        if down is not None and down[0] >= self.options.unreachable_timeout:
            seconds, error = down
            tracker.fail(
                APIConnectionError(
                    f"the API has been unreachable for {seconds:.0f} s (unreachable_timeout): "
                    f"{error.message}",
                    method=error.method,
                    path=error.path,
                )
            )
            return
        self.poller.schedule_next(tracker, self._pace)

    # -- money (the TrackerHost verbs, kept by the budget) ---------------------------------------

    @property
    def spent(self) -> float:
        """USD spent so far by the tasks this client followed."""
        return self.budget.spent

    def add_spend(self, amount: float) -> None:
        """Count spending seen on a tracker; past the client's max_cost, stop all work."""
        self.budget.add(amount)

    def client_limit_crossed(self, amount: float) -> tuple[float, float] | None:
        """``(limit, total)`` if spending ``amount`` more crosses the client's ``max_cost``."""
        return self.budget.crossed(amount)

    def watch_budget(self, tracker: Tracker) -> None:
        """Watch the cost floor of a task whose cost the service does not report yet."""
        self.budget.watch(tracker)

    # -- sessions --------------------------------------------------------------------------------

    def new_lease(self, *, counted: bool = True) -> SessionLease:
        """A lease for a session about to be started (``counted`` under ``max_sessions``).

        Raises:
            ClientClosedError: The client is closing or closed.
        """
        if self.work.closing:
            raise ClientClosedError("the client is closed; create a new AsyncWebRun")
        self._guard_loop()
        return SessionLease(self, self.session_gate if counted else None)

    def _guard_loop(self) -> None:
        # The loop's shutdown terminates the sessions of a client nobody closed.
        self.work.guard_loop(self._closed_by_loop, self.live_sessions)

    async def _closed_by_loop(self) -> None:
        await self.aclose()
        await self.transport.aclose()

    def register(
        self, session_id: str, info: SessionInfo | None, lease: SessionLease
    ) -> SessionState:
        """Track a session just created under ``lease`` (terminated when the client closes)."""
        state = self.sessions.get(session_id)
        if state is None:
            state = self.sessions[session_id] = SessionState(session_id, info)
        elif info is not None:
            state.info = info
        previous, state.lease = state.lease, lease
        if previous is not None and previous is not lease:
            previous.ended()  # one session, one owner
        return state

    def adopt(self, session_id: str) -> SessionState:
        """Look after a session this client did not start (attached): it gets a lease that
        holds no place under ``max_sessions``."""
        state = self.sessions.get(session_id)
        if state is None:
            if self.work.closing:
                raise ClientClosedError("the client is closed; create a new AsyncWebRun")
            self._guard_loop()
            state = self.sessions[session_id] = SessionState(session_id)
            state.adopted = True
            lease = state.lease = SessionLease(self, None)
            lease.own(state)
        return state

    def detach_session(self, state: SessionState) -> None:
        """Stop looking after a session: it keeps running when the client closes."""
        state.tracked = False
        if self.sessions.get(state.id) is state:
            del self.sessions[state.id]
        self._close_channel(state)
        self._close_listeners(state)
        if state.lease is not None:
            state.lease.ended()  # no longer ours to end
        logger.info("session %s detached; it keeps running (and costing)", state.id)

    def detach_tracker(self, tracker: Tracker) -> None:
        """Stop following a task; its session is left running when nothing else follows it
        (a one-shot task's, or one attached)."""
        state = tracker.session
        if state is not None and (tracker.one_shot or state.adopted):
            others = [t for t in state.handles if t is not tracker and not t.settled]
            if not others:
                self.detach_session(state)

    def session_gone(self, state: SessionState) -> None:
        """The session has ended: release its place and socket, let its listeners finish."""
        if state.ended:
            return
        state.ended = True
        if self.sessions.get(state.id) is state:
            del self.sessions[state.id]
        if state.lease is not None:
            state.lease.ended()
        self._close_channel(state)
        self._close_listeners(state)
        poll_unsettled(self, state)  # learn how their tasks ended

    @staticmethod
    def _close_listeners(state: SessionState) -> None:
        for listener in state.listeners:
            listener.close()
        state.listeners.clear()

    async def end_session(self, state: SessionState) -> None:
        """Terminate a session (over its socket when connected, else REST); no-op if ended."""
        if state.ended:
            return
        channel = state.channel
        confirmed = False
        if channel is not None and channel.connected:
            wait = min(3.0, self.options.cleanup_timeout / 3)
            confirmed = await channel.terminate(_TERMINATE, wait)
        if not confirmed:
            try:
                await calls.terminate_session(self.transport, state.id)
            except APIStatusError as exc:
                if exc.status not in (401, 404):  # 401/404: the session is already gone
                    raise
        self.session_gone(state)
        logger.debug("terminated session %s", state.id)

    # -- sockets ---------------------------------------------------------------------------------

    async def ensure_channel(self, state: SessionState) -> SessionChannel | None:
        """Connect the session's socket if the mode and the cap allow; ``None`` means poll."""
        if self.work.closing:
            return state.channel
        return await self.channels.ensure(state)

    def _close_channel(self, state: SessionState) -> None:
        self.channels.close(state)

    def listen(self, state: SessionState, send: MemoryObjectSendStream[SessionEvent]) -> None:
        """Hand every event of the session from now on to ``send``."""
        state.listeners.append(send)

    # -- messages --------------------------------------------------------------------------------

    async def post_message(self, session_id: str, message: SessionMessage) -> TaskStatus | Ack:
        """``POST /start/send-message``; a newTask is held and answers with the task's state.

        A 401 ("Session not found") means the session is gone; a terminate ends it here too.
        """
        try:
            if isinstance(message, NewTask):
                return await calls.send_new_task(self.transport, session_id, message)
            answer = await calls.send_control(self.transport, session_id, message)
        except APIStatusError as exc:
            state = self.sessions.get(session_id)
            if exc.status == 401 and state is not None:
                self.session_gone(state)
            raise
        if isinstance(message, StateChange) and message.new_state == "terminate":
            state = self.sessions.get(session_id)
            if state is not None:
                self.session_gone(state)
        return answer

    async def send_control(self, state: SessionState, message: SessionMessage) -> None:
        """Send a control message over the socket when connected, else over REST."""
        channel = state.channel
        if channel is not None and channel.connected and await channel.emit(message):
            return
        await self.post_message(state.id, message)

    # -- closing -----------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Send nothing new, stop background work, terminate tracked sessions, settle handles.

        Returns within ``cleanup_timeout`` whatever the server does, naming in one log line
        each session it could not confirm ended, with the cause. Runs to its end whatever
        cancels the caller (the cancel is raised afterwards).
        """
        if self.work.closing:
            return
        self.work.begin_closing()
        self.transport.refuse_new_work()  # queued start-sessions raise ClientClosedError
        if self.session_gate is not None:
            self.session_gate.close(
                ClientClosedError("the client is closing: the session was not started")
            )
        await uncancellable(self._close())
        await self.work.unguard()  # closed by hand: the loop's shutdown has nothing left to do

    async def _close(self) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.options.cleanup_timeout
        deadline = loop.time() + timeout

        def left() -> float:
            return max(deadline - loop.time(), 0.0)

        await self.poller.aclose()
        await self.work.stop(left())
        await self.work.wait_loose(left())  # start-session answers still on their way
        causes: dict[str, str] = {}

        async def end(state: SessionState) -> None:
            try:
                await self.end_session(state)
            except Exception as exc:
                causes[state.id] = describe(exc)

        live = self.live_sessions_states()
        if live:
            with anyio.move_on_after(left()):
                async with anyio.create_task_group() as tg:
                    for state in live:
                        tg.start_soon(end, state)
        unconfirmed = self.live_sessions_states()
        if unconfirmed:
            logger.error(
                "could not confirm termination of %d session(s) within %g s (they may still "
                "be running and costing): %s",
                len(unconfirmed),
                timeout,
                ", ".join(f"{s.id} ({causes.get(s.id, 'no answer in time')})" for s in unconfirmed),
            )
        for tracker in list(self._trackers):
            tracker.settle(
                SessionTerminated(
                    "the client closed before the task finished; its session was ended",
                    **tracker.ids(),
                ),
                "terminated",
            )
        for state in list(self.sessions.values()):
            self._close_channel(state)
        if not await self.work.wait_loose(left()):
            await self.work.cancel_loose()

    def live_sessions_states(self) -> list[SessionState]:
        """Sessions that will be terminated when the client closes."""
        return [s for s in self.sessions.values() if s.tracked and not s.ended]

    def followed(self) -> int:
        """How many handles still wait for their outcome."""
        return len(self._trackers)

    def live_sessions(self) -> list[str]:
        """Ids of the sessions that will be terminated when the client closes."""
        return [s.id for s in self.live_sessions_states()]

    def following(self, ref: TaskRef) -> TaskHandle[Any] | None:
        """The live handle already following the task ``ref`` names, if any."""
        state = self.sessions.get(ref.session_id)
        if state is not None:
            for tracker in state.with_task(ref.task_id):
                if not tracker.settled:
                    return tracker.owner
        return None
