"""Money and time limits in every window, a close that starts nothing new, a server that is gone.

Where the point is the service's 50 s hold, the emulator keeps its default hold: the held
request does not answer while these tasks run, so the task id and its cost are unknown to the
client, as they would be against the real service.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio
import pytest

from tests.support import FAST_CLIENT, FAST_EMULATOR, MakeClient, MakeEmulator, wait_until
from tests.sweep import EmulatorThread
from webrun_async import (
    APIConnectionError,
    AsyncWebRun,
    BudgetExceeded,
    ClientClosedError,
    RateLimit,
    RateLimits,
    SessionTerminated,
    TaskTimeoutError,
)
from webrun_async.emulator import Emulator

HOLD = 50.0  # the service's documented hold, and the emulator's default
START = "POST /start/start-session"


# -- budgets inside the hold ---------------------------------------------------------------------


async def test_a_task_budget_stops_the_task_inside_the_hold(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(inline_wait=HOLD)
    client = await make_client(emu)
    # The cost floor (compute at $0.02/min) crosses $0.001 after 3 s, long before the 30 s task
    # ends or the held request answers.
    handle = client.tasks.submit("Compare prices [[duration=30]]", max_cost=0.001)
    await wait_until(lambda: handle.min_cost > 0.0002)
    assert handle.usage.cost == 0  # nothing reported yet: the request is held
    with pytest.raises(BudgetExceeded) as info:
        await handle
    assert info.value.limit == 0.001 and info.value.spent > 0.001
    assert info.value.result is None and handle.status == "budget_exceeded"
    await wait_until(lambda: emu.live_sessions() == [])  # the session was terminated


async def test_a_task_over_budget_that_completes_inside_the_hold_raises_with_its_result(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(inline_wait=HOLD)
    client = await make_client(emu)
    # 1 s of work costs about $0.0029 (tokens and compute): over the limit before any floor.
    with pytest.raises(BudgetExceeded) as info:
        await client.run_task("Read the title [[duration=1]]", max_cost=0.001)
    exc = info.value
    assert exc.result is not None and exc.result.message
    assert exc.spent == exc.result.usage.cost > exc.limit
    assert "before its cost could be seen" in str(exc)


async def test_a_queued_task_pays_nothing_while_it_waits_for_its_turn(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(inline_wait=HOLD)
    client = await make_client(emu)
    async with client.sessions.create() as session:
        first = session.submit("Long one [[duration=7]]")
        # Queued for 7 s: a floor counted from the submit would cross $0.002 after 6 s; its
        # own 0.5 s of work costs about $0.0014.
        second = session.submit("Short one [[duration=0.5]]", max_cost=0.002)
        await first
        result = await second
    assert result.usage.cost < 0.002


async def test_the_client_budget_stops_every_task_inside_the_hold(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(inline_wait=HOLD)
    client = await make_client(emu, max_cost=0.002)
    handles = [client.tasks.submit(f"Task {n} [[duration=30]]") for n in range(2)]
    for handle in handles:
        with pytest.raises(BudgetExceeded) as info:
            await handle
        assert info.value.limit == 0.002
    await wait_until(lambda: emu.live_sessions() == [])
    with pytest.raises(BudgetExceeded):
        client.tasks.submit("One more")  # the budget is crossed: nothing new starts


def test_a_budget_crossed_inside_the_hold_ends_the_session_under_plain_asyncio_run() -> None:
    # The floor is checked by loop timers, which run outside any task: started from there,
    # stopping the work raised in anyio and the session ran on. pytest's anyio runner hid it
    # (the timers inherit the sniffio context variable it sets); here the loop is a plain
    # asyncio.run(), as in a program.
    async def main() -> None:
        async with (
            Emulator(**{**FAST_EMULATOR, "inline_wait": HOLD}) as emu,
            AsyncWebRun(emu.api_key, base_url=emu.base_url, **FAST_CLIENT) as client,
        ):
            handle = client.tasks.submit("Compare prices [[duration=30]]", max_cost=0.0005)
            with pytest.raises(BudgetExceeded):
                await handle
            await wait_until(lambda: emu.live_sessions() == [])  # ended, not left running

    asyncio.run(main())


# -- one deadline ---------------------------------------------------------------------------------


async def test_max_duration_is_the_deadline_and_the_error_names_it(
    make_emulator: MakeEmulator, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import webrun_async._tasks.tracker as tracker_module

    monkeypatch.setattr(tracker_module, "DEADLINE_MARGIN", 0.5)
    emu = await make_emulator(inline_wait=0.05)
    client = await make_client(emu, mode="poll")
    async with client.sessions.create() as session:
        handle = session.submit("Wait [[guardrail=Which size?]]", max_duration=2)
        # Nobody answers the guardrail: the task must still end at its deadline.
        await wait_until(lambda: handle.status == "timed_out", within=30)
        with pytest.raises(TaskTimeoutError) as info:
            await handle
    assert "2 s after it started" in str(info.value)


# -- closing --------------------------------------------------------------------------------------


async def test_close_sends_no_start_session_held_by_the_rate_limiter(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(inline_wait=HOLD)
    client = await make_client(emu, rate_limit=RateLimits(task=RateLimit(2, 60.0)))
    handles = [client.tasks.submit(f"Task {n} [[duration=30]]") for n in range(5)]
    await wait_until(lambda: emu.sessions_created == 2 and client.stats.rate_limit_waiting >= 1)
    with anyio.fail_after(20):
        await client.aclose()
    assert emu.sessions_created == 2  # the three held back were never sent
    assert emu.live_sessions() == []
    for handle in handles:
        with pytest.raises(SessionTerminated):
            await handle


async def test_close_refuses_sessions_waiting_for_a_place(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator()
    client = await make_client(emu, max_sessions=1)
    first = await client.sessions.create()
    waiting = asyncio.ensure_future(client.sessions.create())
    gate = client._runtime.session_gate
    assert gate is not None
    await wait_until(lambda: gate.waiting == 1)  # it waits for the place the first one holds
    await client.aclose()
    with pytest.raises(ClientClosedError):
        await waiting
    assert first.ended and emu.sessions_created == 1


async def test_close_with_the_server_gone_returns_in_time_and_names_each_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = EmulatorThread(**FAST_EMULATOR)
    server.__enter__()
    client = AsyncWebRun(
        server.api_key, base_url=server.base_url, cleanup_timeout=2.0, **FAST_CLIENT
    )
    sessions = [await client.sessions.create() for _ in range(2)]
    server.__exit__()  # the API is gone
    with caplog.at_level(logging.ERROR, logger="webrun_async"), anyio.fail_after(10):
        await client.aclose()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(lines) == 1, lines
    assert all(f"{s.id} (" in lines[0] for s in sessions)
    assert "APIConnectionError" in lines[0]


# -- the loop shutting down ---------------------------------------------------------------------


def test_loop_shutdown_terminates_the_sessions_of_an_open_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client held in a task other than the main one, never closed (a web framework's
    lifespan cut short): ``asyncio.run`` ending terminates its sessions, with a warning."""
    with EmulatorThread(**FAST_EMULATOR) as server:
        started: list[str] = []

        async def background(ready: asyncio.Event) -> None:
            client = AsyncWebRun(server.api_key, base_url=server.base_url, **FAST_CLIENT)
            session = await client.sessions.create()
            started.append(session.id)
            ready.set()
            await asyncio.Event().wait()  # holds the client until the loop goes away

        async def main() -> None:
            ready = asyncio.Event()
            keep = asyncio.ensure_future(background(ready))
            await ready.wait()
            del keep  # main returns; asyncio.run cancels the task, then shuts the loop down

        with caplog.at_level(logging.WARNING):
            asyncio.run(main())
        assert started and server.live_sessions() == []
    assert any("shutting down with a client still open" in r.getMessage() for r in caplog.records)
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


# -- a server that is gone -----------------------------------------------------------------------


async def test_handles_fail_when_the_server_stays_unreachable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = EmulatorThread(**{**FAST_EMULATOR, "inline_wait": 0.05})
    server.__enter__()
    options: dict[str, Any] = {**FAST_CLIENT, "mode": "poll", "unreachable_timeout": 1.0}
    async with AsyncWebRun(
        server.api_key, base_url=server.base_url, cleanup_timeout=1.0, **options
    ) as client:
        handles = [client.tasks.submit(f"Long {n} [[duration=60]]") for n in range(3)]
        for handle in handles:
            await handle.submitted()
        with caplog.at_level(logging.INFO, logger="webrun_async"):
            server.__exit__()
            for handle in handles:
                with pytest.raises(APIConnectionError) as info, anyio.fail_after(30):
                    await handle
                assert "unreachable" in str(info.value)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len([w for w in warnings if "cannot reach" in w]) == 1
        assert [w for w in warnings if "cannot reach" not in w] == []  # no warning per poll
        assert client.stats.unreachable_for >= 1.0


# -- rate-limit visibility -------------------------------------------------------------------------


async def test_the_rate_limiter_says_once_that_it_holds_requests_back(
    make_emulator: MakeEmulator, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    emu = await make_emulator()
    client = await make_client(emu, rate_limit=RateLimits(task=RateLimit(2, 1.0)))
    with caplog.at_level(logging.INFO, logger="webrun_async"):
        handles = [client.tasks.submit(f"Task {n}") for n in range(4)]
        await wait_until(lambda: client.stats.rate_limit_waiting > 0)
        assert 0 < client.stats.rate_limit_wait <= 1.0
        await client.gather(*handles)
    told = [r for r in caplog.records if "client-side rate limit" in r.getMessage()]
    assert len([r for r in told if r.levelno == logging.INFO]) == 1
    assert "2 requests per 1 s" in told[0].getMessage()
    stats = client.stats
    assert stats.rate_limit_waiting == 0 and stats.rate_limit_held >= 1
    assert stats.rate_limit_waited > 0
