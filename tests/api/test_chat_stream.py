"""Streamed chat completions (``_api/chat_stream.py``) end to end: against the emulator, and
against a local SSE server for what the emulator does not do (stalls, cuts, bad chunks).

The emulator's OpenAI-compatible surface through the official ``openai`` package is tested in
``tests/emulator/test_emu_openai.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import msgspec
import pytest
from aiohttp import web

from tests.support import MakeClient, wait_until
from webrun_async import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    AsyncWebRun,
    AuthenticationError,
    ChatCompletionStream,
    GuardrailTriggered,
    RetryPolicy,
    TaskFailed,
    Timeouts,
    UsageError,
)
from webrun_async.emulator import Emulator

USER = [{"role": "user", "content": "Go to example.com and extract all headings"}]


async def test_stream_shape(client: AsyncWebRun, emulator: Emulator) -> None:
    whole = await client.chat.completions.create(model="enigma-browser-1", messages=USER)
    stream = await client.chat.completions.create(
        model="enigma-browser-1", messages=USER, stream=True
    )
    assert isinstance(stream, ChatCompletionStream)
    async with stream:
        chunks = [chunk async for chunk in stream]
    assert stream.done
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:])
    assert chunks[-1].choices[0].delta.content is None
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    answer = whole.choices[0].message.content
    assert stream.text == answer
    completion = stream.completion
    assert completion.choices[0].message.content == answer
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "enigma-browser-1"
    assert emulator.live_sessions() == []


@pytest.mark.parametrize("model", ["enigma-browser-1", "webrun-browser-1"])
async def test_both_documented_model_ids(client: AsyncWebRun, model: str) -> None:
    stream = await client.chat.completions.create(model=model, messages=USER, stream=True)
    completion = await stream.collect()
    assert completion.model == model
    assert completion.choices[0].message.content


async def test_guardrail_mid_stream(client: AsyncWebRun, emulator: Emulator) -> None:
    messages = [{"role": "user", "content": "Log in [[guardrail=I need login credentials]]"}]
    stream = await client.chat.completions.create(
        model="enigma-browser-1", messages=messages, stream=True
    )
    with pytest.raises(GuardrailTriggered) as info:
        await stream.collect()
    assert info.value.value == "I need login credentials"
    assert emulator.live_sessions() == []


async def test_task_failure_mid_stream(client: AsyncWebRun) -> None:
    messages = [{"role": "user", "content": "Doomed [[fail=NAVIGATION_TIMEOUT]]"}]
    stream = await client.chat.completions.create(
        model="enigma-browser-1", messages=messages, stream=True
    )
    with pytest.raises(TaskFailed) as info:
        await stream.collect()
    assert info.value.code == "NAVIGATION_TIMEOUT"


async def test_completion_before_the_end_is_refused(client: AsyncWebRun) -> None:
    stream = await client.chat.completions.create(
        model="enigma-browser-1", messages=USER, stream=True
    )
    async with stream:
        with pytest.raises(UsageError):
            _ = stream.completion
    with pytest.raises(UsageError):
        [c async for c in stream]  # closed before it finished


async def test_errors_before_the_stream_starts(make_client: MakeClient) -> None:
    client = await make_client(api_key="wrong")
    with pytest.raises(AuthenticationError):
        await client.chat.completions.create(model="enigma-browser-1", messages=USER, stream=True)


# -- a local SSE server for what the emulator does not do ---------------------------------------


@dataclass
class SSEServer:
    """Streams scripted chat chunks; records when the client goes away."""

    url: str = ""
    pieces: list[bytes] = field(default_factory=list)
    content_type: str = "text/event-stream"
    then: str = "done"  # "done", "stall" (send nothing more), "end" (close without [DONE])
    endless: bool = False  # keep sending chunks until the client leaves
    client_left: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0


def chunk(text: str, *, role: bool = False, finish: str | None = None) -> bytes:
    delta: dict[str, str] = {"content": text} if text else {}
    if role:
        delta["role"] = "assistant"
    body = {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "enigma-browser-1",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + msgspec.json.encode(body) + b"\n\n"


@asynccontextmanager
async def sse_server(server: SSEServer) -> AsyncIterator[SSEServer]:
    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": server.content_type})
        await response.prepare(request)
        try:
            for piece in server.pieces:
                await response.write(piece)
                server.sent += 1
            while server.endless:
                await response.write(chunk("more "))
                server.sent += 1
                await asyncio.sleep(0.01)
            if server.then == "done":
                await response.write(b"data: [DONE]\n\n")
            elif server.then == "stall":
                await asyncio.Event().wait()
        except (ConnectionResetError, asyncio.CancelledError):
            server.client_left.set()
            raise
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        await runner.cleanup()


@asynccontextmanager
async def served(
    server: SSEServer, **options: object
) -> AsyncIterator[tuple[SSEServer, AsyncWebRun]]:
    """The local server, and a client of it."""
    async with sse_server(server):
        client = AsyncWebRun(
            "k",
            base_url=server.url,
            rate_limit=None,
            retry=RetryPolicy(wait=False),
            **options,  # type: ignore[arg-type]
        )
        async with client:
            yield server, client


async def open_stream(client: AsyncWebRun) -> ChatCompletionStream:
    return await client.chat.completions.create(
        model="enigma-browser-1", messages=USER, stream=True
    )


ENDLESS = {"pieces": [chunk("a", role=True)], "endless": True}


async def test_breaking_out_closes_the_response_at_once() -> None:
    async with served(SSEServer(**ENDLESS)) as (server, client):  # type: ignore[arg-type]
        stream = await open_stream(client)
        async with stream:
            async for _ in stream:
                break
        with anyio.fail_after(5):
            await server.client_left.wait()


async def test_a_loop_left_without_async_with_closes_the_response() -> None:
    async with served(SSEServer(**ENDLESS)) as (server, client):  # type: ignore[arg-type]
        stream = await open_stream(client)
        async for _ in stream:
            break
        with anyio.fail_after(5):
            await server.client_left.wait()


async def test_cancelling_the_reader_closes_the_response() -> None:
    async with served(SSEServer(**ENDLESS)) as (server, client):  # type: ignore[arg-type]
        stream = await open_stream(client)

        async def read() -> None:
            async with stream:
                async for _ in stream:
                    pass

        task = asyncio.create_task(read())
        await wait_until(lambda: server.sent > 3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with anyio.fail_after(5):
            await server.client_left.wait()


async def test_a_silent_stream_times_out() -> None:
    server = SSEServer(pieces=[chunk("a", role=True)], then="stall")
    async with served(server, timeout=Timeouts(stream_idle=0.3)) as (_, client):
        stream = await open_stream(client)
        with pytest.raises(APITimeoutError) as info, anyio.fail_after(10):
            await stream.collect()
    assert "silent for 0.3 s" in str(info.value)
    assert info.value.path == "/v1/chat/completions"


async def test_a_stream_cut_before_done() -> None:
    async with served(SSEServer(pieces=[chunk("a", role=True)], then="end")) as (_, client):
        stream = await open_stream(client)
        with pytest.raises(APIConnectionError, match=r"ended before \[DONE\]"):
            await stream.collect()
        assert stream.text == "a"


async def test_the_wrong_content_type_is_refused() -> None:
    async with served(SSEServer(content_type="application/json")) as (_, client):
        with pytest.raises(APIResponseValidationError, match="text/event-stream"):
            await open_stream(client)


async def test_a_malformed_chunk_names_the_endpoint() -> None:
    async with served(SSEServer(pieces=[b"data: {not json\n\n"])) as (_, client):
        stream = await open_stream(client)
        with pytest.raises(APIResponseValidationError) as info:
            await stream.collect()
    assert "[POST /v1/chat/completions]" in str(info.value)


async def test_chunks_split_anywhere_arrive_whole() -> None:
    raw = chunk("Hello", role=True) + chunk(" wörld") + chunk("", finish="stop")
    pieces = [raw[i : i + 7] for i in range(0, len(raw), 7)]  # cuts inside lines and UTF-8
    async with served(SSEServer(pieces=pieces)) as (_, client):
        stream = await open_stream(client)
        completion = await stream.collect()
    assert completion.choices[0].message.content == "Hello wörld"
