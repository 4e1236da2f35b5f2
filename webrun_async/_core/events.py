"""Turning socket.io payloads into typed events.

python-socketio hands over payloads already parsed into Python objects; they are converted
with msgspec into the Structs of :mod:`webrun_async.types.events`, and final task states into
the same typed states a poll returns (through :func:`normalise_task_payload`). A payload that
does not fit becomes an :class:`UnknownEvent` rather than an error: a push channel must not
stop on one odd message.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from webrun_async._core.results import _WireTask, normalise_task_payload
from webrun_async.types.events import (
    AgentThought,
    BrowserAction,
    InstanceDisconnected,
    InstanceReconnected,
    ResponseUpdate,
    SessionEnded,
    SessionEvent,
    UnknownEvent,
)
from webrun_async.types.tasks import TaskFailure, TaskGuardrail, TaskResult, TaskTerminated

__all__ = ["decode_event"]

logger = logging.getLogger("webrun_async")

_PROGRESS: dict[str, type[AgentThought | BrowserAction | ResponseUpdate]] = {
    "agent": AgentThought,
    "action": BrowserAction,
    "response_update": ResponseUpdate,
}
_FINAL = frozenset({"task_completed", "guardrail_trigger", "error", "failed", "terminated"})
_NAMED: dict[str, type[SessionEnded | InstanceDisconnected | InstanceReconnected]] = {
    "end_session": SessionEnded,
    "instance:disconnected": InstanceDisconnected,
    "instance:reconnected": InstanceReconnected,
}


def decode_event(name: str, payload: Any, session_id: str) -> SessionEvent:
    """Decode one socket.io event (``name`` is the event, ``payload`` its argument)."""
    kind = payload.get("type") if isinstance(payload, dict) else None
    if not isinstance(kind, str):
        kind = None  # a hostile or broken payload: it becomes an UnknownEvent
    try:
        if name == "message":
            if kind in _PROGRESS:
                return msgspec.convert(payload, _PROGRESS[kind])
            if kind in _FINAL:
                state = normalise_task_payload(msgspec.convert(payload, _WireTask), session_id, "")
                if isinstance(state, TaskResult | TaskFailure | TaskTerminated | TaskGuardrail):
                    return state
            if kind in _NAMED:  # some docs pages send these on "message" too
                return msgspec.convert(payload, _NAMED[kind])
        elif name in _NAMED:
            return msgspec.convert(payload if isinstance(payload, dict) else {}, _NAMED[name])
    except msgspec.ValidationError as exc:
        logger.warning("session %s: undecodable %r event (%s)", session_id, name, exc)
    return UnknownEvent(name=name, type=kind, raw=payload)
