"""One-shot tasks (``POST /start/run-task``) and task polling (``GET /task/{sid}/{tid}``)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Unpack

import anyio

from webrun_async._config import HOLD_SECONDS
from webrun_async._exceptions import (
    GuardrailTriggered,
    InvalidParameterError,
    SessionTerminated,
    TaskFailed,
    TaskTimeoutError,
)
from webrun_async._params import (
    MAX_DURATION_SECONDS,
    OutputSpec,
    TaskOptions,
    check_id,
    check_text,
    output_spec,
    session_fields,
    task_fields,
)
from webrun_async._ratelimit import task_bucket
from webrun_async._results import decode_started_task, decode_task_status
from webrun_async.types.tasks import (
    Proxy,
    ReachOutMode,
    RunTaskRequest,
    TaskFailure,
    TaskGuardrail,
    TaskResult,
    TaskStatus,
    TaskTerminated,
    TaskUnknownStatus,
)

from ._base import Resource, encode

__all__ = ["Tasks", "raise_for_outcome", "task_deadline"]

logger = logging.getLogger("webrun_async")

RUN_TASK = "POST /start/run-task"
DEADLINE_MARGIN = 120.0
"""Seconds a task may outlive its ``max_duration`` (holds, queueing, clock skew) before the SDK
gives up on it."""

Responder = Callable[[str, bool], Awaitable[None]]


def _live_session_of(status: TaskStatus) -> str | None:
    """The session a run-task answer left running (none once the task is final)."""
    return None if status.terminal else status.session_id


def task_deadline(max_duration_ms: int | None) -> float:
    """Seconds after which a task with this wire ``maxDuration`` can no longer be running."""
    seconds = max_duration_ms / 1000 if max_duration_ms is not None else MAX_DURATION_SECONDS
    return seconds + DEADLINE_MARGIN


def raise_for_outcome(
    status: TaskStatus, spec: OutputSpec, responder: Responder | None
) -> TaskResult[Any]:
    """Return the result of a completed task, or raise the error its final state stands for.

    Raises:
        TaskFailed: The task failed.
        SessionTerminated: The session ended first.
        GuardrailTriggered: The agent waits for human input (``responder`` answers it).
        OutputValidationError: The structured output does not match ``spec``.
    """
    if isinstance(status, TaskResult):
        return spec.apply(status)
    if isinstance(status, TaskFailure):
        raise TaskFailed(
            status.error,
            code=status.code,
            session_id=status.session_id,
            task_id=status.task_id,
            usage=status.usage,
        )
    if isinstance(status, TaskTerminated):
        raise SessionTerminated(
            status.error or "the session ended before the task finished",
            session_id=status.session_id,
            task_id=status.task_id,
            usage=status.usage,
        )
    if isinstance(status, TaskGuardrail):
        raise GuardrailTriggered(
            status.value,
            kind=status.kind,
            session_id=status.session_id,
            task_id=status.task_id,
            usage=status.usage,
            responder=responder,
        )
    raise AssertionError(f"not a final state: {status!r}")  # pragma: no cover


class Tasks(Resource):
    """One-shot tasks and task status. Reach it as ``client.tasks``."""

    __slots__ = ()

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
        """Start a task in a new session that ends itself when the task does.

        The server holds the request for up to 50 s: the answer is the final state when the
        task finished by then (completed output decoded per ``output_schema``), else
        :class:`~webrun_async.types.TaskPending`. Nothing waits beyond that; see
        :meth:`wait` or :meth:`AsyncWebRun.run_task`.

        Args:
            task_details: What the agent should do.
            output_schema: A type, a JSON schema dict or a list of CSV columns.
            environment_id: An environment (or profile) whose browser state to load.
            profile_id: Sent as ``profileId`` instead, for servers that expect that name.
            proxy: A proxy for the browser.
            policy_id: A policy that limits what the agent may do.
            reach_out_mode: ``"off"``, ``"guardrail_only"`` or ``"full"``.
            **options: Task options (:class:`~webrun_async.TaskOptions`).

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
        request, spec = build_run_task(task_details, output_schema, session, options)
        status = await self._client._create_safely(self._submit(request), _live_session_of)
        return spec.apply(status) if isinstance(status, TaskResult) else status

    async def _submit(self, request: RunTaskRequest) -> TaskStatus:
        status = await self._transport.request(
            "POST",
            "/start/run-task",
            decode_started_task,
            body=encode(request),
            read_timeout=self._transport.timeouts.read_for(HOLD_SECONDS),
            bucket=task_bucket(RUN_TASK),
        )
        if not status.terminal:
            self._client._track(status.session_id)
        return status

    async def get(self, session_id: str, task_id: str) -> TaskStatus:
        """Poll a task once and return its typed state.

        Raises:
            NotFoundError: No such session or task.
        """
        sid = check_id("session_id", session_id)
        tid = check_id("task_id", task_id)
        return await self._transport.request(
            "GET", f"/task/{sid}/{tid}", lambda body: decode_task_status(body, sid, tid)
        )

    async def wait(
        self,
        session_id: str,
        task_id: str,
        *,
        output_schema: Any = None,
        max_duration: float | None = None,
    ) -> TaskResult[Any]:
        """Poll a task until it is final and return its result.

        Args:
            session_id: The task's session.
            task_id: The task.
            output_schema: Decode structured output into this (as in :meth:`create`).
            max_duration: The task's ``max_duration`` in seconds, if it was set; the wait gives
                up that long (plus a margin) after it starts.

        Raises:
            TaskFailed, SessionTerminated, GuardrailTriggered: The task ended without a result.
            TaskTimeoutError: It was still unfinished past its deadline.
        """
        status = await self.get(session_id, task_id)
        seconds = MAX_DURATION_SECONDS if max_duration is None else float(max_duration)
        return await self.until_final(
            status, output_spec(output_schema), seconds + DEADLINE_MARGIN, responder=None
        )

    async def until_final(
        self,
        status: TaskStatus,
        spec: OutputSpec,
        deadline: float,
        *,
        responder: Responder | None,
    ) -> TaskResult[Any]:
        """Poll from ``status`` until the task is final, at the client's polling interval."""
        started = time.monotonic()
        interval = self._client._poll_interval
        warned = False
        while not status.terminal and not isinstance(status, TaskGuardrail):
            if isinstance(status, TaskUnknownStatus) and not warned:
                warned = True
                logger.warning(
                    "task %s answered an unknown status %r; still polling until its deadline",
                    status.task_id,
                    status.status,
                )
            if time.monotonic() - started > deadline:
                raise TaskTimeoutError(
                    f"the task was still unfinished after {deadline:.0f} s",
                    session_id=status.session_id,
                    task_id=status.task_id,
                    usage=getattr(status, "usage", None),
                )
            # 2-3 s by default, as the service asks, with jitter so that callers spread out.
            await anyio.sleep(interval * (1.0 + random.random() / 2))
            status = await self.get(status.session_id, status.task_id)
        return raise_for_outcome(status, spec, responder)


def build_run_task(
    task_details: str, output_schema: Any, session: dict[str, Any], options: TaskOptions
) -> tuple[RunTaskRequest, OutputSpec]:
    """Validate everything a run-task request takes and build its body."""
    check_text("task_details", task_details)
    spec = output_spec(output_schema, options.get("output_type"))
    fields = task_fields(options, spec)
    if fields.pop("terminate_on_completion", True) is not True:
        raise InvalidParameterError(
            "terminate_on_completion", "a one-shot task always ends its session; use a session"
        )
    return RunTaskRequest(task_details=task_details, **session, **fields), spec
