"""Task handles (``_tasks/handle.py``) end to end: awaiting, the inline / socket / poll race,
a task's events, guardrails, budgets, cancelling, terminating, detaching and attaching.

How sockets and polls deliver is in ``test_channel.py`` and ``test_poller.py``; what the
client ends when it closes, in ``test_runtime.py``."""

from __future__ import annotations

import anyio
import msgspec
import pytest

from tests.support import MakeClient, wait_until
from webrun_async import (
    AsyncWebRun,
    BudgetExceeded,
    GuardrailTriggered,
    SessionTerminated,
    TaskCancelled,
    TaskFailed,
    TaskRef,
    UsageError,
)
from webrun_async.emulator import Emulator
from webrun_async.types import (
    AgentThought,
    BrowserAction,
    ResponseUpdate,
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
    assert second.live_sessions == [ref.session_id]  # `two` still follows it...
    assert second.tasks.attach(ref) is two  # ...and is the handle of the task now
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
