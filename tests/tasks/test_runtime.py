"""The client's runtime (``_tasks/runtime.py``): what it looks after and ends, end to end.

Sessions are terminated when the client closes (unless detached), whatever is still running or
starting; a session created for a caller that went away is reaped; ``max_sessions`` queues
work instead of failing; the client's ``max_cost`` stops everything; and a thousand tasks at
once are each delivered exactly once.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import anyio
import pytest

from tests.scripted import ScriptedReply, scripted_server
from tests.support import MakeClient, wait_until
from webrun_async import (
    AsyncWebRun,
    BudgetExceeded,
    SessionTerminated,
    TaskHandle,
    WebRunError,
)
from webrun_async.emulator import Emulator


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


async def test_client_budget(make_client: MakeClient, emulator: Emulator) -> None:
    client = await make_client(max_cost=0.003)
    handles = [client.tasks.submit(f"Expensive {i} [[duration=30]]") for i in range(3)]
    outcomes = await client.gather(*handles, return_exceptions=True)
    assert all(isinstance(o, BudgetExceeded) for o in outcomes)
    assert all("client's max_cost" in str(o) for o in outcomes)
    assert client.spent > 0.003
    with pytest.raises(BudgetExceeded):
        client.tasks.submit("One more")
    await wait_until(lambda: emulator.live_sessions() == [])


async def test_closing_with_handles_in_flight(make_client: MakeClient, emulator: Emulator) -> None:
    client = await make_client()
    handles = [client.tasks.submit(f"Long {i} [[duration=30]]") for i in range(10)]
    await wait_until(lambda: len(emulator.live_sessions()) == 10)
    await client.aclose()
    assert emulator.live_sessions() == []
    for handle in handles:
        with pytest.raises(SessionTerminated):
            await handle


async def test_closing_while_sessions_are_still_starting(
    make_client: MakeClient, emulator: Emulator
) -> None:
    client = await make_client()
    for i in range(20):
        client.tasks.submit(f"Task {i} [[duration=30]]")
    await wait_until(lambda: len(emulator.live_sessions()) >= 1)
    await client.aclose()
    assert emulator.live_sessions() == []


async def test_max_sessions_queues_instead_of_failing(
    make_client: MakeClient, emulator: Emulator
) -> None:
    client = await make_client(max_sessions=2)
    most = 0

    def count() -> None:
        nonlocal most
        most = max(most, len(emulator.live_sessions()))

    handles = [client.tasks.submit(f"Task {i} [[duration=0.3]]") for i in range(6)]
    for handle in handles:
        handle.add_done_callback(lambda _h: count())
    statuses = {h.status for h in handles}
    assert "queued" in statuses
    results = await client.gather(*handles)
    assert len(results) == 6
    assert most <= 2
    assert emulator.live_sessions() == []


async def test_a_thousand_concurrent_tasks(make_client: MakeClient, emulator: Emulator) -> None:
    client = await make_client(max_connections=100, max_sockets=100)
    count = int(os.environ.get("WEBRUN_TEST_COUNT", "1000"))
    handles: list[TaskHandle[Any]] = [
        client.tasks.submit(f"Task number {i} [[duration=0.2]]") for i in range(count)
    ]
    delivered: dict[str, int] = {}
    async for handle in client.as_completed(handles):
        result = await handle
        delivered[result.task_id] = delivered.get(result.task_id, 0) + 1
        assert f"Task number {handles.index(handle)}" in result.message
    assert len(delivered) == count  # none lost
    assert set(delivered.values()) == {1}  # each exactly once
    await wait_until(lambda: emulator.live_sessions() == [])
    assert client.live_sessions == []
    assert emulator.socket_connections <= 100  # the socket cap held


async def test_awaited_session_is_terminated_when_the_client_closes(
    make_client: MakeClient, emulator: Emulator
) -> None:
    client = await make_client()
    one = await client.sessions.create()
    two = await client.sessions.create()
    assert sorted(emulator.live_sessions()) == sorted([one.id, two.id])
    await client.aclose()
    assert emulator.live_sessions() == []


@pytest.mark.parametrize("endpoint", ["start-session", "run-task"])
async def test_a_session_created_after_its_caller_was_cancelled_is_reaped(endpoint: str) -> None:
    # The caller is cancelled while the request that creates a session is in flight; the
    # session the server then creates must still be terminated.
    release = asyncio.Event()
    answer = {"success": True, "sessionId": "s-late", "taskId": "t-late", "status": "pending"}
    async with scripted_server() as server:
        server.script(ScriptedReply(200, answer, hold=release))
        server.default = ScriptedReply(
            200, {"success": True, "message": "Message sent successfully"}
        )
        client = AsyncWebRun("k", base_url=server.base_url, rate_limit=None)

        async def start() -> object:
            if endpoint == "start-session":
                return await client.sessions.create()
            return await client.tasks.create("x")

        call = asyncio.create_task(start())
        await server.wait_for_requests(1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        release.set()
        await client.aclose()  # waits for the late answer, then terminates its session
        terminate = [s for s in server.seen if b'"newState":"terminate"' in s.body]
    assert len(terminate) == 1
    assert b'"sessionId":"s-late"' in terminate[0].body
