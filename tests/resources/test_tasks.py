"""Tasks (``resources/tasks.py``) end to end: ``run_task``, ``create``, ``get`` and ``wait``;
inline answers, failures, structured outputs, result files, cancellation and clean-up.

How a handle follows its task (sockets, polls) is in ``tests/tasks/``."""

from __future__ import annotations

import asyncio

import aiohttp
import anyio
import msgspec
import pytest

from tests.scripted import ScriptedReply, scripted_server
from tests.support import MakeClient, MakeEmulator, wait_until
from webrun_async import (
    APIResponseValidationError,
    AsyncWebRun,
    GuardrailTriggered,
    NotFoundError,
    OutputValidationError,
    TaskFailed,
    TaskResult,
    UsageError,
)
from webrun_async.emulator import Emulator
from webrun_async.types import TaskFailure, TaskPending, TaskRunning, TaskSecret


class Product(msgspec.Struct):
    name: str
    price: float
    in_stock: bool


async def test_inline_result(client: AsyncWebRun, emulator: Emulator) -> None:
    result = await client.run_task("Find laptops", starting_url="https://shop.example")
    assert isinstance(result, TaskResult)
    assert "Find laptops" in result.message
    assert result.usage.cost > 0
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    assert result.network[0].urls[0].url == "https://shop.example"
    assert emulator.request_counts.get("GET /task/{sessionId}/{taskId}", 0) == 0
    assert emulator.live_sessions() == []
    assert client.live_sessions == []


async def test_create_returns_pending_and_wait_finishes(client: AsyncWebRun) -> None:
    status = await client.tasks.create("Long job [[duration=0.8]]")
    assert isinstance(status, TaskPending)
    assert status.poll_url is not None
    assert status.poll_url.endswith(f"/task/{status.session_id}/{status.task_id}")
    polled = await client.tasks.get(status.session_id, status.task_id)
    assert isinstance(polled, TaskRunning)
    result = await client.tasks.wait(status.session_id, status.task_id)
    assert result.task_id == status.task_id


async def test_usage_grows_while_running(client: AsyncWebRun) -> None:
    status = await client.tasks.create("Watch me [[duration=1.5]]")
    first = await client.tasks.get(status.session_id, status.task_id)
    assert isinstance(first, TaskRunning)
    later = first

    async def cost_grew() -> bool:
        nonlocal later
        later = await client.tasks.get(status.session_id, status.task_id)
        assert isinstance(later, TaskRunning)
        return later.usage.cost > first.usage.cost

    await wait_until(cost_grew)
    assert later.usage.prompt_tokens > first.usage.prompt_tokens
    await client.tasks.wait(status.session_id, status.task_id)


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("NAVIGATION_TIMEOUT", "Navigation timeout after 30 seconds"),
        ("ELEMENT_NOT_FOUND", "Could not locate element matching criteria"),
        ("PAGE_CRASH", "Browser page crashed during execution"),
    ],
)
async def test_failure_codes(client: AsyncWebRun, emulator: Emulator, code: str, text: str) -> None:
    with pytest.raises(TaskFailed) as info:
        await client.run_task(f"Doomed [[fail={code}]]")
    assert info.value.code == code
    assert info.value.message == text
    assert info.value.usage is not None and info.value.usage.cost > 0
    assert info.value.session_id and info.value.task_id
    assert emulator.live_sessions() == []


async def test_failure_after_polling(client: AsyncWebRun, emulator: Emulator) -> None:
    with pytest.raises(TaskFailed) as info:
        await client.run_task("Slow doom [[duration=0.8]] [[fail=PAGE_CRASH]]")
    assert info.value.code == "PAGE_CRASH"
    assert emulator.live_sessions() == []


async def test_failed_status_from_create(client: AsyncWebRun) -> None:
    status = await client.tasks.create("Doomed [[fail=NAVIGATION_TIMEOUT]]")
    assert isinstance(status, TaskFailure)
    assert status.code == "NAVIGATION_TIMEOUT"


async def test_guardrail_in_a_one_shot_task_ends_its_session(
    client: AsyncWebRun, emulator: Emulator
) -> None:
    with pytest.raises(GuardrailTriggered) as info:
        await client.run_task("Log in [[guardrail=I need login credentials to proceed]]")
    assert info.value.value == "I need login credentials to proceed"
    assert not info.value.can_respond
    with pytest.raises(UsageError):
        await info.value.respond("user / pass")
    assert emulator.live_sessions() == []
    assert client.live_sessions == []


async def test_typed_structured_output(client: AsyncWebRun, emulator: Emulator) -> None:
    result = await client.run_task("List products", output_schema=list[Product])
    assert isinstance(result.output, list) and result.output
    assert all(isinstance(p, Product) for p in result.output)
    sent = next(iter(emulator.state.tasks.values())).spec
    assert sent.output_type == "structured_json"


async def test_dict_schema_output(client: AsyncWebRun) -> None:
    schema = {
        "type": "object",
        "properties": {"results": {"type": "array", "items": {"type": "string"}}},
        "required": ["results"],
    }
    result = await client.run_task("Search", output_schema=schema)
    assert isinstance(result.output, dict)
    assert all(isinstance(r, str) for r in result.output["results"])


async def test_csv_output(client: AsyncWebRun) -> None:
    result = await client.run_task("Table", output_schema=["name", "price"])
    assert isinstance(result.output, list) and result.output
    assert set(result.output[0]) == {"name", "price"}


async def test_output_that_does_not_match_the_schema() -> None:
    completed = {
        "success": True,
        "sessionId": "s1",
        "taskId": "t1",
        "type": "task_completed",
        "data": {"message": "Sorry, I could only find prose."},
        "usage": {"cost": 0.02},
    }
    async with scripted_server() as server:
        server.default = ScriptedReply(200, completed)
        async with AsyncWebRun("k", base_url=server.base_url, rate_limit=None) as client:
            with pytest.raises(OutputValidationError) as info:
                await client.run_task("List products", output_schema=list[Product])
    assert info.value.result.message == "Sorry, I could only find prose."
    assert info.value.result.usage.cost == 0.02  # what was paid for is still there


async def test_result_files(client: AsyncWebRun) -> None:
    result = await client.run_task("Download reports [[files=2]] [[file_size=2048]]")
    assert len(result.files) == 2
    async with aiohttp.ClientSession() as http, http.get(result.files[0].download_url) as resp:
        assert resp.status == 200
        assert len(await resp.read()) == 2048


async def test_unknown_task_is_not_found(client: AsyncWebRun) -> None:
    with pytest.raises(NotFoundError) as info:
        await client.tasks.get("nosuchsession", "nosuchtask")
    assert info.value.status == 404


async def test_secrets_reach_the_server_but_not_the_repr(client: AsyncWebRun) -> None:
    secret = TaskSecret(match="*.example.com", fields={"password": "hunter2-secret"})
    result = await client.run_task("Log in", secrets=[secret])
    assert "hunter2-secret" not in repr(result)
    assert "hunter2-secret" not in repr(secret)


async def test_cancelling_run_task_terminates_its_session(
    client: AsyncWebRun, emulator: Emulator
) -> None:
    async def run() -> None:
        await client.run_task("Forever [[duration=30]]")

    task = asyncio.create_task(run())
    await wait_until(lambda: bool(emulator.live_sessions()))  # the server started it
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert emulator.live_sessions() == []
    assert client.live_sessions == []


async def test_timeout_scope_around_run_task_terminates_its_session(
    client: AsyncWebRun, emulator: Emulator
) -> None:
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.3):
            await client.run_task("Forever [[duration=30]]")
    assert emulator.live_sessions() == []


async def test_legacy_dialect_end_to_end(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    legacy = await make_emulator(dialect="legacy")
    client = await make_client(legacy)
    inline = await client.run_task("Quick")
    assert inline.usage.prompt_tokens > 0
    polled = await client.run_task("Slow [[duration=0.8]]")
    assert polled.usage.total_tokens > 0 and polled.usage.cost > 0
    with pytest.raises(TaskFailed) as info:
        await client.run_task("Doomed [[fail=PAGE_CRASH]]")
    assert info.value.code == "PAGE_CRASH"
    assert legacy.live_sessions() == []


async def test_an_answer_without_a_task_id_is_a_typed_error() -> None:
    async with scripted_server() as server:
        server.default = ScriptedReply(
            200, {"success": True, "sessionId": "s1", "status": "pending"}
        )
        async with AsyncWebRun("k", base_url=server.base_url, rate_limit=None) as client:
            with pytest.raises(APIResponseValidationError) as info:
                await client.tasks.create("x")
    assert info.value.path == "/start/run-task"
