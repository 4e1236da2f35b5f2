"""Decoding task answers: every documented variant in, one typed state out.

The service describes a task in several shapes depending on the page of its documentation and
the age of the server: a flat ``type``/``data``/``usage`` body, a ``result`` wrapper,
``status: "complete"``, ``pending: true``, camelCase usage, tokens inside ``data``, ``message``
or ``error`` for failures. Everything is decoded once, by a typed decoder, into a permissive wire
Struct, then normalised into one of the public states in :mod:`webrun_async.types.tasks`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec

from webrun_async._core.exceptions import GuardrailTriggered, SessionTerminated, TaskFailed
from webrun_async._core.params import OutputSpec
from webrun_async.types.common import Usage
from webrun_async.types.tasks import (
    NetworkCapture,
    TaskFailure,
    TaskFile,
    TaskGuardrail,
    TaskPending,
    TaskResult,
    TaskRunning,
    TaskStatus,
    TaskTerminated,
    TaskUnknownStatus,
)

__all__ = [
    "Responder",
    "decode_started_task",
    "decode_task_status",
    "normalise_task_payload",
    "raise_for_outcome",
]

Responder = Callable[[str, bool], Awaitable[None]]


class _WireUsage(msgspec.Struct, kw_only=True, gc=False):
    prompt_tokens: float | None = None
    completion_tokens: float | None = None
    total_tokens: float | None = None
    completion_time: float | None = None
    cost: float | None = None
    input_tokens: float | None = msgspec.field(default=None, name="inputTokens")
    output_tokens: float | None = msgspec.field(default=None, name="outputTokens")
    compute_time: float | None = msgspec.field(default=None, name="computeTime")


class _WireData(msgspec.Struct, kw_only=True, gc=False):
    message: str | None = None
    files: list[TaskFile] | None = None
    network: list[NetworkCapture] | None = None
    # guardrail payloads: {"type": "human_input_needed", "value": "..."}
    type: str | None = None
    value: str | None = None
    # legacy shapes carry tokens (and a cost-only usage) inside data
    prompt_tokens: float | None = None
    completion_tokens: float | None = None
    total_tokens: float | None = None
    completion_time: float | None = None
    usage: _WireUsage | None = None


class _WireResult(msgspec.Struct, kw_only=True, gc=False):
    type: str | None = None
    status: str | None = None
    data: _WireData | None = None
    usage: _WireUsage | None = None


class _WireTask(msgspec.Struct, kw_only=True, rename="camel", gc=False):
    success: bool | None = None
    session_id: str | None = None
    task_id: str | None = None
    type: str | None = None
    status: str | None = None
    pending: bool | None = None
    data: _WireData | None = None
    usage: _WireUsage | None = None
    result: _WireResult | None = None
    error: str | dict[str, Any] | None = None
    message: str | None = None
    code: str | None = None
    poll_url: str | None = None
    completed_at: datetime | None = None


_task_decoder = msgspec.json.Decoder(_WireTask)

_DONE_STATUSES = frozenset({"complete", "completed", "task_completed", "success", "succeeded"})
_RUNNING_STATUSES = frozenset(
    {"running", "active", "started", "queued", "paused", "in_progress", "processing"}
)
_FAILED_STATUSES = frozenset({"failed", "error"})
_TERMINATED_STATUSES = frozenset({"terminated", "cancelled", "canceled", "expired"})


def _usage(top: _WireUsage | None, data: _WireData | None) -> Usage:
    """Merge every documented place and spelling of usage into one :class:`Usage`.

    Top-level snake_case usage (the canonical answer) is read directly; camelCase names, a
    ``usage`` inside ``data`` and tokens inside ``data`` fill in whatever it leaves out.
    """
    inner = data.usage if data is not None else None
    prompt = completion = total = seconds = cost = None
    for source in (top, inner):
        if source is None:
            continue
        if prompt is None:
            prompt = source.prompt_tokens
            if prompt is None:
                prompt = source.input_tokens
        if completion is None:
            completion = source.completion_tokens
            if completion is None:
                completion = source.output_tokens
        if total is None:
            total = source.total_tokens
        if seconds is None:
            seconds = source.completion_time
            if seconds is None:
                seconds = source.compute_time
        if cost is None:
            cost = source.cost
    if data is not None:
        if prompt is None:
            prompt = data.prompt_tokens
        if completion is None:
            completion = data.completion_tokens
        if total is None:
            total = data.total_tokens
        if seconds is None:
            seconds = data.completion_time
    prompt_i = int(prompt) if prompt else 0
    completion_i = int(completion) if completion else 0
    return Usage(
        prompt_tokens=prompt_i,
        completion_tokens=completion_i,
        total_tokens=int(total) if total is not None else prompt_i + completion_i,
        completion_time=float(seconds) if seconds else 0.0,
        cost=float(cost) if cost else 0.0,
    )


def _error_text(wire: _WireTask) -> str:
    error = wire.error
    if isinstance(error, dict):
        text = error.get("message")
        if isinstance(text, str) and text:
            return text
    elif error:
        return error
    return wire.message or "Task failed"


def _error_code(wire: _WireTask) -> str | None:
    if wire.code:
        return wire.code
    if isinstance(wire.error, dict):
        code = wire.error.get("code")
        return code if isinstance(code, str) else None
    return None


def normalise_task_payload(
    wire: _WireTask, session_id: str, task_id: str, raw: bytes | None = None
) -> TaskStatus:
    """Turn one decoded wire body into its typed state.

    ``session_id`` and ``task_id`` fill in for bodies that omit them (the documented guardrail
    poll answer does). ``raw`` is the original body, kept only for unknown states.
    """
    sid = wire.session_id or session_id
    tid = wire.task_id or task_id
    kind = wire.type
    status = wire.status.lower() if wire.status else ""
    data = wire.data
    usage_src = wire.usage
    if wire.result is not None:  # the documented {"result": {"type", "data"}} wrapper
        kind = wire.result.type or kind
        if wire.result.status and not status:
            status = wire.result.status.lower()
        data = wire.result.data or data
        usage_src = usage_src or wire.result.usage
    usage = _usage(usage_src, data)

    if kind == "task_completed" or status in _DONE_STATUSES:
        return TaskResult(
            session_id=sid,
            task_id=tid,
            message=(data.message if data is not None else None) or "",
            files=(data.files if data is not None else None) or [],
            network=(data.network if data is not None else None) or [],
            usage=usage,
            completed_at=wire.completed_at,
        )
    if kind == "guardrail_trigger":
        return TaskGuardrail(
            session_id=sid,
            task_id=tid,
            value=(data.value if data is not None else None) or "",
            kind=data.type if data is not None else None,
            usage=usage,
        )
    if status in _TERMINATED_STATUSES or kind == "terminated":
        return TaskTerminated(session_id=sid, task_id=tid, error=_error_text(wire), usage=usage)
    if status == "pending" or (not status and wire.pending):
        return TaskPending(
            session_id=sid, task_id=tid, poll_url=wire.poll_url, message=wire.message, usage=usage
        )
    if status in _RUNNING_STATUSES:
        return TaskRunning(session_id=sid, task_id=tid, status=status, usage=usage)
    # An error body without any status (e.g. {"success": false, "message": ...}) ends the task
    # as far as the caller can tell: polling on would never finish.
    if (
        status in _FAILED_STATUSES
        or kind in ("failed", "error")
        or (wire.success is False and not status)
    ):
        return TaskFailure(
            session_id=sid,
            task_id=tid,
            error=_error_text(wire),
            code=_error_code(wire),
            usage=usage,
        )
    decoded: Any = msgspec.json.decode(raw) if raw is not None else {}
    return TaskUnknownStatus(
        session_id=sid,
        task_id=tid,
        status=wire.status or kind,
        raw=decoded if isinstance(decoded, dict) else {"body": decoded},
    )


def decode_task_status(body: bytes, session_id: str = "", task_id: str = "") -> TaskStatus:
    """Decode a task answer (held request, poll or pushed event) into its typed state.

    Raises:
        msgspec.DecodeError: The body is not JSON of a task answer's shape.
    """
    return normalise_task_payload(_task_decoder.decode(body), session_id, task_id, body)


def decode_started_task(body: bytes, session_id: str = "") -> TaskStatus:
    """Decode the answer to a request that started a task; it must name the task.

    Raises:
        msgspec.ValidationError: The answer has no session or task id to follow up with.
    """
    status = decode_task_status(body, session_id, "")
    if not status.session_id or not status.task_id:
        raise msgspec.ValidationError("the answer names no sessionId/taskId to follow the task")
    return status


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
