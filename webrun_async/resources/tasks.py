"""Tasks: handles on background tasks, one-shot starts (``POST /start/run-task``), polls."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Unpack

from webrun_async._api import calls
from webrun_async._core.exceptions import InvalidParameterError
from webrun_async._core.params import (
    MAX_DURATION_SECONDS,
    TASK_OPTION_NAMES,
    OutputSpec,
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
from webrun_async.resources._base import Resource
from webrun_async.types.sessions import NewTask, StartSessionRequest
from webrun_async.types.tasks import (
    Proxy,
    ReachOutMode,
    RunTaskRequest,
    TaskRef,
    TaskResult,
    TaskStatus,
)

__all__ = ["Tasks", "new_task_message", "task_deadline"]


def task_deadline(max_duration_ms: int | None) -> float:
    """The ``max_duration`` in seconds of a task with this wire ``maxDuration`` (the service's
    default, 300 s, when not given)."""
    return max_duration_ms / 1000 if max_duration_ms is not None else MAX_DURATION_SECONDS


class Tasks(Resource):
    """Tasks. Reach it as ``client.tasks``."""

    __slots__ = ()

    def submit(
        self,
        task_details: str,
        *,
        output_schema: Any = None,
        max_cost: float | None = None,
        on_guardrail: GuardrailCallback | None = None,
        environment_id: str | None = None,
        profile_id: str | None = None,
        proxy: Proxy | None = None,
        policy_id: str | None = None,
        reach_out_mode: ReachOutMode | None = None,
        **options: Unpack[TaskOptions],
    ) -> TaskHandle[Any]:
        """Start a task in a session of its own and return its handle at once.

        The work runs in the client's task group: the session starts (queued while the
        client's ``max_sessions`` are in use), its socket connects (per the client's ``mode``),
        and the task starts in it, ending the session when it ends. ``await handle`` for the
        result; see :class:`~webrun_async.TaskHandle` for events, answers and control.

        Args:
            task_details: What the agent should do.
            output_schema: A type, a JSON schema dict or a list of CSV columns.
            max_cost: Stop the task once it has cost more than this many USD.
            on_guardrail: ``async def(prompt) -> str | None`` answering the agent's questions
                (``None`` stops the task); the client's own callback when not given.
            environment_id: An environment (or profile) whose browser state to load.
            profile_id: Sent as ``profileId`` instead, for servers that expect that name.
            proxy: A proxy for the browser.
            policy_id: A policy that limits what the agent may do.
            reach_out_mode: ``"off"``, ``"guardrail_only"`` or ``"full"``.
            **options: Task options (:class:`~webrun_async.TaskOptions`).

        Raises:
            InvalidParameterError: Bad input; nothing was started.
            BudgetExceeded: The client's ``max_cost`` is already spent.
            ClientClosedError: The client is closed.
        """
        session = session_fields(
            environment_id=environment_id,
            profile_id=profile_id,
            proxy=proxy,
            policy_id=policy_id,
            reach_out_mode=reach_out_mode,
        )
        if options.get("terminate_on_completion", True) is not True:
            raise InvalidParameterError(
                "terminate_on_completion", "a one-shot task always ends its session; use a session"
            )
        message, spec = new_task_message(
            task_details,
            output_schema,
            {**options, "terminate_on_completion": True},
            _ACCEPTS["submit"],
        )
        runtime = self._runtime
        tracker = runtime.new_tracker(
            spec,
            one_shot=True,
            max_duration=task_deadline(message.max_duration),
            max_cost=max_cost,
            on_guardrail=on_guardrail,
        )
        starting.submit_one_shot(runtime, tracker, message, StartSessionRequest(**session))
        return tracker.owner

    def attach(
        self,
        ref: TaskRef,
        *,
        output_schema: Any = None,
        max_cost: float | None = None,
        on_guardrail: GuardrailCallback | None = None,
        max_duration: float | None = None,
    ) -> TaskHandle[Any]:
        """Follow a task that is already running (a detached handle's reference, say).

        Its session is looked after from now on: terminated when the client closes, unless
        detached again. A task this client already follows keeps its handle: that handle is
        returned unless new options are given.

        Args:
            ref: The task's :class:`~webrun_async.types.TaskRef`.
            output_schema: Decode structured output into this.
            max_cost: Stop the task once it has cost more than this many USD.
            on_guardrail: Answers the agent's questions (see :meth:`submit`).
            max_duration: The task's ``max_duration`` in seconds, when known (300 s, the
                service's longest, when not): following gives up that long (plus
                ``DEADLINE_MARGIN``, 10 s) from now.
        """
        if not isinstance(ref, TaskRef):
            raise InvalidParameterError("ref", f"must be a TaskRef, got {type(ref).__name__}")
        check_id("session_id", ref.session_id)
        check_id("task_id", ref.task_id)
        runtime = self._runtime
        existing = runtime.following(ref)
        if existing is not None and output_schema is None and max_cost is None and not on_guardrail:
            return existing  # one task, one handle: it knows what was already answered
        seconds = MAX_DURATION_SECONDS if max_duration is None else float(max_duration)
        tracker = runtime.new_tracker(
            output_spec(output_schema),
            one_shot=False,
            max_duration=seconds,
            max_cost=max_cost,
            on_guardrail=on_guardrail,
        )
        starting.follow(runtime, tracker, ref)
        return tracker.owner

    async def wait(
        self,
        session_id: str,
        task_id: str,
        *,
        output_schema: Any = None,
        max_duration: float | None = None,
    ) -> TaskResult[Any]:
        """Follow a task until it is final and return its result (see :meth:`attach`).

        Raises:
            TaskFailed, SessionTerminated, GuardrailTriggered: The task ended without a result.
            TaskTimeoutError: It was still unfinished past its deadline.
        """
        ref = TaskRef(session_id=session_id, task_id=task_id)
        handle = self.attach(ref, output_schema=output_schema, max_duration=max_duration)
        return await handle

    async def create(
        self,
        task_details: str,
        *,
        output_schema: Any = None,
        environment_id: str | None = None,
        profile_id: str | None = None,
        proxy: Proxy | None = None,
        policy_id: str | None = None,
        reach_out_mode: ReachOutMode | None = None,
        **options: Unpack[TaskOptions],
    ) -> TaskStatus:
        """Call ``POST /start/run-task`` once: start a task in a session that ends with it.

        The server holds the request for up to 50 s: the answer is the final state when the
        task finished by then (completed output decoded per ``output_schema``), else
        :class:`~webrun_async.types.TaskPending`. Nothing waits beyond that: follow it with
        :meth:`wait` (or use :meth:`submit` / :meth:`AsyncWebRun.run_task`). The session is
        looked after like any other: terminated when the client closes, and it counts under
        the client's ``max_sessions`` until its task is seen final (through :meth:`wait` or
        :meth:`attach`) or the client closes.

        Raises:
            InvalidParameterError: Bad input; nothing was sent.
            APIError: The request failed.
        """
        session = session_fields(
            environment_id=environment_id,
            profile_id=profile_id,
            proxy=proxy,
            policy_id=policy_id,
            reach_out_mode=reach_out_mode,
        )
        request, spec = _run_task_request(
            task_details, output_schema, session, options, _ACCEPTS["create"]
        )
        status = await starting.run_task_once(self._runtime, request)
        return spec.apply(status) if isinstance(status, TaskResult) else status

    async def get(self, session_id: str, task_id: str) -> TaskStatus:
        """Poll a task once and return its typed state.

        Raises:
            NotFoundError: No such session or task.
        """
        sid = check_id("session_id", session_id)
        tid = check_id("task_id", task_id)
        return await calls.get_task(self._transport, sid, tid)


def new_task_message(
    task_details: str,
    output_schema: Any,
    options: TaskOptions,
    accepted: Collection[str] = TASK_OPTION_NAMES,
) -> tuple[NewTask, OutputSpec]:
    """Validate a task for a session and build its newTask message.

    `accepted`: the keyword arguments of the public method, for the unknown-option error.
    """
    check_text("task_details", task_details)
    spec = output_spec(output_schema, options.get("output_type"))
    fields = task_fields(options, spec, accepted)
    starting = fields.pop("starting_url", None)
    return NewTask(task_details=task_details, starting_point=starting, **fields), spec


def _run_task_request(
    task_details: str,
    output_schema: Any,
    session: dict[str, Any],
    options: TaskOptions,
    accepted: Collection[str],
) -> tuple[RunTaskRequest, OutputSpec]:
    check_text("task_details", task_details)
    spec = output_spec(output_schema, options.get("output_type"))
    fields = task_fields(options, spec, accepted)
    if fields.pop("terminate_on_completion", True) is not True:
        raise InvalidParameterError(
            "terminate_on_completion", "a one-shot task always ends its session; use a session"
        )
    return RunTaskRequest(task_details=task_details, **session, **fields), spec


_ONE_SHOT = ("terminate_on_completion",)  # a one-shot task always ends its session
_ACCEPTS = {
    name: keywords_of(getattr(Tasks, name), forced=_ONE_SHOT) for name in ("submit", "create")
}
