"""The client's lifecycle and the account-level errors the service documents."""

from __future__ import annotations

import asyncio
import os
import time

import anyio
import pytest

from tests.conftest import MakeClient, MakeEmulator, wait_until
from webrun_async import (
    AsyncWebRun,
    AuthenticationError,
    ClientClosedError,
    InsufficientBalanceError,
    NoInstancesAvailableError,
    PermissionDeniedError,
    RateLimit,
    RateLimitError,
    RateLimits,
    RetryPolicy,
    UsageError,
    WebRunError,
)
from webrun_async.emulator import Emulator


async def test_runs_on_the_chosen_event_loop(client: AsyncWebRun) -> None:
    # WEBRUN_TEST_UVLOOP=1 runs the suite on uvloop: make sure it really does.
    loop_module = type(asyncio.get_running_loop()).__module__
    assert loop_module.startswith("uvloop") == (os.environ.get("WEBRUN_TEST_UVLOOP") == "1")
    assert (await client.health()).status == "healthy"


async def test_lifecycle(emulator: Emulator) -> None:
    client = AsyncWebRun(emulator.api_key, base_url=emulator.base_url, rate_limit=None)
    async with client:
        with pytest.raises(UsageError):
            async with client:
                pass
        await client.health()
    await client.aclose()  # idempotent
    with pytest.raises(ClientClosedError):
        await client.health()
    with pytest.raises(ClientClosedError):
        async with client:
            pass
    assert "closed" in repr(client)


async def test_used_without_async_with(emulator: Emulator) -> None:
    client = AsyncWebRun(emulator.api_key, base_url=emulator.base_url, rate_limit=None)
    try:
        assert (await client.health()).status == "healthy"
    finally:
        await client.aclose()


async def test_closing_with_tasks_in_flight_leaves_no_session(
    make_client: MakeClient, emulator: Emulator
) -> None:
    client = await make_client()
    errors: list[BaseException] = []

    async def run(text: str) -> None:
        try:
            await client.run_task(text)
        except Exception as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(run, f"Long task {i} [[duration=30]]")
        await wait_until(lambda: len(emulator.live_sessions()) == 5)
        await client.aclose()
    assert emulator.live_sessions() == []
    # every caller learnt that its task was cut off, through the SDK's own errors
    assert len(errors) == 5
    assert all(isinstance(e, WebRunError) for e in errors), errors


@pytest.mark.parametrize("key", ["wrong-key", "revoked-key"])
async def test_bad_or_revoked_key(emulator: Emulator, make_client: MakeClient, key: str) -> None:
    if key == "revoked-key":
        emulator.add_api_key(key)
        emulator.revoke_api_key(key)
    client = await make_client(api_key=key)
    with pytest.raises(AuthenticationError) as info:
        await client.run_task("x")
    assert info.value.message == "Invalid or revoked API key"
    assert key not in str(info.value)


async def test_deactivated_account(emulator: Emulator, client: AsyncWebRun) -> None:
    emulator.account.active = False
    with pytest.raises(PermissionDeniedError, match="Account is deactivated"):
        await client.profiles.list()


async def test_key_without_permission(emulator: Emulator, make_client: MakeClient) -> None:
    emulator.add_api_key("read-only", permissions=frozenset())
    client = await make_client(api_key="read-only")
    with pytest.raises(PermissionDeniedError, match="task:create"):
        await client.profiles.list()


async def test_insufficient_balance(emulator: Emulator, client: AsyncWebRun) -> None:
    emulator.account.balance = 0.0
    with pytest.raises(InsufficientBalanceError) as info:
        await client.run_task("x")
    assert info.value.status == 402
    assert info.value.balance == 0.0
    assert emulator.live_sessions() == []


async def test_no_instances(make_emulator: MakeEmulator, make_client: MakeClient) -> None:
    full = await make_emulator(instances=1)
    client = await make_client(full)
    async with client.sessions.create():
        with pytest.raises(NoInstancesAvailableError) as info:
            await client.run_task("x")
    assert info.value.status == 503
    # a 503 on a billable POST is retried (the server provably did not start it)
    assert full.request_counts["POST /start/start-session"] == 1 + 1 + 2


async def test_client_limiter_keeps_within_the_servers_limit(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    limited = await make_emulator(rate_limit=(3, 1.0))
    client = await make_client(limited, rate_limit=RateLimits(task=RateLimit(3, 1.0)))
    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(client.tasks.create, "x")
    assert time.monotonic() - started >= 1.0  # the second three waited for the window
    assert limited.request_counts["POST /start/run-task"] == 6  # and none was refused


async def test_429_from_the_server_is_waited_out(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    limited = await make_emulator(rate_limit=(2, 1.0))
    client = await make_client(
        limited, rate_limit=None, retry=RetryPolicy(max_retries=3, max_retry_after=5)
    )
    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(client.tasks.create, "x")
    assert limited.request_counts["POST /start/run-task"] >= 6  # 2 refused, then retried


async def test_429_without_retries_is_a_rate_limit_error(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    limited = await make_emulator(rate_limit=(1, 60.0))
    client = await make_client(limited, rate_limit=None, max_retries=0)
    await client.tasks.create("x")
    with pytest.raises(RateLimitError) as info:
        await client.tasks.create("y")
    assert info.value.retry_after is not None
    assert 0 < info.value.retry_after <= 60
