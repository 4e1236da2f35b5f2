"""A sans-IO Server-Sent Events decoder that follows the WHATWG parsing rules.

Feed it bytes as they arrive, in chunks of any size, split anywhere; it returns the events
those bytes complete::

    decoder = SSEDecoder()
    for chunk in chunks:
        for event in decoder.feed(chunk):
            print(event.event, event.data)

or, over any async iterable of bytes::

    async for event in aiter_sse(response.content.iter_any()):
        ...

The rules (https://html.spec.whatwg.org/multipage/server-sent-events.html): lines end in CR,
LF or CRLF; a leading byte order mark is dropped; lines starting with ``:`` are comments; a line
without ``:`` is a field with an empty value; one space after the colon is removed; ``data``
lines are joined with LF; ``id`` persists across events and is ignored when it contains NUL;
``retry`` takes only ASCII digits; an empty line dispatches the event, unless it has no ``data``
field (``data:`` alone dispatches an empty string); the type is ``message`` unless ``event`` set
it; an event not ended by an empty line when the stream ends is not dispatched.

Lines are split on bytes and decoded as UTF-8 (invalid bytes become U+FFFD) only when an event
is dispatched. A multi-byte character split across chunks is therefore never an issue (its bytes
cannot be CR or LF), and a partial line is kept as the list of its pieces, joined once when it
completes: a line or an event of any size costs time in proportion to its size.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

import msgspec

__all__ = ["SSEDecoder", "ServerSentEvent", "aiter_sse"]

_BOM = b"\xef\xbb\xbf"
_CR = 13
_LF = 10
_COLON = 58


class ServerSentEvent(msgspec.Struct, frozen=True, gc=False):
    """One dispatched event.

    Attributes:
        event: The event type (``"message"`` unless the stream set one).
        data: The data, its lines joined with LF.
        id: The last event id seen in the stream so far (``""`` if none).
        retry: The reconnection time in milliseconds set by this event's ``retry`` field, if any.
    """

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None


RawEvent = tuple[bytes, bytes, str, int | None]
"""An event before decoding: ``(type, data, id, retry)``; ``type`` is ``b""`` for ``message``."""


class SSEDecoder:
    """Incremental Server-Sent Events parser (sans-IO: it never reads or writes anything).

    Attributes:
        last_event_id: The last event id of the stream (``""`` until one is set).
        retry: The latest reconnection time in milliseconds the stream asked for, if any.
    """

    __slots__ = (
        "_data",
        "_event",
        "_event_retry",
        "_head",
        "_partial",
        "_skip_lf",
        "_started",
        "last_event_id",
        "retry",
    )

    def __init__(self) -> None:
        self._started = False  # past the possible byte order mark
        self._head = b""  # the first bytes, while a BOM may still be forming
        self._partial: list[bytes] = []  # pieces of the current unterminated line
        self._skip_lf = False  # the last chunk ended in CR: a leading LF completes a CRLF
        self._data: list[bytes] = []
        self._event = b""
        self._event_retry: int | None = None
        self.last_event_id = ""
        self.retry: int | None = None

    @property
    def pending(self) -> bool:
        """Whether bytes of an unfinished line or event are buffered (lost if the stream ends)."""
        return bool(self._partial or self._data or self._event or self._head)

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Take the next bytes of the stream; return the events they complete."""
        return [
            ServerSentEvent(
                kind.decode("utf-8", "replace") if kind else "message",
                data.decode("utf-8", "replace"),
                event_id,
                retry,
            )
            for kind, data, event_id, retry in self.feed_raw(chunk)
        ]

    def close(self) -> None:
        """The stream ended: whatever is not a complete event is discarded, as the rules say."""
        self._head = b""
        self._partial.clear()
        self._skip_lf = False
        self._reset_event()

    def _reset_event(self) -> None:
        self._data = []
        self._event = b""
        self._event_retry = None

    def feed_raw(self, chunk: bytes) -> list[RawEvent]:
        """Like :meth:`feed`, but type and data stay bytes (to decode JSON straight from them)."""
        if not self._started:
            chunk = self._head + chunk
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._head = chunk  # could still be the start of a BOM
                return []
            self._head = b""
            self._started = True
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
        if not chunk:
            return []  # an empty chunk must not lose the pending CR of a split CRLF
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return []
        lines = chunk.splitlines()  # bytes split on CR, LF and CRLF only
        last = chunk[-1]
        if last == _CR:
            self._skip_lf = True
        partial = self._partial
        if partial:
            partial.append(lines[0])
            lines[0] = b"".join(partial)
            partial.clear()
        if last != _CR and last != _LF:
            partial.append(lines.pop())  # the line goes on in the next chunk
        # The event being built lives in locals while the chunk is parsed (this loop runs once
        # per line of every stream), and goes back to the decoder at the end.
        out: list[RawEvent] = []
        data = self._data
        kind = self._event
        retry = self._event_retry
        for line in lines:
            if line[:6] == b"data: ":  # by far the most common line
                data.append(line[6:])
                continue
            if not line:
                if data:
                    joined = data[0] if len(data) == 1 else b"\n".join(data)
                    out.append((kind, joined, self.last_event_id, retry))
                    data = []
                kind = b""
                retry = None
                continue
            if line[0] == _COLON:
                continue  # a comment
            colon = line.find(b":")
            if colon < 0:
                field, value = line, b""
            else:
                field = line[:colon]
                value = line[colon + 1 :]
                if value[:1] == b" ":
                    value = value[1:]
            if field == b"data":
                data.append(value)
            elif field == b"event":
                kind = value
            elif field == b"id":
                if b"\x00" not in value:
                    self.last_event_id = value.decode("utf-8", "replace")
            elif field == b"retry" and value.isdigit():  # bytes.isdigit: ASCII digits only
                self.retry = retry = int(value)
        self._data = data
        self._event = kind
        self._event_retry = retry
        return out


async def aiter_sse(chunks: AsyncIterable[bytes]) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events from any async iterable of bytes (an unfinished last event is dropped).

    No limit is put on the size of a line or an event beyond memory.
    """
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    decoder.close()
