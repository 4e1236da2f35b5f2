"""The client-side rate limiter (``_core/ratelimit.py``) and the server's 429s.

First the limiter alone, without a server: its sliding windows, one per bucket, and what it
learns from ``Retry-After`` and ``X-RateLimit-*`` headers. Then over real HTTP: the limiter in
front of a scripted server and of the emulator's own limits, and 429s with their
``Retry-After``, waited out or raised as `RateLimitError`.

Timing checks are lower bounds (a window makes callers wait at least so long), or upper bounds
far from the alternative (a hold cut to 0.3 s, where an uncut one would be an hour).
"""

from __future__ import annotations

import email.utils
import time

import anyio
import pytest
from multidict import CIMultiDict

from tests.scripted import COMPLETED, ScriptedReply, ScriptedServer, client_for
from tests.support import WAIT, MakeClient, MakeEmulator
from webrun_async import RateLimit, RateLimitError, RateLimits, RetryPolicy
from webrun_async._core.ratelimit import (
    ACCOUNT_BUCKET,
    RateLimiter,
    parse_retry_after,
    task_bucket,
)

RUN_TASK = task_bucket("POST /start/run-task")
START_SESSION = task_bucket("POST /start/start-session")


def limiter(task: RateLimit | None = None, account: RateLimit | None = None) -> RateLimiter:
    return RateLimiter(RateLimits(task=task, account=account))


async def acquired_within(limits: RateLimiter, bucket: str, seconds: float) -> bool:
    """Whether a request in ``bucket`` may start within ``seconds``."""
    with anyio.move_on_after(seconds):
        await limits.acquire(bucket)
        return True
    return False


# -- Retry-After --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("2.5", 2.5), ("0", 0.0), ("120", 120.0), ("-3", 0.0), ("nan", None), ("soon", None),
     ("", None)],
)  # fmt: skip
def test_retry_after_in_seconds(value: str, seconds: float | None) -> None:
    assert parse_retry_after({"Retry-After": value}) == seconds


def test_retry_after_as_an_http_date() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)  # whole seconds
    seconds = parse_retry_after({"Retry-After": later})
    assert seconds is not None and 28 < seconds <= 30
    earlier = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert parse_retry_after({"Retry-After": earlier}) == 0.0  # already past: no wait


def test_retry_after_absent_or_in_any_case() -> None:
    assert parse_retry_after({}) is None
    assert parse_retry_after(CIMultiDict({"retry-after": "7"})) == 7.0  # as aiohttp hands it over


# -- the sliding windows ----------------------------------------------------------------------


async def test_requests_within_the_limit_start_at_once() -> None:
    limits = limiter(task=RateLimit(3, 3600.0))
    with anyio.fail_after(WAIT):  # a wait would be an hour long
        for _ in range(3):
            await limits.acquire(RUN_TASK)
    assert not await acquired_within(limits, RUN_TASK, 0.05)  # the fourth must wait


async def test_a_full_window_holds_the_next_request_until_it_slides() -> None:
    limits = limiter(task=RateLimit(2, 0.3))
    started = time.monotonic()
    await limits.acquire(RUN_TASK)
    await limits.acquire(RUN_TASK)
    await limits.acquire(RUN_TASK)
    assert time.monotonic() - started >= 0.3  # the first start had to leave the window


async def test_waiting_callers_start_in_arrival_order() -> None:
    limits = limiter(task=RateLimit(1, 0.05))
    order: list[int] = []

    async def request(number: int) -> None:
        await limits.acquire(RUN_TASK)
        order.append(number)

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            for number in range(6):
                tg.start_soon(request, number)
    assert order == list(range(6))


async def test_every_endpoint_has_its_own_window_and_the_account_one_is_shared() -> None:
    limits = limiter(task=RateLimit(1, 3600.0), account=RateLimit(2, 3600.0))
    await limits.acquire(RUN_TASK)
    assert not await acquired_within(limits, RUN_TASK, 0.05)
    assert await acquired_within(limits, START_SESSION, WAIT)  # another endpoint: its own window
    assert await acquired_within(limits, ACCOUNT_BUCKET, WAIT)
    assert await acquired_within(limits, ACCOUNT_BUCKET, WAIT)
    assert not await acquired_within(limits, ACCOUNT_BUCKET, 0.05)  # one window for the account


async def test_a_group_without_a_limit_is_never_held() -> None:
    limits = limiter(task=None, account=RateLimit(1, 3600.0))
    with anyio.fail_after(WAIT):
        for _ in range(1000):
            await limits.acquire(RUN_TASK)
    limits.observe(RUN_TASK, 429, {"Retry-After": "3600"})  # nothing to hold
    assert await acquired_within(limits, RUN_TASK, WAIT)


# -- what the limiter learns from answers -------------------------------------------------------


async def test_a_429_holds_every_caller_of_its_bucket_for_retry_after() -> None:
    limits = limiter(task=RateLimit(100, 60.0))
    started = time.monotonic()
    limits.observe(RUN_TASK, 429, {"Retry-After": "0.3"})
    assert await acquired_within(limits, START_SESSION, WAIT)  # other endpoints go on
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(limits.acquire, RUN_TASK)
    assert time.monotonic() - started >= 0.3


async def test_a_429_without_retry_after_holds_for_one_window() -> None:
    limits = limiter(task=RateLimit(100, 0.3))
    started = time.monotonic()
    limits.observe(RUN_TASK, 429, {})
    await limits.acquire(RUN_TASK)
    assert time.monotonic() - started >= 0.3


async def test_a_hold_is_never_longer_than_one_window() -> None:
    # The server asked for an hour; the next 429, if it comes, is honoured in its turn.
    limits = limiter(task=RateLimit(100, 0.3))
    started = time.monotonic()
    limits.observe(RUN_TASK, 429, {"Retry-After": "3600"})
    assert await acquired_within(limits, RUN_TASK, WAIT)
    assert time.monotonic() - started >= 0.3


async def test_no_requests_remaining_holds_until_the_reset() -> None:
    limits = limiter(task=RateLimit(100, 60.0))
    started = time.monotonic()
    reset = time.time() + 0.3
    limits.observe(RUN_TASK, 200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})
    await limits.acquire(RUN_TASK)
    assert time.monotonic() - started >= 0.29


@pytest.mark.parametrize(
    "headers",
    [
        {"X-RateLimit-Remaining": "5", "X-RateLimit-Reset": str(time.time() + 3600)},
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "tomorrow"},
        {"X-RateLimit-Remaining": "0"},
        {"Retry-After": "3600"},  # honoured on a 429 only
    ],
)
async def test_answers_that_ask_for_no_hold(headers: dict[str, str]) -> None:
    limits = limiter(task=RateLimit(100, 60.0))
    limits.observe(RUN_TASK, 200, headers)
    assert await acquired_within(limits, RUN_TASK, WAIT)  # a hold would last a minute or more


# -- over HTTP ----------------------------------------------------------------------------------


async def test_retry_after_is_honoured(server: ScriptedServer) -> None:
    server.script(
        ScriptedReply(429, {"message": "slow down"}, headers={"Retry-After": "0.3"}),
        ScriptedReply(),
    )
    policy = RetryPolicy(max_retries=1, initial_backoff=5.0)
    async with client_for(server, retry=policy) as client:
        started = time.monotonic()
        await client.health()
        waited = time.monotonic() - started
    assert waited >= 0.3  # not the 0-5 s random backoff: exactly what the server asked
    assert len(server.seen) == 2


async def test_429_carries_retry_after_when_retries_run_out(server: ScriptedServer) -> None:
    server.default = ScriptedReply(
        429,
        {"success": False, "message": "Rate limit exceeded. Please try again later."},
        headers={"Retry-After": "30"},
    )
    async with client_for(server, max_retries=0) as client:
        with pytest.raises(RateLimitError) as info:
            await client.tasks.create("x")
    assert info.value.retry_after == 30.0


async def test_client_limiter_holds_back_requests_over_the_window(server: ScriptedServer) -> None:
    limits = RateLimits(task=RateLimit(2, 0.5))
    async with client_for(server, rate_limit=limits) as client:
        server.default = ScriptedReply(200, COMPLETED)
        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(client.tasks.create, "x")
        elapsed = time.monotonic() - started
    assert len(server.seen) == 3
    assert elapsed >= 0.5  # the third had to wait for the window to slide


async def test_limiter_holds_everyone_after_a_429(server: ScriptedServer) -> None:
    limits = RateLimits(task=RateLimit(100, 60.0))
    server.script(ScriptedReply(429, headers={"Retry-After": "0.4"}))
    server.default = ScriptedReply(200, COMPLETED)
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
        ScriptedReply(
            200, COMPLETED, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
        )
    )
    server.default = ScriptedReply(200, COMPLETED)
    async with client_for(server, rate_limit=limits) as client:
        await client.tasks.create("first")
        started = time.monotonic()
        await client.tasks.create("second")
        waited = time.monotonic() - started
    assert waited > 0.0
    assert time.time() >= int(reset) - 0.05


async def test_limiter_off_sends_at_once(server: ScriptedServer) -> None:
    server.default = ScriptedReply(200, COMPLETED)
    async with client_for(server, rate_limit=None) as client, anyio.create_task_group() as tg:
        for _ in range(30):
            tg.start_soon(client.tasks.create, "x")
    assert len(server.seen) == 30


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
