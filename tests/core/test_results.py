"""Every documented shape of a task answer decodes into the right typed state.

The payloads are the documentation's own examples: task answers, socket.io events and their
older variants.
"""

from __future__ import annotations

import msgspec
import pytest

from webrun_async._core.results import decode_task_status
from webrun_async.types import (
    TaskFailure,
    TaskGuardrail,
    TaskPending,
    TaskResult,
    TaskRunning,
    TaskTerminated,
    TaskUnknownStatus,
    Usage,
)

CANONICAL_COMPLETED = b"""{
  "success": true, "sessionId": "a1b2c3d4e5f6", "taskId": "x9y8z7w6v5u4",
  "type": "task_completed",
  "data": {
    "message": "Successfully completed the search",
    "files": [{"source": "https://example.com/report.zip",
               "downloadUrl": "https://blobs.webrun.ai/files/report.zip",
               "filename": "report.zip", "timestamp": 1771138379108}],
    "network": [{"id": "tevo9", "taskId": "x9y8z7w6v5u4",
                 "urls": [{"url": "https://example.com/api/data", "timestamp": 1771138379087.646}]}]
  },
  "usage": {"prompt_tokens": 12450, "completion_tokens": 3200, "total_tokens": 15650,
            "completion_time": 23.5, "cost": 0.0124},
  "completedAt": "2024-01-15T10:30:00Z"
}"""


def test_canonical_completed() -> None:
    status = decode_task_status(CANONICAL_COMPLETED)
    assert isinstance(status, TaskResult)
    assert status.terminal and status.state == "completed"
    assert status.session_id == "a1b2c3d4e5f6"
    assert status.task_id == "x9y8z7w6v5u4"
    assert status.message == "Successfully completed the search"
    assert status.files[0].download_url == "https://blobs.webrun.ai/files/report.zip"
    assert status.files[0].filename == "report.zip"
    assert status.network[0].urls[0].url == "https://example.com/api/data"
    assert status.usage == Usage(
        prompt_tokens=12450,
        completion_tokens=3200,
        total_tokens=15650,
        completion_time=23.5,
        cost=0.0124,
    )
    assert status.completed_at is not None and status.completed_at.year == 2024


def test_quickstart_completed_with_message_only() -> None:
    body = b"""{"success": true, "sessionId": "a1b2c3", "taskId": "x9y8z7",
    "type": "task_completed", "data": {"message": "Successfully searched"},
    "usage": {"prompt_tokens": 12450, "completion_tokens": 3200, "total_tokens": 15650,
    "completion_time": 23.5, "cost": 0.0124}}"""
    status = decode_task_status(body)
    assert isinstance(status, TaskResult)
    assert status.files == [] and status.network == []
    assert status.usage.cost == 0.0124


def test_result_wrapper_with_tokens_inside_data() -> None:
    # The control page's inline answer: a "result" wrapper, tokens inside data, no usage.
    body = b"""{ "success": true, "sessionId": "SESSION_ID", "taskId": "TASK_ID",
      "result": { "type": "task_completed",
                  "data": { "message": "Found 10 wireless keyboard results", "prompt_tokens": 8500,
                            "completion_tokens": 2300, "total_tokens": 10800 } } }"""
    status = decode_task_status(body)
    assert isinstance(status, TaskResult)
    assert status.message == "Found 10 wireless keyboard results"
    assert status.usage.prompt_tokens == 8500
    assert status.usage.completion_tokens == 2300
    assert status.usage.total_tokens == 10800
    assert status.usage.cost == 0.0


def test_status_complete_with_result_wrapper() -> None:
    body = b"""{ "success": true, "sessionId": "s1", "taskId": "t1", "status": "complete",
      "result": { "type": "task_completed", "data": { "message": "done", "prompt_tokens": 12450,
      "completion_tokens": 3200, "total_tokens": 15650, "completion_time": 23.5 } } }"""
    status = decode_task_status(body)
    assert isinstance(status, TaskResult)
    assert status.message == "done"
    assert status.usage.completion_time == 23.5


def test_mcp_status_completed() -> None:
    body = (
        b'{"success": true, "sessionId": "s", "taskId": "t", "status": "completed",'
        b' "data": {"message": "ok"}}'
    )
    assert isinstance(decode_task_status(body), TaskResult)


def test_legacy_camelcase_usage_and_cost_inside_data() -> None:
    # Webhook full_response / events.mdx shapes: camelCase usage, cost inside data.usage.
    body = b"""{"type": "task_completed", "sessionId": "sess_abc123", "taskId": "task_xyz789",
      "data": {"message": "...", "prompt_tokens": 8500, "completion_tokens": 2300,
               "total_tokens": 10800, "completion_time": 12.5},
      "usage": {"inputTokens": 8500, "outputTokens": 2300, "computeTime": 12.5, "cost": 0.0124}}"""
    status = decode_task_status(body)
    assert isinstance(status, TaskResult)
    assert status.usage == Usage(
        prompt_tokens=8500,
        completion_tokens=2300,
        total_tokens=10800,
        completion_time=12.5,
        cost=0.0124,
    )
    legacy_ws = b"""{"type": "task_completed", "taskId": "x9", "data": {"message": "m",
      "prompt_tokens": 15420, "completion_tokens": 8230, "total_tokens": 23650,
      "completion_time": 45.3, "usage": {"cost": 0.0234}}}"""
    status = decode_task_status(legacy_ws, "sid-from-context", "")
    assert isinstance(status, TaskResult)
    assert status.session_id == "sid-from-context"
    assert status.usage.cost == 0.0234
    assert status.usage.prompt_tokens == 15420


def test_pending_variants() -> None:
    endpoints = b"""{"success": true, "sessionId": "s", "taskId": "t", "status": "pending",
      "pollUrl": "https://connect.webrun.ai/task/s/t"}"""
    control = b"""{ "success": true, "sessionId": "s", "taskId": "t", "pending": true,
      "pollUrl": "https://connect.webrun.ai/task/s/t",
      "message": "Task still running. Poll GET /task/:sessionId/:taskId for result." }"""
    for body in (endpoints, control):
        status = decode_task_status(body)
        assert isinstance(status, TaskPending)
        assert not status.terminal
        assert status.poll_url == "https://connect.webrun.ai/task/s/t"


def test_running_variants() -> None:
    live = b"""{"success": true, "sessionId": "s", "taskId": "t", "status": "running",
      "usage": {"prompt_tokens": 8000, "completion_tokens": 2100, "total_tokens": 10100,
      "completion_time": 12.3, "cost": 0.0067}}"""
    status = decode_task_status(live)
    assert isinstance(status, TaskRunning)
    assert status.usage.cost == 0.0067
    legacy = b"""{"success": true, "status": "active", "pending": true,
      "usage": {"inputTokens": 8000, "outputTokens": 2100, "computeTime": 3, "cost": 0.0067}}"""
    status = decode_task_status(legacy, "s", "t")
    assert isinstance(status, TaskRunning)
    assert status.status == "active"
    assert (status.session_id, status.task_id) == ("s", "t")
    assert status.usage.prompt_tokens == 8000
    assert status.usage.total_tokens == 10100
    assert status.usage.completion_time == 3.0


def test_guardrail_without_ids() -> None:
    body = b"""{"success": true, "type": "guardrail_trigger",
      "data": {"type": "human_input_needed", "value": "I need login credentials to proceed"}}"""
    status = decode_task_status(body, "s", "t")
    assert isinstance(status, TaskGuardrail)
    assert status.value == "I need login credentials to proceed"
    assert status.kind == "human_input_needed"
    assert (status.session_id, status.task_id) == ("s", "t")
    assert not status.terminal


def test_failed_variants() -> None:
    documented = b"""{"success": false, "sessionId": "s", "taskId": "t", "status": "failed",
      "error": "Navigation timeout after 30 seconds", "code": "NAVIGATION_TIMEOUT",
      "usage": {"prompt_tokens": 5000, "completion_tokens": 1200, "total_tokens": 6200,
      "completion_time": 30.0, "cost": 0.0045}}"""
    status = decode_task_status(documented)
    assert isinstance(status, TaskFailure)
    assert status.error == "Navigation timeout after 30 seconds"
    assert status.code == "NAVIGATION_TIMEOUT"
    assert status.usage.cost == 0.0045
    quickstart = b'{"success": false, "type": "failed", "message": "It broke"}'
    status = decode_task_status(quickstart, "s", "t")
    assert isinstance(status, TaskFailure)
    assert status.error == "It broke"
    socket_error = b"""{"type": "error", "error": "Navigation timeout after 30 seconds",
      "code": "NAVIGATION_TIMEOUT"}"""
    status = decode_task_status(socket_error, "s", "t")
    assert isinstance(status, TaskFailure)
    assert status.code == "NAVIGATION_TIMEOUT"
    error_object = b'{"success": false, "error": {"message": "Bad", "code": "X"}}'
    status = decode_task_status(error_object, "s", "t")
    assert isinstance(status, TaskFailure)
    assert (status.error, status.code) == ("Bad", "X")


def test_terminated() -> None:
    body = b"""{"success": false, "sessionId": "s", "taskId": "t", "status": "terminated",
      "error": "Session terminated", "usage": {"cost": 0.001}}"""
    status = decode_task_status(body)
    assert isinstance(status, TaskTerminated)
    assert status.terminal
    assert status.error == "Session terminated"
    assert status.usage.cost == 0.001


def test_unknown_status_is_not_terminal_and_keeps_the_raw_body() -> None:
    body = b'{"success": true, "sessionId": "s", "taskId": "t", "status": "warming_up", "x": 1}'
    status = decode_task_status(body)
    assert isinstance(status, TaskUnknownStatus)
    assert not status.terminal
    assert status.status == "warming_up"
    assert status.raw["x"] == 1


def test_unknown_fields_are_ignored() -> None:
    body = CANONICAL_COMPLETED.replace(b'"type"', b'"brandNew": {"a": [1]}, "type"', 1)
    assert isinstance(decode_task_status(body), TaskResult)


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1, 2]", b'{"usage": "lots"}', b'{"data": {"files": "none"}}'],
)
def test_malformed_bodies_raise_decode_errors(body: bytes) -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        decode_task_status(body, "s", "t")
