"""Answer bodies describing a task: poll, hold (inline or pending) and push events.

The canonical shapes follow the live API reference pages. The legacy dialect
emits the older documented shapes so that a client's parser of them can be tested over HTTP.
"""

from __future__ import annotations

from typing import Any

from .ids import iso
from .session import EmulatedTaskStatus, Task

__all__ = [
    "completed_event",
    "error_event",
    "guardrail_event",
    "hold_body",
    "poll_body",
]

PENDING_MESSAGE = "Task still running. Poll GET /task/:sessionId/:taskId for result."
TERMINATED_ERROR = "Session terminated"


def poll_body(task: Task, now: float, *, legacy: bool) -> dict[str, Any]:
    """The `GET /task/{sessionId}/{taskId}` body for the task's current state."""
    ids = _ids(task)
    usage = task.usage(now)
    usage_json = usage.legacy() if legacy else usage.canonical()
    status = task.status
    if status is EmulatedTaskStatus.COMPLETED:
        return {"success": True, **completed_event(task, now, legacy=legacy)}
    if status is EmulatedTaskStatus.GUARDRAIL:
        body = {"success": True, **guardrail_event(task)}
        if legacy:
            # The older docs showed the guardrail poll without ids.
            del body["sessionId"], body["taskId"]
        else:
            body["usage"] = usage_json
        return body
    if status is EmulatedTaskStatus.FAILED:
        code, text = task.error or ("UNKNOWN_ERROR", "Task failed")
        body = {"success": False, **ids, "status": "failed", "error": text, "code": code}
        if legacy:
            body["type"] = "failed"
        body["usage"] = usage_json
        return body
    if status is EmulatedTaskStatus.TERMINATED:
        body = {"success": False, **ids, "status": "terminated", "error": TERMINATED_ERROR}
        body["usage"] = usage_json
        return body
    if legacy:
        return {"success": True, "status": "active", "pending": True, "usage": usage_json}
    return {"success": True, **ids, "status": "running", "pending": True, "usage": usage_json}


def hold_body(task: Task, now: float, base_url: str, *, legacy: bool) -> dict[str, Any]:
    """What a held run-task/newTask answers: the settled result, or a pending body."""
    if task.settled:
        if legacy and task.status is EmulatedTaskStatus.COMPLETED:
            data = _legacy_data(task, now)
            result = {"type": "task_completed", "data": data}
            return {"success": True, **_ids(task), "status": "complete", "result": result}
        return poll_body(task, now, legacy=legacy)
    ids = _ids(task)
    poll_url = f"{base_url}/task/{ids['sessionId']}/{ids['taskId']}"
    if legacy:
        return {
            "success": True,
            **ids,
            "pending": True,
            "pollUrl": poll_url,
            "message": PENDING_MESSAGE,
        }
    return {
        "success": True,
        **ids,
        "status": "pending",
        "pending": True,
        "pollUrl": poll_url,
        "message": PENDING_MESSAGE,
    }


def completed_event(task: Task, now: float, *, legacy: bool = False) -> dict[str, Any]:
    """The `task_completed` payload: the completed poll body without `success`."""
    usage = task.usage(now)
    if legacy:
        data, usage_json = _legacy_data(task, now), usage.legacy()
    else:
        data, usage_json = dict(task.result or {}), usage.canonical()
    return {
        "type": "task_completed",
        **_ids(task),
        "data": data,
        "usage": usage_json,
        "completedAt": iso(task.completed_at),
    }


def guardrail_event(task: Task) -> dict[str, Any]:
    """The `guardrail_trigger` payload (with ids, which the older docs left out)."""
    return {
        "type": "guardrail_trigger",
        **_ids(task),
        "data": {"type": "human_input_needed", "value": task.guardrail_value or ""},
    }


def error_event(task: Task) -> dict[str, Any]:
    """The socket `error` payload of a failed task (with ids; the docs' example has none)."""
    code, text = task.error or ("UNKNOWN_ERROR", "Task failed")
    return {"type": "error", **_ids(task), "error": text, "code": code}


def _ids(task: Task) -> dict[str, str]:
    return {"sessionId": task.session.session_id, "taskId": task.task_id}


def _legacy_data(task: Task, now: float) -> dict[str, Any]:
    usage = task.usage(now)
    return {
        **(task.result or {}),
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "completion_time": usage.completion_time,
    }
