"""Sessions (``resources/sessions.py``) end to end: start, run tasks, steer, answer guardrails,
detach and attach, and always end.

What the client terminates when it closes is in ``tests/tasks/test_runtime.py``."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from tests.support import MakeClient, wait_until
from webrun_async import (
    AsyncWebRun,
    AuthenticationError,
    GuardrailTriggered,
    SessionTerminated,
    TaskFailed,
    UsageError,
)
from webrun_async.emulator import Emulator
from webrun_async.types import (
    Ack,
    Click,
    GuardrailReply,
    Interaction,
    KeyPress,
    NewTask,
    StateChange,
    TaskPending,
    TaskResult,
)


class Keyboard(msgspec.Struct):
    name: str
    price: float


async def test_async_with_terminates_the_session(client: AsyncWebRun, emulator: Emulator) -> None:
    async with client.sessions.create() as session:
        assert emulator.live_sessions() == [session.id]
        assert session.info is not None
        assert session.info.streaming is not None
        assert session.info.streaming.dimensions is not None
        assert session.info.streaming.dimensions.width == 1024
        assert session.info.expires_in == 300_000
        assert client.live_sessions == [session.id]
    assert emulator.live_sessions() == []
    assert emulator.state.sessions[session.id].end_reason == "terminated"
    assert client.live_sessions == []


async def test_an_error_in_the_block_still_terminates(
    client: AsyncWebRun, emulator: Emulator
) -> None:
    with pytest.raises(ZeroDivisionError):
        async with client.sessions.create():
            1 / 0  # noqa: B018
    assert emulator.live_sessions() == []


async def test_cancellation_in_the_block_still_terminates(
    client: AsyncWebRun, emulator: Emulator
) -> None:
    entered = asyncio.Event()

    async def work() -> None:
        async with client.sessions.create() as session:
            entered.set()
            await session.run("Forever [[duration=30]]")

    task = asyncio.create_task(work())
    await entered.wait()
    await wait_until(lambda: len(emulator.state.tasks) == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert emulator.live_sessions() == []


async def test_run_several_tasks_in_one_session(client: AsyncWebRun, emulator: Emulator) -> None:
    async with client.sessions.create(environment_id=None) as session:
        first = await session.run("Go to the shop", starting_url="https://shop.example")
        second = await session.run("Find keyboards", output_schema=list[Keyboard])
        assert isinstance(first, TaskResult)
        assert first.session_id == second.session_id == session.id
        assert isinstance(second.output, list)
        assert all(isinstance(k, Keyboard) for k in second.output)
        polled = await session.wait(first.task_id)
        assert polled.task_id == first.task_id
    tasks = emulator.state.sessions[session.id].tasks
    assert len(tasks) == 2


async def test_initial_task(client: AsyncWebRun, emulator: Emulator) -> None:
    async with client.sessions.create(
        initial_task="Open the shop", starting_url="https://shop.example", max_duration=60
    ) as session:
        assert session.initial_task_id is not None
        result = await session.wait(session.initial_task_id)
        assert "Open the shop" in result.message
    task = emulator.state.tasks[result.task_id]
    assert task.spec.max_duration_ms == 60_000
    assert task.spec.starting_url == "https://shop.example"


async def test_send_new_task_returns_pending_for_a_long_task(client: AsyncWebRun) -> None:
    async with client.sessions.create() as session:
        status = await session.send(NewTask(task_details="Long [[duration=1]]"))
        assert isinstance(status, TaskPending)
        result = await session.wait(status.task_id)
        assert result.task_id == status.task_id


async def test_terminate_on_completion(client: AsyncWebRun, emulator: Emulator) -> None:
    async with client.sessions.create() as session:
        result = await session.run("Last one", terminate_on_completion=True)
        assert isinstance(result, TaskResult)
        await wait_until(lambda: session.ended)
    assert emulator.state.sessions[session.id].end_reason == "terminateOnCompletion"
    # the block's exit sent nothing more: the session had already ended itself
    assert emulator.request_counts["POST /start/send-message"] == 1


async def test_pause_resume_stop(client: AsyncWebRun, emulator: Emulator) -> None:
    async with client.sessions.create() as session:
        handle = session.submit("Long [[duration=1.5]]")
        ref = await handle.submitted()
        task = emulator.state.tasks[ref.task_id]
        await session.pause()
        await wait_until(lambda: task.paused)
        await session.resume()
        await wait_until(lambda: not task.paused)
        await session.stop()
        with pytest.raises(TaskFailed) as info:
            await handle
        assert info.value.code == "TASK_STOPPED"
        after = await session.run("Next task runs in the same session")
        assert after.session_id == session.id


async def test_manual_interactions_reach_the_browser(
    client: AsyncWebRun, emulator: Emulator
) -> None:
    async with client.sessions.create() as session:
        await session.take_over()
        await session.click(500, 300)
        await session.double_click(10.5, 200)
        await session.type_text("Hello world", human_like=True)
        await session.key_press("Enter")
        await session.release_control()
        recorded = emulator.state.sessions[session.id].interactions
    assert [i["type"] for i in recorded] == [
        "takeOverControl",
        "CLICK",
        "DOUBLE_CLICK",
        "TYPE",
        "KEY_PRESS",
        "releaseControl",
    ]
    assert recorded[1]["x"] == 500
    assert recorded[3]["text"] == "Hello world"
    assert recorded[3]["humanLike"] is True


async def test_send_any_message(client: AsyncWebRun, emulator: Emulator) -> None:
    async with client.sessions.create() as session:
        ack = await client.sessions.send(session.id, Interaction(action=KeyPress(key="Tab")))
        assert isinstance(ack, Ack)
        assert ack.message == "Message sent successfully"
        status = await client.sessions.send(session.id, NewTask(task_details="Quick"))
        assert isinstance(status, TaskResult)
        ack = await session.send(Interaction(action=Click(x=1, y=155)))
        assert ack.success


async def test_guardrail_answered_with_respond(client: AsyncWebRun, emulator: Emulator) -> None:
    async with client.sessions.create() as session:
        with pytest.raises(GuardrailTriggered) as info:
            await session.run("Log in [[guardrail=I need login credentials to proceed]]")
        exc = info.value
        assert exc.value == "I need login credentials to proceed"
        assert exc.kind == "human_input_needed"
        assert exc.can_respond
        await exc.respond("user@example.com / hunter2")
        assert exc.task_id is not None
        result = await session.wait(exc.task_id)
        assert result.task_id == exc.task_id
    task = emulator.state.tasks[exc.task_id]
    assert task.guardrail_replies == ["user@example.com / hunter2"]


async def test_guardrail_stopped(client: AsyncWebRun) -> None:
    async with client.sessions.create() as session:
        with pytest.raises(GuardrailTriggered) as info:
            await session.run("Pay [[guardrail=Confirm the purchase?]]")
        await info.value.respond("", stop=True)
        assert info.value.task_id is not None
        with pytest.raises(TaskFailed) as failed:
            await session.wait(info.value.task_id)
        assert failed.value.code == "TASK_STOPPED"


async def test_guardrail_reply_via_session_respond(client: AsyncWebRun) -> None:
    async with client.sessions.create() as session:
        handle = session.submit("Ask [[guardrail=Which size?]] [[duration=0.2]]")
        with pytest.raises(GuardrailTriggered):
            await handle
        await session.respond("Large")
        result = await handle
        assert result.task_id == handle.task_id


async def test_send_guardrail_struct_redacts_the_reply() -> None:
    reply = GuardrailReply(task_details="password: hunter2")
    assert "hunter2" not in repr(reply)


async def test_terminated_session_refuses_messages(client: AsyncWebRun) -> None:
    session = await client.sessions.create()
    await session.terminate()
    with pytest.raises(AuthenticationError) as info:
        await session.pause()
    assert info.value.status == 401
    assert info.value.message == "Session not found or unauthorized"


async def test_task_in_a_terminated_session(client: AsyncWebRun) -> None:
    session = await client.sessions.create()
    handle = session.submit("Long [[duration=5]]")
    await handle.submitted()
    await client.sessions.send(session.id, StateChange(new_state="terminate"))
    with pytest.raises(SessionTerminated):
        await handle


async def test_detach_and_attach(make_client: MakeClient, emulator: Emulator) -> None:
    first = await make_client()
    async with first.sessions.create() as session:
        session_id = session.detach()
    await first.aclose()
    assert emulator.live_sessions() == [session_id]
    second = await make_client()
    attached = second.sessions.attach(session_id)
    assert second.live_sessions == [session_id]
    await attached.run("Pick up where we left off")
    await second.aclose()  # the client terminates what it looks after
    assert emulator.live_sessions() == []


async def test_a_starter_cannot_be_entered_twice(client: AsyncWebRun) -> None:
    starter = client.sessions.create()
    async with starter:
        with pytest.raises(UsageError):
            await starter.__aenter__()
