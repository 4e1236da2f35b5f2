"""The OpenAI-compatible endpoints: `/v1/models` (list and retrieve), `/v1/chat/completions`."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from webrun_async.emulator.errors import ApiError
from webrun_async.emulator.http.request import encode, engine_of, json_response, read_json_object
from webrun_async.emulator.sim.engine import Engine
from webrun_async.emulator.sim.session import EmulatedTaskStatus, Task
from webrun_async.emulator.sim.taskspec import TOKEN_RANGE, SessionOptions, TaskSpec

__all__ = ["chat_completions", "list_models", "retrieve_model"]

MODELS = ("enigma-browser-1", "webrun-browser-1", "webrun-browser-pro", "webrun-browser-fast")
# The list shows the two documented names; the other accepted names are aliases of them.
_LISTED = ("enigma-browser-1", "webrun-browser-1")
_CREATED = 1704067200
_PIECES = re.compile(r"\s*\S+")


async def list_models(request: web.Request) -> web.Response:
    """GET /v1/models."""
    return json_response({"object": "list", "data": [_model(name) for name in _LISTED]})


async def retrieve_model(request: web.Request) -> web.Response:
    """GET /v1/models/{model}: any model the chat endpoint accepts."""
    name = request.match_info["model"]
    if name not in MODELS:
        raise _unknown_model(name)
    return json_response(_model(name))


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": _CREATED, "owned_by": name.split("-")[0]}


def _unknown_model(name: str, status: int = 404) -> ApiError:
    """An unknown model: 404 on retrieve, 400 in a chat request (it is one field of the body)."""
    return ApiError(
        status,
        f"The model '{name}' does not exist",
        "MODEL_NOT_FOUND",
        openai_code="model_not_found",
    )


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions: one fresh, self-ending session per request."""
    engine = engine_of(request)
    body = await read_json_object(request)
    chat = _validate(body)
    engine.check_balance()
    engine.check_instances()
    reach = body.get("reach_out_mode")
    options = SessionOptions(reach_out_mode=reach if isinstance(reach, str) else "guardrail_only")
    session = engine.create_session(options)
    task = engine.submit(session, chat.spec)
    try:
        if chat.stream:
            return await _stream(request, engine, task, chat)
        await engine.wait_settled(task)
        return _complete(engine, task, chat.model)
    finally:
        # Also runs when the client went away: the request's session never outlives it.
        engine.end_session(session, "terminateOnCompletion")


@dataclass(frozen=True, slots=True)
class _Chat:
    """A validated chat request."""

    model: str
    spec: TaskSpec
    stream: bool
    include_usage: bool


def _validate(body: Mapping[str, Any]) -> _Chat:
    """The model, the task to run and how to answer, or a 400."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model is required", "MISSING_REQUIRED_FIELD")
    if model not in MODELS:
        raise _unknown_model(model, 400)
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
    return _Chat(model, spec, stream, _include_usage(body, stream))


def _include_usage(body: Mapping[str, Any], stream: bool) -> bool:
    """`stream_options.include_usage`, checked as OpenAI checks it."""
    options = body.get("stream_options")
    if options is None:
        return False
    if not stream:
        raise ApiError(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "INVALID_PARAMETER",
        )
    if not isinstance(options, Mapping):
        raise ApiError(400, "stream_options must be an object", "INVALID_PARAMETER")
    include = options.get("include_usage", False)
    if not isinstance(include, bool):
        raise ApiError(400, "stream_options.include_usage must be a boolean", "INVALID_PARAMETER")
    return include


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
            "usage": _usage(engine, task),
            "webrun": {
                "sessionId": session_id,
                "taskId": task.task_id,
                "cost": task.usage(engine.now()).cost,
            },
        }
    )


def _usage(engine: Engine, task: Task) -> dict[str, int]:
    usage = task.usage(engine.now())
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


async def _stream(
    request: web.Request, engine: Engine, task: Task, chat: _Chat
) -> web.StreamResponse:
    """The answer as `chat.completion.chunk` events; with `include_usage`, OpenAI's final
    chunk with `usage` and no choices (the others carry `"usage": null`)."""
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

        def chunk(
            choices: list[dict[str, Any]], usage: dict[str, int] | None = None
        ) -> dict[str, Any]:
            body: dict[str, Any] = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": chat.model,
                "choices": choices,
            }
            if chat.include_usage:
                body["usage"] = usage
            return body

        def choice(delta: dict[str, Any], finish: str | None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": delta, "finish_reason": finish}]

        cut = engine.faults.draw("stream") == "sse_truncate"
        for index, piece in enumerate(_PIECES.findall(_answer(task))):
            delta = {"role": "assistant", "content": piece} if index == 0 else {"content": piece}
            await _event(response, chunk(choice(delta, None)))
            if cut:  # an injected fault: the connection drops after the first chunk
                if request.transport is not None:
                    request.transport.abort()
                return response
        await _event(response, chunk(choice({}, "stop")))
        if chat.include_usage:
            await _event(response, chunk([], _usage(engine, task)))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def _event(response: web.StreamResponse, payload: dict[str, Any]) -> None:
    await response.write(b"data: " + encode(payload) + b"\n\n")


def _answer(task: Task) -> str:
    return str((task.result or {}).get("message", ""))
