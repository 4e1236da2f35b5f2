"""The `message` actions of send-message (newTask, state, interaction, guardrail).

Transport-independent: the REST handler calls `dispatch` with the `message` object, and a socket
server can call it with the object a client emits on `message`, choosing its own hold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeGuard

from webrun_async.emulator.errors import ApiError, bad_param, missing_field

from .bodies import hold_body
from .engine import Engine
from .session import EmulatedSession
from .taskspec import TaskSpec, parse_task

__all__ = ["dispatch", "require_text", "validate_files"]

SENT = {"success": True, "message": "Message sent successfully"}
_ACTION_TYPES = ("newTask", "state", "interaction", "guardrail")
_STATES = ("pause", "resume", "stop", "terminate")
_POINTER_ACTIONS = ("CLICK", "DOUBLE_CLICK")
_INTERACTIONS = ("takeOverControl", "releaseControl", *_POINTER_ACTIONS, "TYPE", "KEY_PRESS")
# Viewport plus browser chrome; the docs recommend it, so only strict mode enforces it.
_MAX_X, _MAX_Y = 1024, 755


async def dispatch(
    engine: Engine, session: EmulatedSession, message: Mapping[str, Any], hold: float | None
) -> dict[str, Any]:
    """Validate and perform one message; returns the answer body.

    Args:
        hold: Seconds a newTask waits for its result before answering pending.

    Raises:
        ApiError: 400 for a bad message, 402 without money, 409 in strict mode when busy.
    """
    action = message.get("actionType")
    if action == "newTask":
        return await _new_task(engine, session, message, hold)
    if action == "state":
        _state(engine, session, message)
    elif action == "interaction":
        _interaction(engine, session, message)
    elif action == "guardrail":
        _guardrail(engine, session, message)
    else:
        raise bad_param("actionType", f"must be one of {', '.join(_ACTION_TYPES)}")
    session.last_activity = engine.now()
    return dict(SENT)


def require_text(spec: TaskSpec) -> None:
    """Raise the documented 400 when a task has no text."""
    if not spec.text.strip():
        raise missing_field("taskDetails is required")


def validate_files(engine: Engine, spec: TaskSpec) -> None:
    """Raise 400 for a file id the emulator never issued."""
    for file_id in spec.files:
        if file_id not in engine.store.files:
            raise ApiError(400, f"Unknown file id: {file_id}", "INVALID_PARAMETER")


async def _new_task(
    engine: Engine, session: EmulatedSession, message: Mapping[str, Any], hold: float | None
) -> dict[str, Any]:
    config = engine.config
    spec = parse_task(message, strict=config.strict)
    require_text(spec)
    validate_files(engine, spec)
    engine.check_balance()
    if config.strict and (session.current is not None or session.queue):
        raise ApiError(409, "A task is already running in this session", "TASK_ALREADY_RUNNING")
    task = engine.submit(session, spec)
    await engine.hold(task, hold)
    return hold_body(task, engine.now(), engine.base_url, legacy=config.dialect == "legacy")


def _state(engine: Engine, session: EmulatedSession, message: Mapping[str, Any]) -> None:
    state = message.get("newState")
    if state not in _STATES:
        raise bad_param("newState", f"must be one of {', '.join(_STATES)}")
    if state == "pause":
        engine.pause(session, True)
    elif state == "resume":
        engine.pause(session, False)
    elif state == "stop":
        engine.stop(session)
    else:
        engine.end_session(session, "terminated")


def _interaction(engine: Engine, session: EmulatedSession, message: Mapping[str, Any]) -> None:
    action = message.get("action")
    if not isinstance(action, Mapping):
        raise bad_param("action", "must be an object")
    kind = action.get("type")
    if kind not in _INTERACTIONS:
        raise bad_param("action.type", f"must be one of {', '.join(_INTERACTIONS)}")
    record: dict[str, Any] = {"type": kind}
    if kind in _POINTER_ACTIONS:
        for axis, high in (("x", _MAX_X), ("y", _MAX_Y)):
            value = action.get(axis)
            if not _is_number(value) or value < 0:
                raise bad_param(f"action.{axis}", "must be a number >= 0")
            if engine.config.strict and value > high:
                raise bad_param(f"action.{axis}", f"must be between 0 and {high}")
            record[axis] = value
    elif kind == "TYPE":
        text, human = action.get("text"), action.get("humanLike")
        if not isinstance(text, str):
            raise bad_param("action.text", "must be a string")
        if human is not None and not isinstance(human, bool):
            raise bad_param("action.humanLike", "must be a boolean")
        record.update(text=text, humanLike=bool(human))
    elif kind == "KEY_PRESS":
        key = action.get("key")
        if not isinstance(key, str) or not key:
            raise bad_param("action.key", "must be a non-empty string")
        record["key"] = key
    elif kind == "takeOverControl":
        engine.pause(session, True)
    else:
        engine.pause(session, False)
    session.interactions.append(record)


def _guardrail(engine: Engine, session: EmulatedSession, message: Mapping[str, Any]) -> None:
    reply = None
    for name in ("taskDetails", "prompt"):
        value = message.get(name)
        if value is not None and not isinstance(value, str):
            raise bad_param(name, "must be a string")
        reply = reply or value
    state = message.get("newState", "resume")
    if state not in ("resume", "stop"):
        raise bad_param("newState", "must be one of resume, stop")
    engine.answer_guardrail(session, reply or "", resume=state == "resume")


def _is_number(value: object) -> TypeGuard[float]:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
