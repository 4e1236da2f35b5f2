"""Task handles end to end: the inline / socket / poll race, events, control and clean-up."""

from __future__ import annotations

import os
from typing import Any

import anyio
import msgspec
import pytest

from tests.conftest import MakeClient, MakeEmulator, wait_until
from webrun_async import (
    AsyncWebRun,
    BudgetExceeded,
    GuardrailTriggered,
    SessionTerminated,
    TaskCancelled,
    TaskFailed,
    TaskHandle,
    TaskRef,
    UsageError,
)
from webrun_async.emulator import Emulator
from webrun_async.types import (
    AgentThought,
    BrowserAction,
    InstanceDisconnected,
    InstanceReconnected,
    ResponseUpdate,
    SessionEnded,
    TaskGuardrail,
    TaskResult,
)

POLLS = "GET /task/{sessionId}/{taskId}"


async def test_submit_returns_at_once_and_resolves(client: AsyncWebRun, emulator: Emulator) -> None:
    handle = client.tasks.submit("Find laptops")
    assert handle.status == "queued"
    assert not handle.done()
    result = await handle
    assert isinstance(result, TaskResult)
    assert handle.status == "completed"
    assert handle.final
    assert handle.usage == result.usage
    assert (handle.session_id, handle.task_id) == (result.session_id, result.task_id)
    assert await handle == result  # awaiting again gives the same result
    assert emulator.live_sessions() == []


async def test_inline_answer_wins_with_no_poll(client: AsyncWebRun, emulator: Emulator) -> None:
    await client.run_task("Quick")
    assert emulator.request_counts.get(POLLS, 0) == 0


async def test_events_of_a_task(client: AsyncWebRun) -> None:
    handle = client.tasks.submit("Browse [[events=6]] [[duration=0.6]]")
    events = [event async for event in handle.events()]
    assert isinstance(events[0], ResponseUpdate)
    assert events[0].message.startswith("Starting task")
    progress = [e for e in events if isinstance(e, AgentThought | BrowserAction)]
    assert len(progress) == 6
    assert any(isinstance(e, BrowserAction) and e.name for e in progress)
    assert isinstance(events[-1], TaskResult)
    assert events[-1].task_id == handle.task_id
    # a late subscriber replays the same story
    assert [type(e) for e in [e async for e in handle.events()]] == [type(e) for e in events]


async def test_events_without_a_socket_still_end_with_the_result(make_client: MakeClient) -> None:
    client = await make_client(mode="poll")
    handle = client.tasks.submit("Browse [[duration=0.6]]")
    events = [event async for event in handle.events()]
    assert len(events) == 1
    assert isinstance(events[0], TaskResult)


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


async def test_guardrail_answered_by_respond(client: AsyncWebRun, emulator: Emulator) -> None:
    handle = client.tasks.submit("Log in [[guardrail=I need login credentials]]")
    with pytest.raises(GuardrailTriggered) as info:
        await handle
    assert handle.status == "guardrail"
    assert handle.guardrail is not None
    assert handle.guardrail.value == "I need login credentials"
    await handle.respond("user / hunter2")
    result = await handle  # the same handle, awaited again
    assert result.task_id == info.value.task_id
    assert emulator.state.tasks[result.task_id].guardrail_replies == ["user / hunter2"]
    assert emulator.live_sessions() == []


async def test_guardrail_answered_by_callback(client: AsyncWebRun, emulator: Emulator) -> None:
    asked: list[str] = []

    async def answer(prompt: TaskGuardrail) -> str:
        asked.append(prompt.value)
        return "the password is hunter2"

    result = await client.run_task("Log in [[guardrail=Password?]]", on_guardrail=answer)
    assert asked == ["Password?"]
    assert emulator.state.tasks[result.task_id].guardrail_replies == ["the password is hunter2"]


async def test_guardrail_callback_can_stop(client: AsyncWebRun) -> None:
    async def refuse(prompt: TaskGuardrail) -> None:
        return None

    with pytest.raises(TaskFailed) as info:
        await client.run_task("Pay [[guardrail=Confirm payment?]]", on_guardrail=refuse)
    assert info.value.code == "TASK_STOPPED"


async def test_client_wide_guardrail_callback(make_client: MakeClient) -> None:
    async def answer(prompt: TaskGuardrail) -> str:
        return "yes"

    client = await make_client(on_guardrail=answer)
    result = await client.run_task("Confirm [[guardrail=Proceed?]]")
    assert isinstance(result, TaskResult)


async def test_run_task_guardrail_without_answer_ends_the_session(
    client: AsyncWebRun, emulator: Emulator
) -> None:
    with pytest.raises(GuardrailTriggered) as info:
        await client.run_task("Log in [[guardrail=Password?]]")
    assert not info.value.can_respond
    assert emulator.live_sessions() == []


async def test_task_budget(client: AsyncWebRun, emulator: Emulator) -> None:
    handle = client.tasks.submit("Expensive [[duration=30]]", max_cost=0.002)
    with pytest.raises(BudgetExceeded) as info:
        await handle
    assert info.value.limit == 0.002
    assert info.value.spent > 0.002
    assert "task's max_cost" in str(info.value)
    assert handle.status == "budget_exceeded"
    await wait_until(lambda: emulator.live_sessions() == [])  # the work was stopped


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


async def test_cancel_stops_a_one_shot_task(client: AsyncWebRun, emulator: Emulator) -> None:
    handle = client.tasks.submit("Long [[duration=30]]")
    await handle.submitted()
    await handle.cancel()
    with pytest.raises(TaskCancelled):
        await handle
    assert handle.status == "cancelled"
    assert emulator.live_sessions() == []


async def test_terminate_ends_the_session(client: AsyncWebRun, emulator: Emulator) -> None:
    async with client.sessions.create() as session:
        handle = session.submit("Long [[duration=30]]")
        await handle.submitted()
        await handle.terminate()
        with pytest.raises(SessionTerminated):
            await handle
        assert emulator.live_sessions() == []


async def test_cancelling_an_awaiting_caller_leaves_the_handle_running(
    client: AsyncWebRun, emulator: Emulator
) -> None:
    handle = client.tasks.submit("Long [[duration=1.0]]")
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.2):
            await handle
    assert not handle.final
    result = await handle  # awaited again: the task ran on
    assert result.task_id == handle.task_id


async def test_detach_and_attach(make_client: MakeClient, emulator: Emulator) -> None:
    first = await make_client()
    handle = first.tasks.submit("Long [[duration=1.2]]")
    ref = await handle.submitted()
    assert handle.detach() == ref
    with pytest.raises(UsageError):
        await handle
    await first.aclose()
    assert emulator.live_sessions() == [ref.session_id]  # detached: left running
    stored = msgspec.json.encode(ref)
    second = await make_client()
    resumed = second.tasks.attach(msgspec.json.decode(stored, type=TaskRef))
    result = await resumed
    assert result.task_id == ref.task_id
    await wait_until(lambda: emulator.live_sessions() == [])


async def test_detaching_an_attached_task_leaves_its_session_running(
    make_client: MakeClient, emulator: Emulator
) -> None:
    first = await make_client()
    started = first.tasks.submit("Long [[duration=30]]")
    ref = await started.submitted()
    assert first.tasks.attach(ref) is started  # one task, one handle
    started.detach()
    await first.aclose()
    assert emulator.live_sessions() == [ref.session_id]
    second = await make_client()
    one = second.tasks.attach(ref)
    two = second.tasks.attach(ref, max_cost=100.0)  # a second handle on the same task
    one.detach()
    assert second._runtime.sessions.get(ref.session_id) is not None  # `two` still follows it
    two.detach()
    await second.aclose()
    assert emulator.live_sessions() == [ref.session_id]  # detached by everyone: left running
    third = await make_client()
    third_handle = third.tasks.attach(ref)
    await third.aclose()  # attached and not detached: the client ends it
    assert emulator.live_sessions() == []
    with pytest.raises(SessionTerminated):
        await third_handle


async def test_detach_needs_a_task_id(client: AsyncWebRun) -> None:
    handle = client.tasks.submit("Long [[duration=1]]")
    with pytest.raises(UsageError, match="submitted"):
        handle.detach()
    await handle


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


async def test_as_completed_yields_in_completion_order(client: AsyncWebRun) -> None:
    slow = client.tasks.submit("Slow [[duration=1.0]]")
    fast = client.tasks.submit("Fast [[duration=0.1]]")
    failing = client.tasks.submit("Bad [[fail=PAGE_CRASH]] [[duration=0.3]]")
    order = [h async for h in client.as_completed([slow, fast, failing])]
    assert order == [fast, failing, slow]
    with pytest.raises(TaskFailed):
        await failing


async def test_gather(client: AsyncWebRun) -> None:
    ok = client.tasks.submit("Fine")
    bad = client.tasks.submit("Bad [[fail=NAVIGATION_TIMEOUT]]")
    with pytest.raises(TaskFailed):
        await client.gather(ok, bad)
    results = await client.gather(ok, bad, return_exceptions=True)
    assert isinstance(results[0], TaskResult)
    assert isinstance(results[1], TaskFailed)


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
