"""Persistent sessions: start one, attach to one, steer it, and always end it."""

from __future__ import annotations

import logging
import math
from collections.abc import Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, Unpack, overload

from webrun_async._config import HOLD_SECONDS
from webrun_async._exceptions import (
    GuardrailTriggered,
    InvalidParameterError,
    OutputValidationError,
    SessionTerminated,
    TaskFailed,
    UsageError,
)
from webrun_async._params import (
    OutputSpec,
    TaskOptions,
    check_id,
    check_text,
    output_spec,
    session_fields,
    task_fields,
)
from webrun_async._ratelimit import task_bucket
from webrun_async._results import decode_started_task
from webrun_async.resources._base import Resource, decoder, encode
from webrun_async.resources.tasks import task_deadline
from webrun_async.types.common import Ack
from webrun_async.types.sessions import (
    Click,
    DoubleClick,
    GuardrailReply,
    Interaction,
    InteractionAction,
    KeyPress,
    NewTask,
    ReleaseControl,
    SendMessageRequest,
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
    TaskResult,
    TaskStatus,
)

if TYPE_CHECKING:
    from webrun_async._client import AsyncWebRun

__all__ = ["Session", "SessionStarter", "Sessions", "new_task", "start_session"]

logger = logging.getLogger("webrun_async")

START_SESSION = "POST /start/start-session"
SEND_MESSAGE = "POST /start/send-message"

_TASK_OUTCOMES = (TaskFailed, SessionTerminated, GuardrailTriggered, OutputValidationError)

_decode_info = decoder(SessionInfo)
_decode_ack = decoder(Ack)


ConfigT = TypeVar("ConfigT", bound=TaskConfig)


def _task_config(
    cls: type[ConfigT], task_details: str, spec: OutputSpec, options: TaskOptions
) -> ConfigT:
    """Validate task options into an ``initialTask`` (TaskConfig) or a NewTask message."""
    fields = task_fields(options, spec)
    starting = fields.pop("starting_url", None)
    return cls(task_details=task_details, starting_point=starting, **fields)


def new_task(
    task_details: str, output_schema: Any, options: TaskOptions
) -> tuple[NewTask, OutputSpec]:
    """Validate a task for a session and build its newTask message."""
    check_text("task_details", task_details)
    spec = output_spec(output_schema, options.get("output_type"))
    return _task_config(NewTask, task_details, spec, options), spec


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
    ) -> SessionStarter:
        """Start a session; await the result, or use it with ``async with`` to end it on exit.

        Args:
            initial_task: A task to start right away (its id is ``session.initial_task_id``
                when the server reports one).
            output_schema: Output schema of the initial task.
            environment_id: An environment (or profile) whose browser state to load.
            profile_id: Sent as ``profileId`` instead, for servers that expect that name.
            proxy: A proxy for the browser.
            policy_id: A policy that limits what the agent may do.
            reach_out_mode: ``"off"``, ``"guardrail_only"`` or ``"full"``.
            **options: Options of the initial task (:class:`~webrun_async.TaskOptions`).

        Raises:
            InvalidParameterError: Bad input (raised on await); nothing was sent.
        """
        fields = session_fields(
            environment_id=environment_id,
            profile_id=profile_id,
            proxy=proxy,
            policy_id=policy_id,
            reach_out_mode=reach_out_mode,
        )
        if initial_task is not None:
            check_text("initial_task", initial_task)
            fields["initial_task"] = _task_config(
                TaskConfig,
                initial_task, output_spec(output_schema, options.get("output_type")), options
            )
        elif options or output_schema is not None:
            name = sorted(options)[0] if options else "output_schema"
            raise InvalidParameterError(name, "task options need an initial_task")
        return SessionStarter(self._client, StartSessionRequest(**fields))

    def attach(self, session_id: str) -> Session:
        """A handle on an existing session (no request is sent).

        The client now looks after it: it is terminated when the client closes, unless it is
        detached first.
        """
        session = Session(self._client, check_id("session_id", session_id))
        self._client._track(session.id)
        return session

    @overload
    async def send(self, session_id: str, message: NewTask) -> TaskStatus: ...

    @overload
    async def send(
        self, session_id: str, message: StateChange | Interaction | GuardrailReply
    ) -> Ack: ...

    async def send(self, session_id: str, message: SessionMessage) -> TaskStatus | Ack:
        """Send any action to a session (``POST /start/send-message``).

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
        body = encode(SendMessageRequest(session_id=sid, message=message))
        if isinstance(message, NewTask):
            return await self._transport.request(
                "POST",
                "/start/send-message",
                lambda data: decode_started_task(data, sid),
                body=body,
                read_timeout=self._transport.timeouts.read_for(HOLD_SECONDS),
                bucket=task_bucket(SEND_MESSAGE),
            )
        ack = await self._transport.request(
            "POST", "/start/send-message", _decode_ack, body=body, bucket=task_bucket(SEND_MESSAGE)
        )
        if isinstance(message, StateChange) and message.new_state == "terminate":
            self._client._untrack(sid)
        return ack


async def start_session(client: AsyncWebRun, request: StartSessionRequest) -> SessionInfo:
    """Start a session and track it; cancelling the caller cannot leak it."""

    async def start() -> SessionInfo:
        info = await client._transport.request(
            "POST",
            "/start/start-session",
            _decode_info,
            body=encode(request),
            bucket=task_bucket(START_SESSION),
        )
        client._track(info.session_id)
        return info

    return await client._create_safely(start(), lambda info: info.session_id)


class SessionStarter:
    """What :meth:`Sessions.create` returns: await it, or enter it with ``async with``."""

    __slots__ = ("_client", "_request", "_session")

    def __init__(self, client: AsyncWebRun, request: StartSessionRequest) -> None:
        self._client = client
        self._request = request
        self._session: Session | None = None

    async def _start(self) -> Session:
        info = await start_session(self._client, self._request)
        return Session(self._client, info.session_id, info)

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
    """A live session: run tasks in it, steer it, and end it.

    Leaving ``async with`` (for any reason) terminates it unless :meth:`detach` was called.

    Attributes:
        id: The session id.
        info: The start-session answer (streaming URLs, expiry, balance), when this client
            started the session.
    """

    __slots__ = ("_client", "_detached", "_ended", "id", "info")

    def __init__(self, client: AsyncWebRun, session_id: str, info: SessionInfo | None = None):
        self._client = client
        self.id = session_id
        self.info = info
        self._detached = False
        self._ended = False

    def __repr__(self) -> str:
        state = "ended" if self._ended else "detached" if self._detached else "live"
        return f"Session(id={self.id!r}, {state})"

    @property
    def initial_task_id(self) -> str | None:
        """The id of the task given to ``create(initial_task=...)``, if the server reported it."""
        return self.info.task_id if self.info is not None else None

    @property
    def ended(self) -> bool:
        """Whether this client terminated the session."""
        return self._ended

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
        """Terminate the session unless it was detached or already ended.

        Runs shielded from cancellation and bounded by the client's ``cleanup_timeout``; a
        failure is logged, not raised, since this runs on the way out of a block.
        """
        if self._detached or self._ended:
            return
        self._ended = True
        await self._client._end_session(self.id)

    def detach(self) -> str:
        """Leave the session running past this block and the client; returns its id.

        Reattach later with ``client.sessions.attach(session_id)``.
        """
        self._detached = True
        self._client._untrack(self.id, detached=True)
        return self.id

    async def send(self, message: SessionMessage) -> TaskStatus | Ack:
        """Send any action (see :meth:`Sessions.send`)."""
        return await self._client.sessions.send(self.id, message)

    async def start(
        self, task_details: str, *, output_schema: Any = None, **options: Unpack[TaskOptions]
    ) -> TaskStatus:
        """Start a task in this session and return its state after the server's hold (≤ 50 s).

        Queued behind a running task, if any. Completed output is decoded per
        ``output_schema``.
        """
        message, spec = new_task(task_details, output_schema, options)
        status = await self._client.sessions.send(self.id, message)
        if message.terminate_on_completion and status.terminal:
            self._client._untrack(self.id)
            self._ended = True
        return spec.apply(status) if isinstance(status, TaskResult) else status

    async def run(
        self, task_details: str, *, output_schema: Any = None, **options: Unpack[TaskOptions]
    ) -> TaskResult[Any]:
        """Run a task in this session to the end and return its result.

        If this call is cancelled, or the task outlives its deadline, the task is stopped
        (the session stays up for the next task).

        Raises:
            TaskFailed: The task failed (``.code`` says why).
            GuardrailTriggered: The agent needs input; answer with ``exc.respond(text)`` and
                then :meth:`wait` for the task again.
            SessionTerminated: The session ended first.
            TaskTimeoutError: The task outlived its deadline.
            OutputValidationError: The output does not match ``output_schema``.
        """
        message, spec = new_task(task_details, output_schema, options)
        status = await self._client.sessions.send(self.id, message)
        try:
            return await self._client.tasks.until_final(
                status, spec, task_deadline(message.max_duration), responder=self._respond
            )
        except BaseException as exc:
            # Cancelled, timed out or cut off while the task may still run: stop it, since it
            # costs money. After a task outcome there is nothing left to stop.
            if not isinstance(exc, _TASK_OUTCOMES):
                await self._client._cleanup(self.stop(), f"stopping a task in session {self.id}")
            raise

    async def get(self, task_id: str) -> TaskStatus:
        """Poll one of this session's tasks once."""
        return await self._client.tasks.get(self.id, task_id)

    async def wait(self, task_id: str, *, output_schema: Any = None) -> TaskResult[Any]:
        """Poll one of this session's tasks until it is final (see :meth:`run` for errors)."""
        status = await self._client.tasks.get(self.id, task_id)
        return await self._client.tasks.until_final(
            status, output_spec(output_schema), task_deadline(None), responder=self._respond
        )

    async def _state(self, new_state: Any) -> None:
        await self._client.sessions.send(self.id, StateChange(new_state=new_state))

    async def pause(self) -> None:
        """Pause the running task after its current action."""
        await self._state("pause")

    async def resume(self) -> None:
        """Resume a paused task where it left off."""
        await self._state("resume")

    async def stop(self) -> None:
        """Stop the current task; the session stays up for the next one."""
        await self._state("stop")

    async def terminate(self) -> None:
        """End the session now: the browser closes and billing stops."""
        self._ended = True
        await self._state("terminate")

    async def _interact(self, action: InteractionAction) -> None:
        await self._client.sessions.send(self.id, Interaction(action=action))

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
        """Answer a guardrail: resume the paused task with ``text``, or stop it."""
        await self._respond(check_text("text", text, allow_empty=stop), stop)

    async def _respond(self, text: str, stop: bool) -> None:
        await self._client.sessions.send(
            self.id, GuardrailReply(task_details=text, new_state="stop" if stop else "resume")
        )
