"""Socket.io payloads decoded into typed events (``_core/events.py``), without a server.

The payloads are the shapes the service pushes (and the emulator sends): progress on the
``message`` event, a task's final state on ``message`` too, and the session's named events.
Whatever does not fit becomes an `UnknownEvent`, never an error: a push channel must not stop
on one odd message. Hostile payloads are fuzzed in ``tests/test_fuzz_decoders.py``; events
reaching handles over a real socket are in ``tests/tasks/test_channel.py``.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from webrun_async._core.events import decode_event
from webrun_async.types import (
    AgentThought,
    BrowserAction,
    InstanceDisconnected,
    InstanceReconnected,
    ResponseUpdate,
    SessionEnded,
    TaskFailure,
    TaskGuardrail,
    TaskResult,
    TaskTerminated,
    UnknownEvent,
)

# -- progress -----------------------------------------------------------------------------------


def test_progress_events() -> None:
    update = decode_event(
        "message", {"type": "response_update", "data": {"message": "Starting task..."}}, "s1"
    )
    assert isinstance(update, ResponseUpdate)
    assert update.message == "Starting task..."
    thought = decode_event(
        "message", {"type": "agent", "content": "Looking for a search box"}, "s1"
    )
    assert thought == AgentThought(content="Looking for a search box")
    action = decode_event(
        "message", {"type": "action", "data": {"name": "CLICK", "target": "#search"}}, "s1"
    )
    assert isinstance(action, BrowserAction)
    assert (action.name, action.target) == ("CLICK", "#search")


def test_progress_with_fields_missing_takes_the_defaults() -> None:
    action = decode_event("message", {"type": "action"}, "s1")
    assert isinstance(action, BrowserAction)
    assert (action.name, action.target) == ("", None)
    assert decode_event("message", {"type": "agent"}, "s1") == AgentThought(content="")


# -- a task's final state -----------------------------------------------------------------------


def test_a_completed_task_takes_its_session_from_the_channel() -> None:
    payload = {
        "type": "task_completed",
        "taskId": "t1",
        "data": {"message": "Found 10 keyboards", "prompt_tokens": 8500},
        "usage": {"cost": 0.0124},
    }
    result = decode_event("message", payload, "s1")
    assert isinstance(result, TaskResult)
    assert (result.session_id, result.task_id) == ("s1", "t1")
    assert result.message == "Found 10 keyboards"
    assert result.usage.prompt_tokens == 8500
    assert result.usage.cost == 0.0124


@pytest.mark.parametrize(
    ("payload", "error", "code"),
    [
        (
            {"type": "error", "taskId": "t1", "error": "Navigation timeout after 30 seconds",
             "code": "NAVIGATION_TIMEOUT"},
            "Navigation timeout after 30 seconds",
            "NAVIGATION_TIMEOUT",
        ),
        ({"type": "failed", "taskId": "t1", "message": "It broke"}, "It broke", None),
    ],
)  # fmt: skip
def test_failed_tasks(payload: dict[str, Any], error: str, code: str | None) -> None:
    failure = decode_event("message", payload, "s1")
    assert isinstance(failure, TaskFailure)
    assert (failure.session_id, failure.task_id) == ("s1", "t1")
    assert (failure.error, failure.code) == (error, code)


def test_a_guardrail_and_a_terminated_task() -> None:
    payload = {
        "type": "guardrail_trigger",
        "taskId": "t1",
        "data": {"type": "human_input_needed", "value": "I need login credentials"},
    }
    guardrail = decode_event("message", payload, "s1")
    assert isinstance(guardrail, TaskGuardrail)
    assert (guardrail.kind, guardrail.value) == ("human_input_needed", "I need login credentials")
    assert not guardrail.terminal
    terminated = decode_event(
        "message", {"type": "terminated", "taskId": "t1", "error": "Session terminated"}, "s1"
    )
    assert isinstance(terminated, TaskTerminated)
    assert terminated.terminal
    assert terminated.error == "Session terminated"


# -- the session's events -----------------------------------------------------------------------


def test_named_session_events() -> None:
    ended = decode_event(
        "end_session",
        {"type": "end_session", "reason": "terminated", "message": "Session ended"},
        "s1",
    )
    assert ended == SessionEnded(reason="terminated", message="Session ended")
    lost = decode_event(
        "instance:disconnected",
        {"type": "instance:disconnected", "message": "Instance lost", "gracePeriod": 30000},
        "s1",
    )
    assert isinstance(lost, InstanceDisconnected)
    assert lost.grace_period == 30000
    back = decode_event("instance:reconnected", {"message": "Instance is back"}, "s1")
    assert back == InstanceReconnected(message="Instance is back")


def test_a_named_event_without_a_payload() -> None:
    assert decode_event("end_session", None, "s1") == SessionEnded()
    assert decode_event("instance:reconnected", "not an object", "s1") == InstanceReconnected()


def test_a_session_event_on_message_is_tolerated() -> None:
    assert decode_event("message", {"type": "end_session", "reason": "expired"}, "s1") == (
        SessionEnded(reason="expired")
    )


# -- what does not fit --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "payload", "kind"),
    [
        ("message", {"type": "brand_new_event", "x": 1}, "brand_new_event"),
        ("message", {"content": "no type"}, None),
        ("message", {"type": 5}, None),
        ("message", ["not", "an", "object"], None),
        ("message", None, None),
        ("task:progress", {"type": "agent", "content": "an unknown event name"}, "agent"),
    ],
)
def test_unknown_events_pass_through_raw(name: str, payload: Any, kind: str | None) -> None:
    event = decode_event(name, payload, "s1")
    assert event == UnknownEvent(name=name, type=kind, raw=payload)


def test_a_known_event_that_does_not_fit_is_unknown_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    payload = {"type": "agent", "content": 5}
    with caplog.at_level(logging.WARNING, logger="webrun_async"):
        event = decode_event("message", payload, "s1")
    assert event == UnknownEvent(name="message", type="agent", raw=payload)
    assert "session s1: undecodable 'message' event" in caplog.text
    grace = decode_event("instance:disconnected", {"gracePeriod": "soon"}, "s1")
    assert isinstance(grace, UnknownEvent)
    assert grace.name == "instance:disconnected"
