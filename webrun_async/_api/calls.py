"""The task endpoints, each called from one place: start-session, send-message, run-task, get.

Each function takes the transport and typed input and returns the decoded, normalised answer.
They know the wire (paths, hold timeouts, rate-limit windows, retry rules) and nothing of
handles or sessions: the task layer decides when to call them and what the answers mean.
"""

from __future__ import annotations

from webrun_async._core.codec import decoder, encode
from webrun_async._core.config import HOLD_SECONDS
from webrun_async._core.ratelimit import task_bucket
from webrun_async._core.results import decode_started_task, decode_task_status
from webrun_async._core.transport import Transport
from webrun_async.types.common import Ack
from webrun_async.types.sessions import (
    NewTask,
    SendMessageRequest,
    SessionInfo,
    SessionMessage,
    StartSessionRequest,
    StateChange,
)
from webrun_async.types.tasks import RunTaskRequest, TaskStatus

__all__ = [
    "RUN_TASK",
    "SEND_MESSAGE",
    "START_SESSION",
    "get_task",
    "run_task",
    "send_control",
    "send_new_task",
    "start_session",
    "terminate_session",
]

START_SESSION = "POST /start/start-session"
SEND_MESSAGE = "POST /start/send-message"
RUN_TASK = "POST /start/run-task"

TERMINATE = StateChange(new_state="terminate")
TERMINATE_RETRIES = 8
"""Terminating twice is harmless, and leaving a session running costs money: it is retried
like a GET, and more persistently than other requests."""

_decode_info = decoder(SessionInfo)
_decode_ack = decoder(Ack)
_SEND_MESSAGE_BUCKET = task_bucket(SEND_MESSAGE)
_START_SESSION_BUCKET = task_bucket(START_SESSION)
_RUN_TASK_BUCKET = task_bucket(RUN_TASK)


async def start_session(transport: Transport, request: StartSessionRequest) -> SessionInfo:
    """``POST /start/start-session``: a new session (and its initial task, if one is given)."""
    return await transport.request(
        "POST",
        "/start/start-session",
        _decode_info,
        body=encode(request),
        bucket=_START_SESSION_BUCKET,
    )


async def send_new_task(transport: Transport, session_id: str, message: NewTask) -> TaskStatus:
    """``POST /start/send-message`` with a newTask: held up to 50 s, answers the task's state."""
    return await transport.request(
        "POST",
        "/start/send-message",
        lambda data: decode_started_task(data, session_id),
        body=encode(SendMessageRequest(session_id=session_id, message=message)),
        read_timeout=transport.timeouts.read_for(HOLD_SECONDS),
        bucket=_SEND_MESSAGE_BUCKET,
    )


async def send_control(transport: Transport, session_id: str, message: SessionMessage) -> Ack:
    """``POST /start/send-message`` with any other action: answers an acknowledgement."""
    return await transport.request(
        "POST",
        "/start/send-message",
        _decode_ack,
        body=encode(SendMessageRequest(session_id=session_id, message=message)),
        bucket=_SEND_MESSAGE_BUCKET,
    )


async def terminate_session(transport: Transport, session_id: str) -> Ack:
    """Terminate a session over REST, retried persistently.

    Clean-up skips the client-side rate limiter: leaving a session running is worse than one
    request over the budget, which the server may still refuse.
    """
    return await transport.request(
        "POST",
        "/start/send-message",
        _decode_ack,
        body=encode(SendMessageRequest(session_id=session_id, message=TERMINATE)),
        idempotent=True,
        min_retries=TERMINATE_RETRIES,
    )


async def run_task(transport: Transport, request: RunTaskRequest) -> TaskStatus:
    """``POST /start/run-task``: a task in a session that ends with it; held up to 50 s."""
    return await transport.request(
        "POST",
        "/start/run-task",
        decode_started_task,
        body=encode(request),
        read_timeout=transport.timeouts.read_for(HOLD_SECONDS),
        bucket=_RUN_TASK_BUCKET,
    )


async def get_task(transport: Transport, session_id: str, task_id: str) -> TaskStatus:
    """``GET /task/{session}/{task}``: a task's state now (ids already checked)."""
    return await transport.request(
        "GET",
        f"/task/{session_id}/{task_id}",
        lambda body: decode_task_status(body, session_id, task_id),
    )
