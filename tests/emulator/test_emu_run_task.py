"""POST /start/run-task, polling, auto-termination and the legacy dialect."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import pytest

from tests.emulator.emulator_support import Api, EventLog, MakeApi
from tests.support import KEY, wait_until
from webrun_async.emulator import EmulatedUsage
from webrun_async.emulator.sim.taskspec import TaskSpec

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
USAGE_KEYS = {"prompt_tokens", "completion_tokens", "total_tokens", "completion_time", "cost"}


async def test_inline_completed_shape(api: Api) -> None:
    reply = await api.post("/start/run-task", {"taskDetails": "Search Google for Anthropic"})
    assert reply.status == 200
    body = reply.body
    assert body["success"] is True
    assert body["type"] == "task_completed"
    assert set(body) == {"success", "sessionId", "taskId", "type", "data", "usage", "completedAt"}
    assert "Search Google for Anthropic" in body["data"]["message"]
    assert body["data"]["files"] == []
    (entry,) = body["data"]["network"]
    assert re.match(r"^[a-z0-9]{5}$", entry["id"])
    assert entry["taskId"] == body["taskId"]
    assert entry["urls"][0]["url"] == "https://example.com"
    assert isinstance(entry["urls"][0]["timestamp"], float)
    assert set(body["usage"]) == USAGE_KEYS
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert ISO.match(body["completedAt"])
    # The poll answers the same completed body.
    assert await api.poll(body["sessionId"], body["taskId"]) == body


@pytest.mark.parametrize(
    "body",
    [
        {"taskDetails": "flat", "startingUrl": "https://s.test"},
        {"prompt": "flat prompt", "startingPoint": "https://s.test"},
        {"task": {"prompt": "nested", "startingUrl": "https://s.test"}},
    ],
)
async def test_variants(api: Api, body: dict[str, Any]) -> None:
    reply = await api.post("/start/run-task", body)
    assert reply.body["type"] == "task_completed"
    assert reply.body["data"]["network"][0]["urls"][0]["url"] == "https://s.test"


@pytest.mark.parametrize("body", [{}, {"taskDetails": ""}, {"prompt": "   "}, {"task": {}}])
async def test_missing_text_is_400(api: Api, body: dict[str, Any]) -> None:
    reply = await api.post("/start/run-task", body)
    assert reply.status == 400
    assert reply.body == {
        "success": False,
        "message": "taskDetails is required",
        "code": "MISSING_REQUIRED_FIELD",
    }
    assert api.emu.live_sessions() == []


async def test_pending_then_poll_to_completion(make_api: MakeApi) -> None:
    api = await make_api(inline_wait=0.05)
    reply = await api.post("/start/run-task", {"taskDetails": "slow [[duration=0.4]]"})
    body = reply.body
    sid, tid = body["sessionId"], body["taskId"]
    assert body == {
        "success": True,
        "sessionId": sid,
        "taskId": tid,
        "status": "pending",
        "pending": True,
        "pollUrl": f"{api.emu.base_url}/task/{sid}/{tid}",
        "message": "Task still running. Poll GET /task/:sessionId/:taskId for result.",
    }
    running = await api.poll(sid, tid)
    assert running["status"] == "running"
    assert running["pending"] is True
    assert set(running) == {"success", "sessionId", "taskId", "status", "pending", "usage"}
    assert set(running["usage"]) == USAGE_KEYS
    done = await api.poll_until(sid, tid)
    assert done["type"] == "task_completed"
    assert done["usage"]["completion_time"] == pytest.approx(0.4, abs=0.05)
    assert done["usage"]["cost"] >= running["usage"]["cost"]
    # The session ended itself; completed tasks stay pollable.
    assert api.emu.live_sessions() == []
    assert api.emu.state.sessions[sid].end_reason == "terminateOnCompletion"
    assert (await api.poll(sid, tid))["type"] == "task_completed"


async def test_usage_grows_and_cost_is_billed(make_api: MakeApi) -> None:
    api = await make_api(inline_wait=0)
    reply = await api.post("/start/run-task", {"taskDetails": "[[duration=0.3]]"})
    sid, tid = reply.body["sessionId"], reply.body["taskId"]
    first = (await api.poll(sid, tid))["usage"]
    later = await api.poll_until(
        sid, tid, lambda b: b["usage"]["prompt_tokens"] > first["prompt_tokens"]
    )
    assert later["usage"]["cost"] >= first["cost"]
    done = await api.poll_until(sid, tid)
    usage = done["usage"]
    assert usage["prompt_tokens"] == pytest.approx(600, abs=40)
    assert usage["completion_tokens"] == pytest.approx(150, abs=10)
    expected = (
        usage["prompt_tokens"] * 0.6e-6 + usage["completion_tokens"] * 2.7e-6 + 0.3 / 60 * 0.02
    )
    assert usage["cost"] == pytest.approx(expected, abs=2e-6)
    assert api.emu.account.balance == pytest.approx(100.0 - usage["cost"], abs=1e-9)


async def test_auto_termination_publishes_end_session(api: Api) -> None:
    reply = await api.post("/start/run-task", {"taskDetails": "x"})
    session = api.emu.state.sessions[reply.body["sessionId"]]
    assert not session.live
    assert session.end_reason == "terminateOnCompletion"
    assert api.emu.live_sessions() == []
    state = (await api.get("/_emulator/state")).body
    assert state["liveSessions"] == []
    assert state["instancesInUse"] == 0
    assert state["sessionsCreated"] == 1
    assert state["tasksCreated"] == 1


async def test_client_disconnect_does_not_affect_task(make_api: MakeApi) -> None:
    api = await make_api(inline_wait=10)
    timeout = aiohttp.ClientTimeout(total=0.15)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        with pytest.raises(asyncio.TimeoutError):
            await http.post(
                api.emu.base_url + "/start/run-task",
                json={"taskDetails": "[[duration=0.4]]"},
                headers={"Authorization": f"Bearer {KEY}"},
            )
    (task,) = api.emu.state.tasks.values()
    body = await api.poll_until(task.session.session_id, task.task_id)
    assert body["type"] == "task_completed"
    assert api.emu.live_sessions() == []


async def test_unknown_task_is_404(api: Api) -> None:
    reply = await api.get("/task/aaaaaaaaaaaa/bbbbbbbbbbbb")
    assert reply.status == 404
    assert reply.body == {"success": False, "message": "Task not found", "code": "TASK_NOT_FOUND"}
    done = await api.post("/start/run-task", {"taskDetails": "x"})
    other = await api.get(f"/task/{done.body['sessionId']}/bbbbbbbbbbbb")
    assert other.status == 404


async def test_guardrail_keeps_run_task_session_alive(api: Api) -> None:
    reply = await api.post("/start/run-task", {"taskDetails": "[[guardrail=Need a code]]"})
    assert reply.body["type"] == "guardrail_trigger"
    sid = reply.body["sessionId"]
    assert api.emu.live_sessions() == [sid]
    log = EventLog()
    api.emu.state.sessions[sid].subscribe(log)
    await api.message(sid, {"actionType": "guardrail", "taskDetails": "1234"})
    done = await api.poll_until(sid, reply.body["taskId"])
    assert done["type"] == "task_completed"
    await wait_until(lambda: api.emu.live_sessions() == [])
    assert log.events[-1] == (
        "end_session",
        {"type": "end_session", "reason": "terminateOnCompletion", "message": "Session ended"},
    )


# -- legacy dialect ---------------------------------------------------------------------------


async def test_legacy_inline_completed(make_api: MakeApi) -> None:
    api = await make_api(dialect="legacy")
    body = (await api.post("/start/run-task", {"taskDetails": "old"})).body
    assert body["success"] is True
    assert body["status"] == "complete"
    assert set(body) == {"success", "sessionId", "taskId", "status", "result"}
    result = body["result"]
    assert result["type"] == "task_completed"
    data = result["data"]
    assert {
        "message",
        "files",
        "network",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "completion_time",
    } <= set(data)
    # Completed poll: tokens inside data and camelCase usage.
    polled = await api.poll(body["sessionId"], body["taskId"])
    assert polled["type"] == "task_completed"
    assert "prompt_tokens" in polled["data"]
    assert set(polled["usage"]) == {"inputTokens", "outputTokens", "computeTime", "cost"}


async def test_legacy_pending_and_running(make_api: MakeApi) -> None:
    api = await make_api(dialect="legacy", inline_wait=0)
    body = (await api.post("/start/run-task", {"taskDetails": "[[duration=5]]"})).body
    assert body["pending"] is True
    assert "status" not in body
    assert body["pollUrl"].endswith(f"/task/{body['sessionId']}/{body['taskId']}")
    running = await api.poll(body["sessionId"], body["taskId"])
    assert running == {
        "success": True,
        "status": "active",
        "pending": True,
        "usage": running["usage"],
    }
    assert set(running["usage"]) == {"inputTokens", "outputTokens", "computeTime", "cost"}


async def test_legacy_failure_adds_type(make_api: MakeApi) -> None:
    api = await make_api(dialect="legacy")
    body = (await api.post("/start/run-task", {"taskDetails": "[[fail=PAGE_CRASH]]"})).body
    assert body["success"] is False
    assert body["status"] == "failed"
    assert body["type"] == "failed"
    assert body["code"] == "PAGE_CRASH"


def test_usage_fields_move_together() -> None:
    spec = TaskSpec()
    previous = EmulatedUsage.for_elapsed(0.0, spec)
    assert (previous.total_tokens, previous.cost) == (0, 0.0)
    for step in range(1, 500):
        usage = EmulatedUsage.for_elapsed(step * 0.0037, spec)
        cost_grew = usage.cost > previous.cost
        assert cost_grew == (usage.prompt_tokens > previous.prompt_tokens)
        assert cost_grew == (usage.completion_time > previous.completion_time)
        previous = usage
    capped = EmulatedUsage.for_elapsed(100.0, TaskSpec(max_input_tokens=10, max_output_tokens=5))
    assert (capped.prompt_tokens, capped.completion_tokens) == (10, 5)
