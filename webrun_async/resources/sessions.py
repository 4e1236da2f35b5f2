"""Persistent sessions: start one, attach to one, steer it, follow it, and always end it."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Generator
from types import TracebackType
from typing import Any, Unpack, overload

import anyio

from webrun_async._core.exceptions import GuardrailTriggered, InvalidParameterError, UsageError
from webrun_async._core.params import (
    TaskOptions,
    check_id,
    check_text,
    keywords_of,
    output_spec,
    session_fields,
    task_fields,
)
from webrun_async._tasks import starting
from webrun_async._tasks.handle import GuardrailCallback, TaskHandle
from webrun_async._tasks.registry import SessionState
from webrun_async.resources._base import Resource, ResourceContext
from webrun_async.resources.tasks import Tasks, new_task_message, task_deadline
from webrun_async.types.common import Ack
from webrun_async.types.events import SessionEvent
from webrun_async.types.sessions import (
    Click,
    DoubleClick,
    GuardrailReply,
    Interaction,
    InteractionAction,
    KeyPress,
    NewTask,
    ReleaseControl,
    SessionInfo,
    SessionMessage,
    StartSessionRequest,
    StateChange,
    TakeOverControl,
    TypeText,
)
from webrun_async.types.tasks import (
    Proxy,
    ReachOutMode,
    TaskConfig,
    TaskRef,
    TaskResult,
    TaskStatus,
)

__all__ = ["PendingSession", "Session", "Sessions"]


def _coordinate(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameterError(name, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise InvalidParameterError(name, f"must be a finite number of pixels >= 0, got {value!r}")
    return value


class Sessions(Resource):
    """Persistent sessions. Reach it as ``client.sessions``."""

    __slots__ = ()

    def create(
        self,
        *,
        initial_task: str | None = None,
        output_schema: Any = None,
        environment_id: str | None = None,
        profile_id: str | None = None,
        proxy: Proxy | None = None,
        policy_id: str | None = None,
        reach_out_mode: ReachOutMode | None = None,
        **options: Unpack[TaskOptions],
    ) -> PendingSession:
        """Start a session; await the result, or use it with ``async with`` to end it on exit.

        Queued (not refused) while the client's ``max_sessions`` are in use. Its socket
        connects per the client's ``mode``.

        Args:
            initial_task: A task to start right away; follow it with
                ``session.initial_task`` (a :class:`~webrun_async.TaskHandle`).
            output_schema: Output schema of the initial task.
            environment_id: An environment (or profile) whose browser state to load.
            profile_id: Sent as ``profileId`` instead, for servers that expect that name.
            proxy: A proxy for the browser.
            policy_id: A policy that limits what the agent may do.
            reach_out_mode: ``"off"``, ``"guardrail_only"`` or ``"full"``.
            **options: Options of the initial task (:class:`~webrun_async.TaskOptions`).

        Raises:
            InvalidParameterError: Bad input; nothing was sent.
        """
        fields = session_fields(
            environment_id=environment_id,
            profile_id=profile_id,
            proxy=proxy,
            policy_id=policy_id,
            reach_out_mode=reach_out_mode,
        )
        initial: tuple[TaskConfig, Any] | None = None
        if initial_task is not None:
            check_text("initial_task", initial_task)
            spec = output_spec(output_schema, options.get("output_type"))
            config = task_fields(options, spec, _ACCEPTS["create"])
            starting = config.pop("starting_url", None)
            task = TaskConfig(task_details=initial_task, starting_point=starting, **config)
            fields["initial_task"] = task
            initial = (task, spec)
        elif options or output_schema is not None:
            name = sorted(options)[0] if options else "output_schema"
            raise InvalidParameterError(name, "task options need an initial_task")
        return PendingSession(self._ctx, StartSessionRequest(**fields), initial)

    def attach(self, session_id: str) -> Session:
        """A handle on an existing session (no request is sent).

        The client looks after it from now on: it is terminated when the client closes,
        unless detached first.
        """
        state = self._runtime.adopt(check_id("session_id", session_id))
        return Session(self._ctx, state)

    @overload
    async def send(self, session_id: str, message: NewTask) -> TaskStatus: ...

    @overload
    async def send(
        self, session_id: str, message: StateChange | Interaction | GuardrailReply
    ) -> Ack: ...

    async def send(self, session_id: str, message: SessionMessage) -> TaskStatus | Ack:
        """Send any action to a session over REST (``POST /start/send-message``).

        A :class:`~webrun_async.types.NewTask` is held for up to 50 s and answers with the
        task's state; every other action answers with an acknowledgement.

        Raises:
            AuthenticationError: The session does not exist or has ended (the API says 401).
        """
        sid = check_id("session_id", session_id)
        if not isinstance(message, NewTask | StateChange | Interaction | GuardrailReply):
            raise InvalidParameterError(
                "message", f"must be a session message Struct, got {type(message).__name__}"
            )
        return await self._runtime.post_message(sid, message)


class PendingSession:
    """What :meth:`Sessions.create` returns: await it, or enter it with ``async with``."""

    __slots__ = ("_ctx", "_initial", "_request", "_session")

    def __init__(
        self,
        ctx: ResourceContext,
        request: StartSessionRequest,
        initial: tuple[TaskConfig, Any] | None,
    ) -> None:
        self._ctx = ctx
        self._request = request
        self._initial = initial
        self._session: Session | None = None

    async def _start(self) -> Session:
        runtime = self._ctx.runtime
        state = await starting.open_session(runtime, self._request)
        session = Session(self._ctx, state)
        if self._initial is not None:
            task, spec = self._initial
            tracker = runtime.new_tracker(
                spec, one_shot=False, max_duration=task_deadline(task.max_duration)
            )
            starting.follow_initial(runtime, tracker, state)
            session.initial_task = tracker.owner
        return session

    def __await__(self) -> Generator[Any, None, Session]:
        return self._start().__await__()

    async def __aenter__(self) -> Session:
        if self._session is not None:
            raise UsageError("this session was already started; call sessions.create() again")
        self._session = await self._start()
        return self._session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.aclose()


class Session:
    """A live session: run tasks in it, steer it, follow its events, and end it.

    Leaving ``async with`` (for any reason) terminates it unless :meth:`detach` was called.
    Control messages go over the session's socket when it is connected (not rate limited),
    over REST otherwise.

    Attributes:
        id: The session id.
        initial_task: The handle of ``create(initial_task=...)``'s task, if one was given.
    """

    __slots__ = ("_ctx", "_detached", "_state", "id", "initial_task")

    def __init__(self, ctx: ResourceContext, state: SessionState) -> None:
        self._ctx = ctx
        self._state = state
        self.id = state.id
        self.initial_task: TaskHandle[Any] | None = None
        self._detached = False

    def __repr__(self) -> str:
        state = "ended" if self.ended else "detached" if self._detached else "live"
        return f"Session(id={self.id!r}, {state})"

    @property
    def info(self) -> SessionInfo | None:
        """The start-session answer (streaming URLs, expiry, balance), when this client started
        the session."""
        return self._state.info

    @property
    def initial_task_id(self) -> str | None:
        """The id of the initial task, if the server reported it."""
        return self.initial_task.task_id if self.initial_task is not None else None

    @property
    def ended(self) -> bool:
        """Whether the session is known to have ended."""
        return self._state.ended

    @property
    def socket_connected(self) -> bool:
        """Whether the session's socket.io connection is up."""
        channel = self._state.channel
        return channel is not None and channel.connected

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Terminate the session unless it was detached or has ended.

        Runs to its end even if the caller is cancelled meanwhile, bounded by the client's
        ``cleanup_timeout``; a failure is logged, not raised, since this runs on the way out of
        a block.
        """
        if self._detached or self._state.ended:
            return
        runtime = self._ctx.runtime
        await runtime.cleanup(runtime.end_session(self._state), f"terminating session {self.id}")

    def detach(self) -> str:
        """Leave the session running past this block and the client; returns its id.

        Reattach later with ``client.sessions.attach(session_id)``.
        """
        self._detached = True
        self._ctx.runtime.detach_session(self._state)
        return self.id

    async def send(self, message: SessionMessage) -> TaskStatus | Ack:
        """Send any action over REST (see :meth:`Sessions.send`)."""
        return await Sessions(self._ctx).send(self.id, message)

    def submit(
        self,
        task_details: str,
        *,
        output_schema: Any = None,
        max_cost: float | None = None,
        on_guardrail: GuardrailCallback | None = None,
        **options: Unpack[TaskOptions],
    ) -> TaskHandle[Any]:
        """Start a task in this session and return its handle at once.

        Tasks in a session run one at a time: a task submitted while another runs is queued
        by the server. See :meth:`Tasks.submit` for the arguments.
        """
        if self._state.ended:
            raise UsageError(f"session {self.id} has ended")
        message, spec = new_task_message(task_details, output_schema, options, _ACCEPTS["submit"])
        runtime = self._ctx.runtime
        tracker = runtime.new_tracker(
            spec,
            one_shot=False,
            max_duration=task_deadline(message.max_duration),
            max_cost=max_cost,
            on_guardrail=on_guardrail,
        )
        starting.enqueue(runtime, tracker, self._state, message)
        return tracker.owner

    async def run(
        self,
        task_details: str,
        *,
        output_schema: Any = None,
        max_cost: float | None = None,
        on_guardrail: GuardrailCallback | None = None,
        **options: Unpack[TaskOptions],
    ) -> TaskResult[Any]:
        """Run a task in this session to the end and return its result.

        If this call is cancelled the task is stopped (the session stays up for the next).

        Raises:
            TaskFailed: The task failed (``.code`` says why).
            GuardrailTriggered: The agent needs input and no ``on_guardrail`` answered it;
                ``await exc.respond(text)``, then :meth:`wait` for the task again.
            SessionTerminated: The session ended first.
            BudgetExceeded: The task crossed ``max_cost`` (it was stopped).
            TaskTimeoutError: The task outlived its deadline (it was stopped).
            OutputValidationError: The output does not match ``output_schema``.
        """
        handle = self.submit(
            task_details,
            output_schema=output_schema,
            max_cost=max_cost,
            on_guardrail=on_guardrail,
            **options,
        )
        try:
            return await handle
        except GuardrailTriggered:
            raise  # the task waits for the answer: it is not ours to stop
        except BaseException:
            if not handle.final:  # this call was cancelled: stop the task it started
                await handle.cancel()
            raise

    async def get(self, task_id: str) -> TaskStatus:
        """Poll one of this session's tasks once."""
        return await Tasks(self._ctx).get(self.id, task_id)

    async def wait(self, task_id: str, *, output_schema: Any = None) -> TaskResult[Any]:
        """Follow one of this session's tasks until it is final (see :meth:`run` for errors)."""
        ref = TaskRef(session_id=self.id, task_id=check_id("task_id", task_id))
        return await Tasks(self._ctx).attach(ref, output_schema=output_schema)

    async def events(self) -> AsyncIterator[SessionEvent]:
        """Every event of the session from now on, until it ends.

        Needs the session's socket (it is connected if the client's ``mode`` and socket cap
        allow); without one, this ends at once.
        """
        runtime = self._ctx.runtime
        if await runtime.ensure_channel(self._state) is None or self._state.ended:
            return
        send, receive = anyio.create_memory_object_stream[SessionEvent](math.inf)
        runtime.listen(self._state, send)
        async with receive:
            async for event in receive:
                yield event

    async def _control(self, message: SessionMessage) -> None:
        await self._ctx.runtime.send_control(self._state, message)

    async def pause(self) -> None:
        """Pause the running task after its current action."""
        await self._control(StateChange(new_state="pause"))

    async def resume(self) -> None:
        """Resume a paused task where it left off."""
        await self._control(StateChange(new_state="resume"))

    async def stop(self) -> None:
        """Stop the current task; the session stays up for the next one."""
        await self._control(StateChange(new_state="stop"))

    async def terminate(self) -> None:
        """End the session now: the browser closes and billing stops."""
        await self._ctx.runtime.end_session(self._state)

    async def _interact(self, action: InteractionAction) -> None:
        await self._control(Interaction(action=action))

    async def click(self, x: float, y: float) -> None:
        """Click at viewport coordinates (the page starts at y = 155)."""
        await self._interact(Click(x=_coordinate("x", x), y=_coordinate("y", y)))

    async def double_click(self, x: float, y: float) -> None:
        """Double-click at viewport coordinates."""
        await self._interact(DoubleClick(x=_coordinate("x", x), y=_coordinate("y", y)))

    async def type_text(self, text: str, *, human_like: bool | None = None) -> None:
        """Type into the focused element (``human_like`` types at a person's pace)."""
        check_text("text", text, allow_empty=True)
        await self._interact(TypeText(text=text, human_like=human_like))

    async def key_press(self, key: str) -> None:
        """Press a key such as ``"Enter"``, ``"Tab"`` or ``"ArrowDown"``."""
        await self._interact(KeyPress(key=check_text("key", key)))

    async def take_over(self) -> None:
        """Take manual control of the browser (the agent pauses)."""
        await self._interact(TakeOverControl())

    async def release_control(self) -> None:
        """Give control back to the agent."""
        await self._interact(ReleaseControl())

    async def respond(self, text: str, *, stop: bool = False) -> None:
        """Answer the waiting task's question: resume it with ``text``, or stop it."""
        check_text("text", text, allow_empty=stop)
        for tracker in self._state.handles:
            if tracker.guardrail is not None:
                await tracker.owner.respond(text, stop=stop)
                return
        reply = GuardrailReply(task_details=text, new_state="stop" if stop else "resume")
        await self._control(reply)


_ACCEPTS = {"create": keywords_of(Sessions.create), "submit": keywords_of(Session.submit)}
