"""A streamed chat completion: Server-Sent Events decoded into typed chunks as they arrive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType

import anyio
import msgspec

from webrun_async._core.exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    GuardrailTriggered,
    TaskFailed,
    UsageError,
)
from webrun_async._core.transport import OpenResponse
from webrun_async.sse import SSEDecoder
from webrun_async.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    Choice,
    WebRunInfo,
)

__all__ = ["ChatCompletionStream"]

_DONE = b"[DONE]"


class _StreamError(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    message: str | None = None
    type: str | None = None
    code: str | int | None = None


class _WireChunk(ChatCompletionChunk, kw_only=True, frozen=True, gc=False):
    """A chunk as it may arrive: an ``error`` object replaces the chunk mid-stream."""

    error: _StreamError | None = None


_decode_chunk = msgspec.json.Decoder(_WireChunk).decode


def _stream_error(error: _StreamError) -> GuardrailTriggered | TaskFailed:
    text = error.message or "the task failed"
    if error.type == "guardrail_error" or error.code == "guardrail_triggered":
        return GuardrailTriggered(text.removeprefix("Guardrail triggered: "), kind="guardrail")
    # Each chat request is one task: an error in its stream is that task failing.
    code = error.code if error.code is not None else error.type
    return TaskFailed(text, code=str(code) if code is not None else None)


class ChatCompletionStream:
    """A chat completion being streamed: iterate it for :class:`ChatCompletionChunk` objects.

    Use it as an async context manager (``async with stream:``) so the HTTP response is closed
    the moment the block is left; breaking out of ``async for`` or being cancelled closes it
    too. The stream stops at ``data: [DONE]``. Once it is over, :attr:`text` holds the whole
    answer and :attr:`completion` the equivalent :class:`ChatCompletion`.

    Raises (while iterating):
        GuardrailTriggered: The agent needed human input, which this endpoint cannot give.
        TaskFailed: The task behind the completion failed.
        APITimeoutError: No data arrived for ``Timeouts.stream_idle`` seconds.
        APIConnectionError: The stream broke, or ended before ``[DONE]``.
        APIResponseValidationError: A chunk did not decode.
    """

    __slots__ = (
        "_closed",
        "_decoder",
        "_done",
        "_finishes",
        "_first",
        "_idle",
        "_last",
        "_response",
        "_roles",
        "_started",
        "_texts",
    )

    def __init__(self, response: OpenResponse, *, idle_timeout: float | None) -> None:
        self._response = response
        self._idle = idle_timeout
        self._decoder = SSEDecoder()
        self._started = False  # a first chunk has arrived: the idle limit applies from now on
        self._done = False
        self._closed = False
        self._first: ChatCompletionChunk | None = None
        self._last: ChatCompletionChunk | None = None
        # per choice index: the content pieces, the role, the finish reason
        self._texts: dict[int, list[str]] = {}
        self._roles: dict[int, str] = {}
        self._finishes: dict[int, str] = {}

    def __repr__(self) -> str:
        state = "done" if self._done else "closed" if self._closed else "open"
        return f"ChatCompletionStream({self._response.path!r}, {state})"

    async def __aenter__(self) -> ChatCompletionStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP response now (idempotent)."""
        if not self._closed:
            self._closed = True
            self._response.close(complete=self._done)

    @property
    def done(self) -> bool:
        """Whether the stream reached ``[DONE]``."""
        return self._done

    @property
    def text(self) -> str:
        """The answer of the first choice so far."""
        return "".join(self._texts.get(0, ()))

    @property
    def completion(self) -> ChatCompletion:
        """The whole completion, once the stream is done.

        Raises:
            UsageError: The stream is not finished yet.
        """
        if not self._done:
            raise UsageError("the stream is not finished: iterate it (or await collect()) first")
        first, last = self._first, self._last
        indexes = sorted({*self._texts, *self._roles, *self._finishes})
        choices = [
            Choice(
                index=index,
                message=ChatMessage(
                    role=self._roles.get(index, "assistant"),
                    content="".join(self._texts.get(index, ())),
                ),
                finish_reason=self._finishes.get(index),
            )
            for index in indexes
        ]
        webrun: WebRunInfo | None = last.webrun if last is not None else None
        return ChatCompletion(
            id=first.id if first is not None else "",
            created=first.created if first is not None else 0,
            model=first.model if first is not None else "",
            choices=choices,
            webrun=webrun,
        )

    async def collect(self) -> ChatCompletion:
        """Read the rest of the stream and return the whole completion."""
        async for _ in self:
            pass
        return self.completion

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        # A fresh generator per loop: when a loop is left early (or cancelled) the generator is
        # finalised and closes the response.
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ChatCompletionChunk]:
        if self._closed:
            if self._done:
                return
            raise UsageError("the stream was closed before it finished")
        feed = self._decoder.feed_raw
        absorb = self._absorb
        try:
            while not self._done:
                chunk = await self._read()
                for _, data, _, _ in feed(chunk):
                    if data == _DONE:
                        self._done = True
                        break
                    try:
                        item = _decode_chunk(data)
                    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                        raise self._undecodable(exc) from None
                    if item.error is not None:
                        raise _stream_error(item.error)
                    absorb(item)
                    yield item
        finally:
            self.close()

    async def _read(self) -> bytes:
        response = self._response
        limit = self._idle if self._started else None
        try:
            with anyio.fail_after(limit):
                chunk = await response.read_chunk()
        except TimeoutError:
            raise APITimeoutError(
                f"the stream was silent for {limit:g} s", method=response.method, path=response.path
            ) from None
        if not chunk:
            raise APIConnectionError(
                "the stream ended before [DONE]", method=response.method, path=response.path
            )
        self._started = True
        return chunk

    def _undecodable(self, exc: Exception) -> APIResponseValidationError:
        return APIResponseValidationError(
            f"a streamed chunk did not decode: {exc}",
            method=self._response.method,
            path=self._response.path,
            status=200,
        )

    def _absorb(self, item: ChatCompletionChunk) -> None:
        if self._first is None:
            self._first = item
        self._last = item
        for choice in item.choices:
            delta = choice.delta
            if delta.content:
                texts = self._texts.get(choice.index)
                if texts is None:
                    texts = self._texts[choice.index] = []
                texts.append(delta.content)
            if delta.role is not None:
                self._roles[choice.index] = delta.role
            if choice.finish_reason is not None:
                self._finishes[choice.index] = choice.finish_reason
