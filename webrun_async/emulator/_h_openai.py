"""The OpenAI-compatible endpoints: `/v1/models` and `/v1/chat/completions` (notes §11)."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ._engine import Engine
from ._errors import ApiError
from ._http import engine_of, read_json_object
from ._session import EmulatedTaskStatus, Task
from ._taskspec import TOKEN_RANGE, SessionOptions, TaskSpec
from ._util import encode, json_response

__all__ = ["chat_completions", "list_models"]

MODELS = ("enigma-browser-1", "webrun-browser-1", "webrun-browser-pro", "webrun-browser-fast")
_LISTED = (("enigma-browser-1", "enigma"), ("webrun-browser-1", "webrun"))
_CREATED = 1704067200
_PIECES = re.compile(r"\s*\S+")


async def list_models(request: web.Request) -> web.Response:
    """GET /v1/models."""
    data = [
        {"id": model, "object": "model", "created": _CREATED, "owned_by": owner}
        for model, owner in _LISTED
    ]
    return json_response({"object": "list", "data": data})


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions: one fresh, self-ending session per request."""
    engine = engine_of(request)
    body = await read_json_object(request)
    model, spec, stream = _validate(body)
    engine.check_balance()
    engine.check_instances()
    reach = body.get("reach_out_mode")
    options = SessionOptions(reach_out_mode=reach if isinstance(reach, str) else "guardrail_only")
    session = engine.create_session(options)
    task = engine.submit(session, spec)
    try:
        if stream:
            return await _stream(request, engine, task, model)
        await engine.wait_settled(task)
        return _complete(engine, task, model)
    finally:
        # Also runs when the client went away: the request's session never outlives it.
        engine.end_session(session, "terminateOnCompletion")


def _validate(body: Mapping[str, Any]) -> tuple[str, TaskSpec, bool]:
    """The model, the task to run and whether to stream, or a 400."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model is required", "MISSING_REQUIRED_FIELD")
    if model not in MODELS:
        raise ApiError(
            400,
            f"The model '{model}' does not exist",
            "MODEL_NOT_FOUND",
            openai_code="model_not_found",
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty array", "INVALID_PARAMETER")
    user_text: str | None = None
    for message in messages:
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise ApiError(400, "each message needs a role and content", "INVALID_PARAMETER")
        if message["role"] == "user":
            user_text = _content_text(message.get("content"))
    if user_text is None:
        raise ApiError(400, "messages must contain a user message", "INVALID_PARAMETER")
    if not user_text.strip():
        raise ApiError(400, "the last user message has no text", "INVALID_PARAMETER")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "stream must be a boolean", "INVALID_PARAMETER")
    spec = TaskSpec(
        text=user_text, terminate_on_completion=True, max_output_tokens=_max_tokens(body)
    )
    return model, spec, stream


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for piece in content:
            if not isinstance(piece, Mapping) or piece.get("type") != "text":
                raise ApiError(400, "only text content parts are supported", "INVALID_PARAMETER")
            if not isinstance(piece.get("text"), str):
                raise ApiError(400, "a text content part needs text", "INVALID_PARAMETER")
            texts.append(piece["text"])
        return "\n".join(texts)
    raise ApiError(400, "message content must be a string or an array", "INVALID_PARAMETER")


def _max_tokens(body: Mapping[str, Any]) -> int:
    value = body.get("max_tokens")
    if value is None:
        return TOKEN_RANGE[1]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ApiError(400, "max_tokens must be a positive integer", "INVALID_PARAMETER")
    return min(value, TOKEN_RANGE[1])


def _outcome_error(task: Task) -> ApiError | None:
    """The error a non-completed task turns into, or `None` when it completed."""
    if task.status is EmulatedTaskStatus.COMPLETED:
        return None
    if task.status is EmulatedTaskStatus.GUARDRAIL:
        # Emulator-defined: the docs give the body but neither the status nor the stream form.
        return ApiError(
            400,
            f"Guardrail triggered: {task.guardrail_value}",
            "GUARDRAIL_TRIGGERED",
            openai_type="guardrail_error",
        )
    code, text = task.error or ("SESSION_TERMINATED", "Session terminated")
    return ApiError(500, text, code, openai_type="server_error", openai_code=code)


def _complete(engine: Engine, task: Task, model: str) -> web.Response:
    error = _outcome_error(task)
    if error is not None:
        raise error
    usage = task.usage(engine.now())
    session_id = task.session.session_id
    return json_response(
        {
            "id": f"chatcmpl-{session_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": _answer(task)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
            "webrun": {"sessionId": session_id, "taskId": task.task_id, "cost": usage.cost},
        }
    )


async def _stream(
    request: web.Request, engine: Engine, task: Task, model: str
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    await engine.wait_settled(task)
    error = _outcome_error(task)
    if error is not None:
        await _event(response, error.openai_body())
    else:
        chunk_id, created = f"chatcmpl-{task.session.session_id}", int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
            }

        cut = engine.faults.draw("stream") == "sse_truncate"
        for index, piece in enumerate(_PIECES.findall(_answer(task))):
            delta = {"role": "assistant", "content": piece} if index == 0 else {"content": piece}
            await _event(response, chunk(delta, None))
            if cut:  # an injected fault: the connection drops after the first chunk
                if request.transport is not None:
                    request.transport.abort()
                return response
        await _event(response, chunk({}, "stop"))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def _event(response: web.StreamResponse, payload: dict[str, Any]) -> None:
    await response.write(b"data: " + encode(payload) + b"\n\n")


def _answer(task: Task) -> str:
    return str((task.result or {}).get("message", ""))
