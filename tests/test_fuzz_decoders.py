"""Hostile server input, fuzzed: the decoders answer a typed value or a decode error.

Whatever bytes a REST answer holds and whatever a socket event carries, decoding never raises
a bare ``KeyError``, ``TypeError`` or the like and never hangs: REST answers become the
declared type or ``msgspec.DecodeError``/``ValidationError`` (which the transport turns into
``APIResponseValidationError`` naming the endpoint), socket events become a typed event or an
``UnknownEvent``. The SSE parser has its own fuzzing in ``tests/core/test_sse.py``; socket
events are checked one by one in ``tests/core/test_events.py``.
"""

from __future__ import annotations

import typing
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.scripted import ScriptedReply, scripted_server
from webrun_async import APIConnectionError, APIResponseValidationError, AsyncWebRun, RetryPolicy
from webrun_async._core.events import decode_event
from webrun_async._core.results import decode_started_task, decode_task_status
from webrun_async.types import TaskStatus, UnknownEvent

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
KEYS = [
    "success", "type", "status", "sessionId", "taskId", "data", "message", "error", "code",
    "usage", "result", "pending", "files", "network", "value", "completedAt", "reason",
    "prompt_tokens", "cost", "promptTokens", "completion_time", "content", "gracePeriod",
]  # fmt: skip
TYPES = [
    "task_completed", "task_failed", "task_terminated", "guardrail_trigger", "error", "agent",
    "action", "response_update", "end_session", "instance:disconnected", "completed", "running",
    "failed", "pending", "terminated", "complete",
]  # fmt: skip
# Documents shaped like the API's, with the right keys and any values: deeper than random.
task_like = st.recursive(
    st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8),
    lambda inner: st.dictionaries(
        st.sampled_from(KEYS), inner | json_values | st.sampled_from(TYPES), max_size=8
    ),
    max_leaves=12,
)
EVENT_NAMES = ["message", "end_session", "instance:disconnected", "instance:reconnected", "other"]
DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError)
TASK_ANSWER = {"success": True, "status": "running", "sessionId": "a1b2c3d4e5f6", "taskId": "t1"}
STATUS_CLASSES = tuple(typing.get_origin(t) or t for t in typing.get_args(TaskStatus))


def decodes_or_refuses(body: bytes) -> None:
    for decode in (decode_task_status, decode_started_task):
        try:
            status = decode(body, "s1")
        except DECODE_ERRORS:
            continue
        assert isinstance(status, STATUS_CLASSES)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_are_refused(body: bytes) -> None:
    decodes_or_refuses(body)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task_like | json_values)
def test_any_json_document_decodes_or_is_refused(document: Any) -> None:
    decodes_or_refuses(msgspec.json.encode(document))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(EVENT_NAMES), task_like | json_values)
def test_any_socket_event_is_typed_or_unknown(name: str, payload: Any) -> None:
    event = decode_event(name, payload, "s1")
    assert event is not None
    if isinstance(event, UnknownEvent):
        assert event.name == name


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"null",
        b"[]",
        b'{"success": true, "sessionId": 5}',
        b'{"success": true, "sessionId": "a1b2c3d4e5f6", "expiresIn": "soon"}',
        b"\xff\xfe\x00",
    ],
)
async def test_a_broken_answer_becomes_a_typed_error_naming_the_endpoint(body: bytes) -> None:
    """Through the whole client, over HTTP: a server answers start-session with ``body``."""
    async with scripted_server() as server:
        server.default = ScriptedReply(200, raw=body)
        async with AsyncWebRun("k", base_url=server.base_url) as client:
            with pytest.raises(APIResponseValidationError) as caught:
                await client.sessions.create()
    assert "POST /start/start-session" in str(caught.value)


@pytest.mark.parametrize(("method", "attempts"), [("GET", 4), ("POST", 1)])
async def test_a_truncated_answer_is_a_connection_error_naming_the_endpoint(
    method: str, attempts: int
) -> None:
    """The body stops short of its Content-Length: retried if the request is idempotent."""
    async with scripted_server() as server:
        server.default = ScriptedReply(200, json=TASK_ANSWER, cut_after=40)
        async with AsyncWebRun(
            "k", base_url=server.base_url, rate_limit=None, retry=RetryPolicy(wait=False)
        ) as client:
            call = (
                client.tasks.get("a1b2c3d4e5f6", "x9y8z7w6v5u4")
                if method == "GET"
                else client.sessions.create()
            )
            with pytest.raises(APIConnectionError) as caught:
                await call
        assert f"{method} /" in str(caught.value)
        assert len(server.seen) == attempts  # a GET is retried (3 retries); a POST may have acted
