"""The socket.io channel of a session (``_tasks/channel.py``), end to end against the
emulator: when a socket is opened, how events reach handles and listeners in order, control
messages sent over it, and what happens when it drops, comes back or is refused (polling
covers the gap and reconciles after it).
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tests.support import MakeClient, MakeEmulator, wait_until
from webrun_async import AsyncWebRun, SessionTerminated, TaskFailed
from webrun_async.emulator import Emulator
from webrun_async.types import (
    AgentThought,
    BrowserAction,
    InstanceDisconnected,
    InstanceReconnected,
    SessionEnded,
    TaskResult,
)

POLLS = "GET /task/{sessionId}/{taskId}"


# -- when a session gets a socket ------------------------------------------------------------------


async def test_pending_then_pushed_over_the_socket(
    make_client: MakeClient, emulator: Emulator
) -> None:
    # The hold (0.5 s) ends before the task (1.2 s); the socket delivers the result, and the
    # safety-net poll (an hour here) never runs.
    client = await make_client(mode="auto", safety_poll_interval=3600)
    result = await client.run_task("Long job [[duration=1.2]]")
    assert result.usage.completion_time >= 1.0
    assert emulator.request_counts.get("GET /task/{sessionId}/{taskId}", 0) == 0
    assert emulator.socket_connections == 1
    assert emulator.live_sessions() == []


async def test_poll_mode_opens_no_socket(make_client: MakeClient, emulator: Emulator) -> None:
    client = await make_client(mode="poll")
    await client.run_task("Long [[duration=0.8]]")
    assert emulator.socket_connections == 0


async def test_beyond_the_socket_cap_handles_poll(
    make_client: MakeClient, emulator: Emulator
) -> None:
    client = await make_client(max_sockets=2)
    handles = [client.tasks.submit(f"Task {i} [[duration=0.8]]") for i in range(5)]
    results = await client.gather(*handles)
    assert len(results) == 5
    assert emulator.socket_connections == 2
    assert emulator.request_counts[POLLS] >= 3


async def test_socket_refused_polling_alone_works(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    no_sockets = await make_emulator(sockets=False)
    client = await make_client(no_sockets)
    handle = client.tasks.submit("Long [[duration=1.0]]")
    result = await handle
    assert result.task_id == handle.task_id
    assert no_sockets.socket_refused >= 1
    assert no_sockets.request_counts[POLLS] >= 1
    assert no_sockets.live_sessions() == []


# -- events in, control out ------------------------------------------------------------------------


async def test_session_tasks_run_in_order_and_events_follow_them(
    client: AsyncWebRun, emulator: Emulator
) -> None:
    async with client.sessions.create() as session:
        assert session.socket_connected
        seen: list[Any] = []

        async def listen() -> None:
            async for event in session.events():
                seen.append(event)

        async with anyio.create_task_group() as tg:
            tg.start_soon(listen)
            first = session.submit("First [[duration=0.3]] [[events=2]]")
            second = session.submit("Second [[duration=0.3]] [[events=2]]")
            one, two = await first, await second
            await session.terminate()
    assert one.task_id != two.task_id
    finals = [e for e in seen if isinstance(e, TaskResult)]
    assert [e.task_id for e in finals] == [one.task_id, two.task_id]
    assert isinstance(seen[-1], SessionEnded)
    assert seen[-1].reason == "terminated"
    events_one = [e async for e in first.events()]
    assert sum(isinstance(e, AgentThought | BrowserAction) for e in events_one) == 2


async def test_instance_events(client: AsyncWebRun, emulator: Emulator) -> None:
    async with client.sessions.create() as session:
        seen: list[Any] = []
        got_back = anyio.Event()

        async def listen() -> None:
            async for event in session.events():
                seen.append(event)
                if isinstance(event, InstanceReconnected):
                    got_back.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(listen)
            handle = session.submit("Long [[duration=0.5]]")
            await handle.submitted()
            await emulator.disconnect_instance(session.id, reconnect_after=0.1)
            await got_back.wait()
            await handle
            tg.cancel_scope.cancel()
    kinds = [type(e) for e in seen]
    assert InstanceDisconnected in kinds
    assert kinds.index(InstanceDisconnected) < kinds.index(InstanceReconnected)
    disconnected = next(e for e in seen if isinstance(e, InstanceDisconnected))
    assert disconnected.grace_period is not None


async def test_instance_lost_ends_the_task(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emulator = await make_emulator(instance_grace=0.2)
    client = await make_client(emulator)
    handle = client.tasks.submit("Long [[duration=30]]")
    ref = await handle.submitted()
    await emulator.disconnect_instance(ref.session_id)
    with pytest.raises(SessionTerminated):
        await handle
    assert emulator.live_sessions() == []


async def test_control_goes_over_the_socket(client: AsyncWebRun, emulator: Emulator) -> None:
    async with client.sessions.create() as session:
        handle = session.submit("Long [[duration=2]]")
        ref = await handle.submitted()
        rest_before = emulator.request_counts["POST /start/send-message"]
        await session.pause()
        await wait_until(lambda: emulator.state.tasks[ref.task_id].paused)
        await session.resume()
        await session.click(10, 200)
        await session.stop()
        with pytest.raises(TaskFailed):
            await handle
        assert emulator.request_counts["POST /start/send-message"] == rest_before
        assert emulator.request_counts["SOCKET message"] >= 4


# -- a socket that drops, comes back or is refused -------------------------------------------------


async def test_socket_dropped_mid_task_polling_wins(
    make_client: MakeClient, emulator: Emulator
) -> None:
    client = await make_client(safety_poll_interval=3600)
    handle = client.tasks.submit("Long [[duration=1.5]]")
    ref = await handle.submitted()
    await wait_until(lambda: emulator.open_sockets(ref.session_id) == 1)
    await emulator.drop_sockets(ref.session_id, refuse_reconnect=True)
    result = await handle
    assert result.task_id == ref.task_id
    assert emulator.request_counts[POLLS] >= 1  # the socket could not deliver it
    assert emulator.live_sessions() == []


async def test_socket_dropped_and_back_reconciles(
    make_client: MakeClient, emulator: Emulator
) -> None:
    # Regular polls are an hour apart: only the reconnection (and its reconciling poll) and
    # the socket itself can deliver the result in time.
    client = await make_client(safety_poll_interval=3600, poll_interval=3600)
    handle = client.tasks.submit("Long [[duration=3]]")
    ref = await handle.submitted()
    await wait_until(lambda: emulator.open_sockets(ref.session_id) == 1)
    await emulator.drop_sockets(ref.session_id)  # it reconnects by itself
    with anyio.fail_after(10):
        result = await handle
    assert result.task_id == ref.task_id
    assert emulator.socket_connections == 2
    assert emulator.request_counts.get(POLLS, 0) >= 1  # the reconciling poll after the gap


async def test_reconnection_refused_after_the_session_ended(
    make_client: MakeClient, emulator: Emulator
) -> None:
    client = await make_client(safety_poll_interval=3600, poll_interval=3600)
    handle = client.tasks.submit("Long [[duration=1.0]]")
    ref = await handle.submitted()
    await wait_until(lambda: emulator.open_sockets(ref.session_id) == 1)
    await emulator.drop_sockets(ref.session_id, refuse_reconnect=True)
    await wait_until(lambda: emulator.live_sessions() == [])  # it ended while we were away
    emulator.allow_sockets(ref.session_id)  # the session is gone: reconnecting is refused
    with anyio.fail_after(10):
        result = await handle  # learnt by the poll that follows the refusal
    assert result.task_id == ref.task_id
