"""Receiving webhook deliveries: the three documented forms, the secret, duplicates, and the
aiohttp handler and ASGI app over real HTTP (aiohttp's server and uvicorn)."""

from __future__ import annotations

import asyncio
import json
import pickle
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support import wait_until
from webrun_async.webhooks import (
    MAX_BODY,
    AIResponse,
    FullResponse,
    Ping,
    WebhookDelivery,
    WebhookError,
    WebhookReceiver,
)

SECRET = "Bearer hook-secret-123"

# The documentation's own examples of each form.
FULL = {
    "type": "task_completed",
    "sessionId": "sess_abc123",
    "taskId": "task_xyz789",
    "data": {
        "message": '{"title":"Product Name","price":29.99}',
        "prompt_tokens": 8500,
        "completion_tokens": 2300,
        "total_tokens": 10800,
        "completion_time": 12.5,
    },
    "usage": {"inputTokens": 8500, "outputTokens": 2300, "computeTime": 12.5, "cost": 0.0124},
    "completedAt": "2024-01-15T10:30:00.000Z",
}
PING = {
    "event": "task_completed",
    "sessionId": "sess_abc123",
    "taskId": "task_xyz789",
    "completedAt": "2024-01-15T10:30:00.000Z",
}
AI = {"title": "Product Name", "price": 29.99, "inStock": True, "description": "A great product"}


def test_the_three_forms_parse_into_their_types() -> None:
    receiver = WebhookReceiver(SECRET)
    full = receiver.parse(json.dumps(FULL).encode())
    assert isinstance(full, FullResponse)
    assert (full.session_id, full.task_id, full.completed_at) == (
        "sess_abc123",
        "task_xyz789",
        "2024-01-15T10:30:00.000Z",
    )
    assert full.data.total_tokens == 10800 and full.usage.cost == 0.0124
    assert full.usage.compute_time == 12.5
    ping = receiver.parse(json.dumps(PING).encode())
    assert isinstance(ping, Ping) and ping.task_id == "task_xyz789"
    structured = receiver.parse(json.dumps(AI).encode())
    assert isinstance(structured, AIResponse) and structured.output == AI
    text = receiver.parse(b"The cheapest keyboard costs $19.")
    assert isinstance(text, AIResponse) and text.output == "The cheapest keyboard costs $19."


@pytest.mark.parametrize(
    ("body", "status", "problem"),
    [
        (b"", 400, "empty"),
        (json.dumps({"type": "task_completed", "data": {}}).encode(), 400, "sessionId"),
        (json.dumps({**PING, "taskId": 7}).encode(), 400, "taskId"),
        (b"[" * 100_000, 400, "nested too deeply"),
        (b"x" * (MAX_BODY + 1), 413, "over"),
    ],
)
def test_a_body_that_is_no_delivery_is_named(body: bytes, status: int, problem: str) -> None:
    with pytest.raises(WebhookError) as info:
        WebhookReceiver(None).parse(body)
    assert info.value.status == status
    assert problem in info.value.problem


def test_the_secret_is_checked_and_never_shown() -> None:
    receiver = WebhookReceiver(SECRET)
    body = json.dumps(PING).encode()
    for headers, problem in [
        ({}, "no Authorization header"),
        ({"Authorization": "Bearer hook-secret-12"}, "does not match"),
        ({"authorization": SECRET + " "}, "does not match"),
    ]:
        with pytest.raises(WebhookError) as info:
            receiver.receive(body, headers)
        assert info.value.status == 401 and problem in str(info.value)
        assert "hook-secret" not in str(info.value) + repr(info.value)
    assert "hook-secret" not in repr(receiver)
    assert receiver.receive(body, {"authorization": SECRET}) == receiver.parse(body)
    copy = pickle.loads(pickle.dumps(WebhookError(401, "the delivery has no header")))
    assert (copy.status, copy.problem) == (401, "the delivery has no header")


def test_duplicates_of_a_task_are_dropped_within_memory() -> None:
    receiver = WebhookReceiver(None, remember=2)
    headers: dict[str, str] = {}
    first = receiver.receive(json.dumps(PING).encode(), headers)
    assert isinstance(first, Ping)
    assert receiver.receive(json.dumps(PING).encode(), headers) is None
    assert receiver.receive(json.dumps(FULL).encode(), headers) is None  # the same task
    for task in ("t2", "t3"):  # push the first out of a memory of two
        assert receiver.receive(json.dumps({**PING, "taskId": task}).encode(), headers)
    assert receiver.receive(json.dumps(PING).encode(), headers) is not None
    # Output-only deliveries name no task: each one counts.
    assert receiver.receive(b"same text", headers) == receiver.receive(b"same text", headers)


class Collected:
    def __init__(self) -> None:
        self.deliveries: list[WebhookDelivery] = []

    async def __call__(self, delivery: WebhookDelivery) -> None:
        self.deliveries.append(delivery)


async def _post(url: str, body: Any, auth: str | None = SECRET) -> tuple[int, Any]:
    headers = {"Authorization": auth} if auth is not None else {}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with aiohttp.ClientSession() as http, http.post(url, data=data, headers=headers) as r:
        text = await r.text()
        return r.status, json.loads(text) if text else None


async def _exchanges(url: str, collected: Collected) -> None:
    assert await _post(url, PING) == (200, {"received": True})
    assert await _post(url, PING) == (204, None)  # a duplicate: acknowledged, not handled
    assert await _post(url, AI) == (200, {"received": True})
    assert await _post(url, PING, auth="Bearer nope") == (
        401,
        {"error": "the delivery's Authorization header does not match"},
    )
    status, answer = await _post(url, b"")
    assert (status, answer["error"]) == (400, "the delivery body is empty")
    assert [type(d) for d in collected.deliveries] == [Ping, AIResponse]


async def test_the_aiohttp_handler_over_real_http() -> None:
    collected = Collected()
    app = web.Application()
    app.router.add_post("/hooks/webrun", WebhookReceiver(SECRET).aiohttp_handler(collected))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        await _exchanges(f"http://127.0.0.1:{port}/hooks/webrun", collected)
    finally:
        await runner.cleanup()


@asynccontextmanager
async def _uvicorn(app: Any) -> AsyncIterator[str]:
    uvicorn = pytest.importorskip("uvicorn")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    serving = asyncio.ensure_future(server.serve())
    try:
        await wait_until(lambda: server.started or serving.done(), what="uvicorn to start")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def test_the_asgi_app_under_uvicorn() -> None:
    collected = Collected()
    async with _uvicorn(WebhookReceiver(SECRET).asgi_app(collected)) as base:
        await _exchanges(base + "/any/path", collected)
        async with aiohttp.ClientSession() as http, http.get(base + "/") as reply:
            assert reply.status == 405
