"""The OpenAI-compatible chat endpoint: each request runs one task in its own session."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, overload

import msgspec

from webrun_async._api.chat_stream import ChatCompletionStream
from webrun_async._core.codec import decoder, encode
from webrun_async._core.exceptions import APIResponseValidationError, InvalidParameterError
from webrun_async._core.params import MAX_DURATION_SECONDS, check_reach_out, check_text
from webrun_async._core.ratelimit import task_bucket
from webrun_async.resources._base import Resource
from webrun_async.types.chat import ChatCompletion, ChatCompletionRequest, ChatMessage

__all__ = ["Chat", "Completions"]

CHAT = "POST /v1/chat/completions"

_decode_completion = decoder(ChatCompletion)


def _messages(messages: object) -> list[ChatMessage]:
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Sequence):
        raise InvalidParameterError("messages", "must be a list of messages")
    if not messages:
        raise InvalidParameterError("messages", "must not be empty")
    out: list[ChatMessage] = []
    for i, item in enumerate(messages):
        if isinstance(item, ChatMessage):
            out.append(item)
            continue
        try:
            out.append(msgspec.convert(item, ChatMessage))
        except msgspec.ValidationError as exc:
            raise InvalidParameterError(f"messages[{i}]", str(exc)) from None
    if not any(m.role == "user" for m in out):
        raise InvalidParameterError("messages", "needs at least one message with role 'user'")
    return out


def build_request(
    model: str,
    messages: object,
    *,
    stream: bool,
    max_tokens: int | None,
    temperature: float | None,
    reach_out_mode: str | None,
) -> ChatCompletionRequest:
    """Validate a chat request and build its body."""
    check_text("model", model)
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise InvalidParameterError("max_tokens", "must be a positive int")
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, int | float)
    ):
        raise InvalidParameterError("temperature", "must be a number")
    return ChatCompletionRequest(
        model=model,
        messages=_messages(messages),
        stream=stream,
        max_tokens=max_tokens,
        temperature=temperature,
        reach_out_mode=check_reach_out(reach_out_mode) if reach_out_mode is not None else None,
    )


class Completions(Resource):
    """Reach it as ``client.chat.completions``."""

    __slots__ = ()

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Sequence[ChatMessage | Mapping[str, Any]],
        stream: Literal[False] = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
        reach_out_mode: str | None = None,
    ) -> ChatCompletion: ...

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Sequence[ChatMessage | Mapping[str, Any]],
        stream: Literal[True],
        max_tokens: int | None = None,
        temperature: float | None = None,
        reach_out_mode: str | None = None,
    ) -> ChatCompletionStream: ...

    async def create(
        self,
        *,
        model: str,
        messages: Sequence[ChatMessage | Mapping[str, Any]],
        stream: bool = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
        reach_out_mode: str | None = None,
    ) -> ChatCompletion | ChatCompletionStream:
        """Run the conversation's last user message as a browser task and answer it.

        Each request is one task in a session of its own, which ends with it.

        Args:
            model: ``"enigma-browser-1"`` (or another id from ``client.models.list()``).
            messages: ``{"role": ..., "content": ...}`` dicts or :class:`ChatMessage` objects.
            stream: Answer with a :class:`ChatCompletionStream` of chunks as they arrive
                (the request's headers are in when this returns).
            max_tokens: Output token cap.
            temperature: Accepted for compatibility; the service ignores it.
            reach_out_mode: ``"off"``, ``"guardrail_only"`` or ``"full"``.

        Raises:
            GuardrailTriggered: The agent needed human input; the endpoint cannot provide it.
            APIResponseValidationError: A stream was asked for and something else came back.
            APIError: The request failed.
        """
        request = build_request(
            model,
            messages,
            stream=stream,
            max_tokens=max_tokens,
            temperature=temperature,
            reach_out_mode=reach_out_mode,
        )
        transport = self._transport
        # The endpoint may stay silent until its task is over, up to the longest task.
        silent_for = transport.timeouts.read_for(MAX_DURATION_SECONDS)
        if not stream:
            return await transport.request(
                "POST",
                "/v1/chat/completions",
                _decode_completion,
                body=encode(request),
                read_timeout=silent_for,
                bucket=task_bucket(CHAT),
            )
        response = await transport.stream(
            "POST",
            "/v1/chat/completions",
            body=encode(request),
            first_byte_timeout=silent_for,
            bucket=task_bucket(CHAT),
        )
        if response.content_type != "text/event-stream":
            response.close()
            raise APIResponseValidationError(
                f"expected a text/event-stream answer, got {response.content_type or 'none'}",
                method="POST",
                path="/v1/chat/completions",
                status=200,
            )
        return ChatCompletionStream(response, idle_timeout=transport.timeouts.stream_idle)


class Chat:
    """The chat API: ``client.chat.completions``."""

    __slots__ = ("completions",)

    def __init__(self, completions: Completions) -> None:
        self.completions = completions
