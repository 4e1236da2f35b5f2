"""Handlers of the session and task endpoints under `/start` and `/task`."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from webrun_async.emulator.errors import ApiError, missing_field
from webrun_async.emulator.http.request import engine_of, json_response, read_json_object
from webrun_async.emulator.sim.bodies import hold_body, poll_body
from webrun_async.emulator.sim.control import dispatch, require_text, validate_files
from webrun_async.emulator.sim.engine import Engine
from webrun_async.emulator.sim.session import EmulatedSession
from webrun_async.emulator.sim.taskspec import (
    SessionOptions,
    TaskSpec,
    parse_session_options,
    parse_task,
    parse_webhook,
    pick_task_object,
)

__all__ = ["poll_task", "run_task", "send_message", "start_session"]


def _parse(
    engine: Engine, body: dict[str, Any], *, force_terminate: bool
) -> tuple[SessionOptions, TaskSpec]:
    """Session options and task spec of a start-session or run-task body, references checked."""
    strict = engine.config.strict
    task_obj = pick_task_object(body)
    options = parse_session_options(body, task_obj, strict=strict)
    spec = parse_task(task_obj, strict=strict, force_terminate=force_terminate)
    if spec.webhook is None and task_obj is not body:
        # "Add a webhook object to your session or task request": a session-level one too.
        spec = replace(spec, webhook=parse_webhook(body.get("webhook")))
    if force_terminate:
        require_text(spec)
    env_id = options.environment_id
    if env_id is not None and env_id not in engine.store.environments:
        if options.environment_field == "profileId":
            raise ApiError(404, "Profile not found", "PROFILE_NOT_FOUND")
        raise ApiError(404, "Environment not found", "ENVIRONMENT_NOT_FOUND")
    validate_files(engine, spec)
    return options, spec


def _admit(engine: Engine, options: SessionOptions) -> EmulatedSession:
    engine.check_balance()
    engine.check_instances()
    return engine.create_session(options)


async def start_session(request: web.Request) -> web.Response:
    """POST /start/start-session: create a session, optionally with a first task (no hold)."""
    engine = engine_of(request)
    body = await read_json_object(request)
    options, spec = _parse(engine, body, force_terminate=False)
    session = _admit(engine, options)
    base = engine.base_url
    sid = session.session_id
    answer: dict[str, Any] = {
        "success": True,
        "sessionId": sid,
        "socketURL": base,
        "streaming": {
            "webRTCURL": f"{base}/_emulator/stream/{sid}/whep",
            "webViewURL": f"{base}/_emulator/stream/{sid}",
            "dimensions": {"width": 1024, "height": 600},
        },
        "initialPrompt": spec.text,
        "expiresIn": int(engine.config.session_timeout * 1000),
        "balance": engine.store.account.balance,
        "message": "Connect to instance using sessionId in auth",
    }
    if spec.text.strip():
        # Additive: the docs give no way to poll the initial task otherwise.
        answer["taskId"] = engine.submit(session, spec).task_id
    return json_response(answer)


async def run_task(request: web.Request) -> web.Response:
    """POST /start/run-task: a one-task session that ends itself, held up to `inline_wait`."""
    engine = engine_of(request)
    body = await read_json_object(request)
    options, spec = _parse(engine, body, force_terminate=True)
    session = _admit(engine, options)
    task = engine.submit(session, spec)
    await engine.hold(task, engine.config.inline_wait)
    legacy = engine.config.dialect == "legacy"
    return json_response(hold_body(task, engine.now(), engine.base_url, legacy=legacy))


async def send_message(request: web.Request) -> web.Response:
    """POST /start/send-message: the universal control endpoint."""
    engine = engine_of(request)
    body = await read_json_object(request)
    session_id, message = body.get("sessionId"), body.get("message")
    if not isinstance(session_id, str) or not session_id or not isinstance(message, dict):
        raise missing_field("sessionId and message are required")
    session = engine.store.live.get(session_id)
    if session is None:
        # 401, not 404, as the live endpoints page documents.
        raise ApiError(401, "Session not found or unauthorized", "SESSION_NOT_FOUND")
    return json_response(await dispatch(engine, session, message, engine.config.inline_wait))


async def poll_task(request: web.Request) -> web.Response:
    """GET /task/{sessionId}/{taskId}: the task's current state (no auth required)."""
    engine = engine_of(request)
    session = engine.store.sessions.get(request.match_info["sessionId"])
    task = session.tasks.get(request.match_info["taskId"]) if session is not None else None
    if task is None:
        raise ApiError(404, "Task not found", "TASK_NOT_FOUND")
    legacy = engine.config.dialect == "legacy"
    return json_response(poll_body(task, engine.now(), legacy=legacy))
