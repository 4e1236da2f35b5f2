"""The transport over real HTTP: error mapping, retries, rate limits, timeouts, secrets."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator

import anyio
import pytest

from tests.scripted import Reply, ScriptedServer, scripted_server
from webrun_async import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AsyncWebRun,
    AuthenticationError,
    BadRequestError,
    GuardrailTriggered,
    InsufficientBalanceError,
    InternalServerError,
    NoInstancesAvailableError,
    NotFoundError,
    PermissionDeniedError,
    RateLimit,
    RateLimitError,
    RateLimits,
    RetryPolicy,
    Timeouts,
)

KEY = "wr_test_secret_key_0123456789"
NO_WAIT = RetryPolicy(max_retries=3, wait=False)
COMPLETED = {
    "success": True,
    "sessionId": "s1",
    "taskId": "t1",
    "type": "task_completed",
    "data": {"message": "ok"},
    "usage": {"cost": 0.01},
}


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with scripted_server() as srv:
        yield srv


def client_for(server: ScriptedServer, **kwargs: object) -> AsyncWebRun:
    options: dict[str, object] = {"retry": NO_WAIT, "rate_limit": None}
    options.update(kwargs)
    return AsyncWebRun(KEY, base_url=server.base_url, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "body", "cls", "message", "code"),
    [
        (
            400,
            {"success": False, "message": "taskDetails is required"},
            BadRequestError,
            "taskDetails is required",
            None,
        ),
        (
            401,
            {"success": False, "message": "Invalid or revoked API key"},
            AuthenticationError,
            "Invalid or revoked API key",
            None,
        ),
        (
            402,
            {"success": False, "message": "Insufficient balance.", "balance": 0.15},
            InsufficientBalanceError,
            "Insufficient balance.",
            None,
        ),
        (
            403,
            {"success": False, "message": "Account is deactivated"},
            PermissionDeniedError,
            "Account is deactivated",
            None,
        ),
        (
            404,
            {
                "success": False,
                "error": "Task x not found",
                "code": "TASK_NOT_FOUND",
                "details": {"taskId": "x"},
            },
            NotFoundError,
            "Task x not found",
            "TASK_NOT_FOUND",
        ),
        (
            500,
            {"success": False, "message": "Authentication error"},
            InternalServerError,
            "Authentication error",
            None,
        ),
        (
            409,
            {"message": "A task is already running", "code": "TASK_ALREADY_RUNNING"},
            APIStatusError,
            "A task is already running",
            "TASK_ALREADY_RUNNING",
        ),
        (
            401,
            {
                "error": {
                    "message": "Invalid API key",
                    "type": "authentication_error",
                    "code": "invalid_api_key",
                }
            },
            AuthenticationError,
            "Invalid API key",
            "invalid_api_key",
        ),
    ],
)
async def test_error_bodies_map_to_typed_errors(
    server: ScriptedServer,
    status: int,
    body: dict[str, object],
    cls: type[APIStatusError],
    message: str,
    code: str | None,
) -> None:
    server.default = Reply(status, body)
    async with client_for(server) as client:
        with pytest.raises(cls) as info:
            await client.tasks.get("s1", "t1")
    err = info.value
    assert type(err) is cls
    assert err.status == status
    assert err.message == message
    assert err.code == code
    assert (err.method, err.path) == ("GET", "/task/s1/t1")
    assert "[GET /task/s1/t1]" in str(err)
    if isinstance(err, InsufficientBalanceError):
        assert err.balance == 0.15
    if code == "TASK_NOT_FOUND":
        assert err.details == {"taskId": "x"}


async def test_non_json_error_body_uses_the_reason(server: ScriptedServer) -> None:
    server.default = Reply(502, raw=b"<html>bad gateway</html>")
    async with client_for(server, max_retries=0) as client:
        with pytest.raises(InternalServerError) as info:
            await client.health()
    assert info.value.status == 502
    assert info.value.message == "Bad Gateway"


async def test_chat_guardrail_error_becomes_guardrail_triggered(server: ScriptedServer) -> None:
    server.default = Reply(
        400,
        {
            "error": {
                "message": "Guardrail triggered: I need login credentials to proceed",
                "type": "guardrail_error",
                "code": "guardrail_triggered",
            }
        },
    )
    async with client_for(server) as client:
        with pytest.raises(GuardrailTriggered) as info:
            await client.chat.completions.create(
                model="enigma-browser-1", messages=[{"role": "user", "content": "log in"}]
            )
    assert info.value.value == "I need login credentials to proceed"
    assert not info.value.can_respond


async def test_get_is_retried_on_5xx_until_it_succeeds(server: ScriptedServer) -> None:
    server.script(Reply(500), Reply(502), Reply(503), Reply(200, COMPLETED))
    async with client_for(server) as client:
        status = await client.tasks.get("s1", "t1")
    assert status.state == "completed"
    assert len(server.seen) == 4


async def test_retries_stop_at_max_retries(server: ScriptedServer) -> None:
    server.default = Reply(500, {"message": "boom"})
    async with client_for(server, max_retries=2) as client:
        with pytest.raises(InternalServerError):
            await client.tasks.get("s1", "t1")
    assert len(server.seen) == 3


async def test_billable_post_is_not_retried_on_500(server: ScriptedServer) -> None:
    server.default = Reply(500, {"message": "boom"})
    async with client_for(server) as client:
        with pytest.raises(InternalServerError):
            await client.tasks.create("do it")
    assert len(server.seen) == 1


@pytest.mark.parametrize("status", [429, 503])
async def test_billable_post_is_retried_when_provably_not_started(
    server: ScriptedServer, status: int
) -> None:
    server.script(Reply(status, {"message": "not now"}), Reply(200, COMPLETED))
    async with client_for(server) as client:
        result = await client.tasks.create("do it")
    assert result.state == "completed"
    assert [s.path for s in server.seen] == ["/start/run-task"] * 2


async def test_post_not_retried_after_the_connection_dropped(server: ScriptedServer) -> None:
    # The request was sent: the server may have started billable work.
    server.script(Reply(reset=True), Reply(200, COMPLETED))
    async with client_for(server) as client:
        with pytest.raises(APIConnectionError):
            await client.tasks.create("do it")
    assert len(server.seen) == 1


async def test_get_retried_after_the_connection_dropped(server: ScriptedServer) -> None:
    server.script(Reply(reset=True), Reply(200, COMPLETED))
    async with client_for(server) as client:
        status = await client.tasks.get("s1", "t1")
    assert status.state == "completed"
    assert len(server.seen) == 2


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_post_retried_when_the_connection_never_opened() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    async with AsyncWebRun(KEY, base_url=url, retry=NO_WAIT, rate_limit=None) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.tasks.create("do it")
    assert "could not connect" in info.value.message
    assert info.value.path == "/start/run-task"


async def test_retry_after_is_honoured(server: ScriptedServer) -> None:
    server.script(Reply(429, {"message": "slow down"}, headers={"Retry-After": "0.3"}), Reply())
    policy = RetryPolicy(max_retries=1, initial_backoff=5.0)
    async with client_for(server, retry=policy) as client:
        started = time.monotonic()
        await client.health()
        waited = time.monotonic() - started
    assert waited >= 0.3  # not the 0-5 s random backoff: exactly what the server asked
    assert len(server.seen) == 2


async def test_429_carries_retry_after_when_retries_run_out(server: ScriptedServer) -> None:
    server.default = Reply(
        429,
        {"success": False, "message": "Rate limit exceeded. Please try again later."},
        headers={"Retry-After": "30"},
    )
    async with client_for(server, max_retries=0) as client:
        with pytest.raises(RateLimitError) as info:
            await client.tasks.create("x")
    assert info.value.retry_after == 30.0


async def test_max_elapsed_bounds_the_retries(server: ScriptedServer) -> None:
    server.default = Reply(503, headers={"Retry-After": "5"})
    policy = RetryPolicy(max_retries=10, max_elapsed=1.0)
    async with client_for(server, retry=policy) as client:
        with pytest.raises(NoInstancesAvailableError):
            await client.health()
    assert len(server.seen) == 1  # waiting 5 s would pass the 1 s budget: give up at once


async def test_client_limiter_holds_back_requests_over_the_window(server: ScriptedServer) -> None:
    limits = RateLimits(task=RateLimit(2, 0.5))
    async with client_for(server, rate_limit=limits) as client:
        server.default = Reply(200, COMPLETED)
        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(client.tasks.create, "x")
        elapsed = time.monotonic() - started
    assert len(server.seen) == 3
    assert elapsed >= 0.5  # the third had to wait for the window to slide


async def test_limiter_holds_everyone_after_a_429(server: ScriptedServer) -> None:
    limits = RateLimits(task=RateLimit(100, 60.0))
    server.script(Reply(429, headers={"Retry-After": "0.4"}))
    server.default = Reply(200, COMPLETED)
    async with client_for(server, rate_limit=limits, max_retries=0) as client:
        with pytest.raises(RateLimitError):
            await client.tasks.create("first")
        started = time.monotonic()
        await client.tasks.create("second")
        assert time.monotonic() - started >= 0.35


async def test_limiter_reads_remaining_zero_and_reset(server: ScriptedServer) -> None:
    limits = RateLimits(task=RateLimit(100, 60.0))
    reset = str(int(time.time()) + 1)
    server.script(
        Reply(200, COMPLETED, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
    )
    server.default = Reply(200, COMPLETED)
    async with client_for(server, rate_limit=limits) as client:
        await client.tasks.create("first")
        started = time.monotonic()
        await client.tasks.create("second")
        waited = time.monotonic() - started
    assert waited > 0.0
    assert time.time() >= int(reset) - 0.05


async def test_limiter_off_sends_at_once(server: ScriptedServer) -> None:
    server.default = Reply(200, COMPLETED)
    async with client_for(server, rate_limit=None) as client, anyio.create_task_group() as tg:
        for _ in range(30):
            tg.start_soon(client.tasks.create, "x")
    assert len(server.seen) == 30


async def test_read_timeout_on_get_is_retried_then_raised(server: ScriptedServer) -> None:
    release = asyncio.Event()
    server.default = Reply(200, COMPLETED, hold=release)
    try:
        async with client_for(
            server, retry=RetryPolicy(max_retries=1, wait=False), timeout=Timeouts(read=0.2)
        ) as client:
            with pytest.raises(APITimeoutError) as info:
                await client.health()
        assert info.value.path == "/start/health"
        assert len(server.seen) == 2  # the GET was retried once
    finally:
        release.set()


async def test_malformed_success_body_is_a_typed_error_naming_the_endpoint(
    server: ScriptedServer,
) -> None:
    server.default = Reply(200, raw=b'{"success": true, "environments": "nope"}')
    async with client_for(server) as client:
        with pytest.raises(APIResponseValidationError) as info:
            await client.environments.list()
    assert info.value.path == "/environments"
    assert info.value.status == 200
    assert "[GET /environments]" in str(info.value)


async def test_api_key_is_sent_but_never_shown(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="webrun_async")
    server.script(Reply(500), Reply(401, {"message": "Invalid or revoked API key"}))
    client = client_for(server)
    async with client:
        with pytest.raises(AuthenticationError) as info:
            await client.tasks.get("s1", "t1")
    assert server.seen[0].headers["Authorization"] == f"Bearer {KEY}"
    texts = [repr(client), str(info.value), repr(info.value), caplog.text]
    texts += [repr(vars(info.value))]
    for text in texts:
        assert KEY not in text
