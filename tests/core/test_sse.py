"""The SSE decoder follows the WHATWG rules whatever the chunking.

Hostile streams with hand-checked events are fed whole, at every split point, at every pair of
split points and one byte at a time. Hypothesis then checks, for generated streams, that any
chunking decodes like the whole stream, and that the byte-level decoder agrees with a reference
written directly from the specification on decoded text.
"""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webrun_async.sse import ServerSentEvent, SSEDecoder, aiter_sse

E = ServerSentEvent

HOSTILE: list[tuple[str, bytes, list[ServerSentEvent]]] = [
    (
        "crlf mixes",
        b"data: a\rdata: b\r\n\r\ndata: c\n\ndata: d\r\r",
        [E(data="a\nb"), E(data="c"), E(data="d")],
    ),
    ("multi-line data", b"data: one\ndata: two\ndata:three\n\n", [E(data="one\ntwo\nthree")]),
    ("comments", b": hello\n:\ndata: x\n: between\n\n", [E(data="x")]),
    ("bom at the start", b"\xef\xbb\xbfdata: x\n\n", [E(data="x")]),
    ("bom later is data", b"data: x\n\n\xef\xbb\xbfdata: y\n\n", [E(data="x")]),
    (
        "ids persist, NUL ignored, empty resets",
        b"id: 1\ndata: a\n\ndata: b\n\nid: 2\x003\ndata: c\n\nid\ndata: d\n\n",
        [E(data="a", id="1"), E(data="b", id="1"), E(data="c", id="1"), E(data="d", id="")],
    ),
    (
        "retry takes digits only",
        b"retry: 1500\ndata: a\n\nretry: 15a\ndata: b\n\nretry:  20\ndata: c\n\nretry\ndata: d\n\n",
        [E(data="a", retry=1500), E(data="b"), E(data="c"), E(data="d")],
    ),
    (
        "split utf-8",
        "data: caf\u00e9 \U0001f600 \u4e2d\u6587\n\n".encode(),
        [E(data="caf\u00e9 \U0001f600 \u4e2d\u6587")],
    ),
    ("invalid utf-8 becomes U+FFFD", b"data: \xff\xc3\n\n", [E(data="\ufffd\ufffd")]),
    (
        "empty events",
        b"\n\n\r\n\revent: only-type\n\ndata:\n\ndata\n\n",
        [E(data=""), E(data="")],
    ),
    (
        "field without colon and spaces",
        b"data\ndata:  two spaces\ndata:no space\n\n",
        [E(data="\n two spaces\nno space")],
    ),
    (
        "event type is set per event",
        b"event: update\ndata: a\n\ndata: b\n\nevent:\ndata: c\n\n",
        [E(event="update", data="a"), E(data="b"), E(data="c")],
    ),
    ("unknown fields are ignored", b"foo: bar\nDATA: no\ndata: yes\n\n", [E(data="yes")]),
    ("colon in the value", b"data: a: b :c\n\n", [E(data="a: b :c")]),
    ("unterminated final event", b"data: done\n\ndata: never dispatched\n", [E(data="done")]),
    ("unterminated final line", b"data: done\n\ndata: never", [E(data="done")]),
    ("cr then lf later", b"data: x\r\n\r", [E(data="x")]),
    (
        "chat stream",
        b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n',
        [E(data='{"a":1}'), E(data='{"b":2}'), E(data="[DONE]")],
    ),
]


def feed_all(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    decoder.close()
    return events


@pytest.mark.parametrize(
    ("stream", "expected"), [(s, e) for _, s, e in HOSTILE], ids=[n for n, _, _ in HOSTILE]
)
def test_hostile_streams_whole_and_at_every_split(
    stream: bytes, expected: list[ServerSentEvent]
) -> None:
    assert feed_all([stream]) == expected
    assert feed_all([bytes([b]) for b in stream]) == expected
    for i in range(len(stream) + 1):
        assert feed_all([stream[:i], stream[i:]]) == expected, i
    for i, j in itertools.combinations(range(len(stream) + 1), 2):
        assert feed_all([stream[:i], stream[i:j], stream[j:]]) == expected, (i, j)


def test_an_empty_chunk_inside_a_split_crlf() -> None:
    # Found by hypothesis: an empty chunk between the CR and the LF of one line ending.
    assert feed_all([b"data: x\r", b"", b"\n", b"\n"]) == [E(data="x")]
    assert feed_all([b"data: x\r", b"", b"\ndata: y\n\n"]) == [E(data="x\ny")]


def test_feed_raw_keeps_bytes() -> None:
    decoder = SSEDecoder()
    assert decoder.feed_raw(b"event: x\nid: 4\ndata: {}\n\nretry: 9\ndata: y\n\n") == [
        (b"x", b"{}", "4", None),
        (b"", b"y", "4", 9),
    ]


def test_state_between_chunks() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 7\nretry: 300\ndata: par") == []
    assert decoder.pending
    assert decoder.last_event_id == "7"
    assert decoder.retry == 300
    assert decoder.feed(b"tial\n\n") == [E(data="partial", id="7", retry=300)]
    assert not decoder.pending
    decoder.feed(b"data: lost")
    decoder.close()
    assert not decoder.pending


def test_large_event_in_small_chunks() -> None:
    payload = b"x" * 3_000_000
    stream = b"data: " + payload + b"\ndata: " + payload + b"\n\n"
    chunks = [stream[i : i + 4096] for i in range(0, len(stream), 4096)]
    [event] = feed_all(chunks)
    assert len(event.data) == 2 * len(payload) + 1


async def test_aiter_sse() -> None:
    async def chunks() -> object:
        for piece in (b"data: a\n", b"\ndata: b\r\n\r\n", b"data: unfinished"):
            yield piece

    events = [e async for e in aiter_sse(chunks())]  # type: ignore[arg-type]
    assert events == [E(data="a"), E(data="b")]


def reference(stream: bytes) -> list[ServerSentEvent]:
    """The specification's algorithm, written plainly on decoded text."""
    text = stream.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = re.split(r"\r\n|\r|\n", text)[:-1]  # the last piece is not a terminated line
    events, data, kind, last_id, retry = [], "", "", "", None
    for line in lines:
        if line == "":
            if data:
                event = E(kind or "message", data.removesuffix("\n"), last_id, retry)
                events.append(event)
            data, kind, retry = "", "", None
            continue
        if line.startswith(":"):
            continue
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            data += value + "\n"
        elif field == "event":
            kind = value
        elif field == "id" and "\x00" not in value:
            last_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            retry = int(value)
    return events


VALUES = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["", " ", "  x", ":", "a:b", "\x00", "123", "12a", "[DONE]", "\ufeff"]
)
FIELD_LINES = st.one_of(
    st.tuples(st.sampled_from(["data", "event", "id", "retry", "other", "DATA", ""]), VALUES).map(
        lambda fv: f"{fv[0]}:{fv[1]}"
    ),
    st.sampled_from(["data", "event", "id", "retry", ":comment", ":", ""]),
)
ENDINGS = st.sampled_from(["\n", "\r", "\r\n"])


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.tuples(FIELD_LINES, ENDINGS), max_size=25))
    text = "".join(line + ending for line, ending in lines)
    if draw(st.booleans()):
        text += draw(FIELD_LINES)  # an unterminated tail
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        raw = b"\xef\xbb\xbf" + raw
    if draw(st.booleans()):
        raw += draw(st.binary(max_size=8))  # arbitrary bytes, invalid UTF-8 included
    return raw


@st.composite
def chunkings(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    stream = draw(streams())
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    bounds = [0, *cuts, len(stream)]
    return stream, [stream[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=600, deadline=None)
@given(chunkings())
def test_any_chunking_decodes_like_the_whole_stream(case: tuple[bytes, list[bytes]]) -> None:
    stream, chunks = case
    assert feed_all(chunks) == feed_all([stream])


@settings(max_examples=600, deadline=None)
@given(streams())
def test_decoder_agrees_with_the_specification(stream: bytes) -> None:
    assert feed_all([stream]) == reference(stream)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=6))
def test_arbitrary_bytes_never_break_the_decoder(stream: bytes, cuts: list[int]) -> None:
    bounds = [0, *sorted(min(c, len(stream)) for c in cuts), len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    assert feed_all(chunks) == feed_all([stream]) == reference(stream)
