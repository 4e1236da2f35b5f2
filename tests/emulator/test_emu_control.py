"""POST /start/send-message: newTask, state, interaction, guardrail, and session expiry."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulator.emulator_support import Api, EventLog, MakeApi
from tests.support import wait_until

SENT = {"success": True, "message": "Message sent successfully"}


async def test_required_fields(api: Api) -> None:
    sid = await api.new_session()
    for body in (
        {},
        {"sessionId": sid},
        {"message": {"actionType": "state"}},
        {"sessionId": "", "message": {}},
    ):
        reply = await api.post("/start/send-message", body)
        assert reply.status == 400
        assert reply.body == {
            "success": False,
            "message": "sessionId and message are required",
            "code": "MISSING_REQUIRED_FIELD",
        }


async def test_unknown_or_ended_session_is_401(api: Api) -> None:
    expected = {
        "success": False,
        "message": "Session not found or unauthorized",
        "code": "SESSION_NOT_FOUND",
    }
    reply = await api.message("nosuchsessio", {"actionType": "state", "newState": "pause"})
    assert (reply.status, reply.body) == (401, expected)
    sid = await api.new_session()
    assert (await api.message(sid, {"actionType": "state", "newState": "terminate"})).body == SENT
    reply = await api.message(sid, {"actionType": "state", "newState": "pause"})
    assert (reply.status, reply.body) == (401, expected)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (
            {"actionType": "dance"},
            "Invalid parameter 'actionType': must be one of newTask, state, interaction, guardrail",
        ),
        (
            {},
            "Invalid parameter 'actionType': must be one of newTask, state, interaction, guardrail",
        ),
        (
            {"actionType": "state", "newState": "nap"},
            "Invalid parameter 'newState': must be one of pause, resume, stop, terminate",
        ),
        (
            {"actionType": "guardrail", "newState": "later"},
            "Invalid parameter 'newState': must be one of resume, stop",
        ),
        ({"actionType": "interaction"}, "Invalid parameter 'action': must be an object"),
        (
            {"actionType": "interaction", "action": {"type": "HOVER"}},
            "Invalid parameter 'action.type': must be one of takeOverControl, releaseControl,"
            " CLICK, DOUBLE_CLICK, TYPE, KEY_PRESS",
        ),
        (
            {"actionType": "interaction", "action": {"type": "CLICK", "x": 1}},
            "Invalid parameter 'action.y': must be a number >= 0",
        ),
        (
            {"actionType": "interaction", "action": {"type": "DOUBLE_CLICK", "x": -1, "y": 2}},
            "Invalid parameter 'action.x': must be a number >= 0",
        ),
        (
            {"actionType": "interaction", "action": {"type": "CLICK", "x": True, "y": 2}},
            "Invalid parameter 'action.x': must be a number >= 0",
        ),
        (
            {"actionType": "interaction", "action": {"type": "TYPE"}},
            "Invalid parameter 'action.text': must be a string",
        ),
        (
            {
                "actionType": "interaction",
                "action": {"type": "TYPE", "text": "a", "humanLike": "y"},
            },
            "Invalid parameter 'action.humanLike': must be a boolean",
        ),
        (
            {"actionType": "interaction", "action": {"type": "KEY_PRESS", "key": ""}},
            "Invalid parameter 'action.key': must be a non-empty string",
        ),
    ],
)
async def test_bad_messages_are_400(api: Api, message: dict[str, Any], error: str) -> None:
    sid = await api.new_session()
    reply = await api.message(sid, message)
    assert reply.status == 400
    assert reply.body == {"success": False, "message": error, "code": "INVALID_PARAMETER"}


async def test_new_task_inline_and_missing_text(api: Api) -> None:
    sid = await api.new_session()
    reply = await api.message(
        sid, {"actionType": "newTask", "newState": "start", "taskDetails": "Search"}
    )
    assert reply.body["type"] == "task_completed"
    assert reply.body["sessionId"] == sid
    assert api.emu.live_sessions() == [sid]  # no terminateOnCompletion
    reply = await api.message(sid, {"actionType": "newTask", "newState": "start"})
    assert reply.status == 400
    assert reply.body["message"] == "taskDetails is required"


async def test_new_task_terminate_on_completion(api: Api) -> None:
    sid = await api.new_session()
    reply = await api.message(
        sid, {"actionType": "newTask", "prompt": "last one", "terminateOnCompletion": True}
    )
    assert reply.body["type"] == "task_completed"
    assert api.emu.live_sessions() == []
    assert api.emu.state.sessions[sid].end_reason == "terminateOnCompletion"


async def test_new_task_needs_balance(api: Api) -> None:
    sid = await api.new_session()
    api.emu.account.balance = 0
    reply = await api.message(sid, {"actionType": "newTask", "taskDetails": "x"})
    assert reply.status == 402
    assert reply.body["code"] == "INSUFFICIENT_BALANCE"


async def test_queueing(make_api: MakeApi) -> None:
    api = await make_api(inline_wait=0)
    sid = await api.new_session()
    first = await api.message(sid, {"actionType": "newTask", "taskDetails": "one [[duration=0.2]]"})
    second = await api.message(
        sid, {"actionType": "newTask", "taskDetails": "two [[duration=0.05]]"}
    )
    assert first.body["status"] == second.body["status"] == "pending"
    tasks = api.emu.state.tasks
    assert tasks[second.body["taskId"]].status == "queued"
    assert (await api.poll(sid, second.body["taskId"]))[
        "status"
    ] == "running"  # queued reads as running
    await api.poll_until(sid, first.body["taskId"])
    done = await api.poll_until(sid, second.body["taskId"])
    assert done["type"] == "task_completed"
    first_task, second_task = tasks[first.body["taskId"]], tasks[second.body["taskId"]]
    assert first_task.completed_at is not None
    assert second_task.completed_at is not None
    assert first_task.completed_at <= second_task.completed_at


async def test_strict_mode_rejects_a_second_task(make_api: MakeApi) -> None:
    api = await make_api(strict=True, inline_wait=0)
    sid = await api.new_session()
    await api.message(sid, {"actionType": "newTask", "taskDetails": "[[duration=5]]"})
    reply = await api.message(sid, {"actionType": "newTask", "taskDetails": "again"})
    assert reply.status == 409
    assert reply.body == {
        "success": False,
        "message": "A task is already running in this session",
        "code": "TASK_ALREADY_RUNNING",
    }


async def test_pause_freezes_usage_and_resume_continues(make_api: MakeApi) -> None:
    api = await make_api(inline_wait=0)
    sid = await api.new_session()
    start = await api.message(sid, {"actionType": "newTask", "taskDetails": "[[duration=0.3]]"})
    tid = start.body["taskId"]
    await api.poll_until(sid, tid, lambda b: b["usage"]["prompt_tokens"] > 0)
    assert (await api.message(sid, {"actionType": "state", "newState": "pause"})).body == SENT
    frozen = (await api.poll(sid, tid))["usage"]
    # Let a whole other task run to completion: the paused one must not move meanwhile.
    other = await api.message(
        await api.new_session(), {"actionType": "newTask", "taskDetails": "[[duration=0.1]]"}
    )
    await api.poll_until(other.body["sessionId"], other.body["taskId"])
    paused = await api.poll(sid, tid)
    assert paused["status"] == "running"
    assert paused["usage"] == frozen
    assert (await api.message(sid, {"actionType": "state", "newState": "resume"})).body == SENT
    done = await api.poll_until(sid, tid)
    assert done["type"] == "task_completed"
    assert done["usage"]["completion_time"] == pytest.approx(0.3, abs=0.05)


async def test_stop_fails_current_and_starts_next(make_api: MakeApi) -> None:
    api = await make_api(inline_wait=0)
    sid = await api.new_session()
    first = await api.message(sid, {"actionType": "newTask", "taskDetails": "[[duration=10]]"})
    second = await api.message(sid, {"actionType": "newTask", "taskDetails": "[[duration=0.05]]"})
    assert (await api.message(sid, {"actionType": "state", "newState": "stop"})).body == SENT
    stopped = await api.poll(sid, first.body["taskId"])
    assert stopped["success"] is False
    assert stopped["status"] == "failed"
    assert (stopped["code"], stopped["error"]) == ("TASK_STOPPED", "Task stopped by user")
    done = await api.poll_until(sid, second.body["taskId"])
    assert done["type"] == "task_completed"
    assert api.emu.live_sessions() == [sid]


async def test_terminate_ends_session_and_tasks(make_api: MakeApi) -> None:
    api = await make_api(inline_wait=0)
    sid = await api.new_session()
    log = EventLog()
    api.emu.state.sessions[sid].subscribe(log)
    running = await api.message(sid, {"actionType": "newTask", "taskDetails": "[[duration=10]]"})
    queued = await api.message(sid, {"actionType": "newTask", "taskDetails": "later"})
    assert (await api.message(sid, {"actionType": "state", "newState": "terminate"})).body == SENT
    assert api.emu.live_sessions() == []
    for reply in (running, queued):
        body = await api.poll(sid, reply.body["taskId"])
        assert body == {
            "success": False,
            "sessionId": sid,
            "taskId": reply.body["taskId"],
            "status": "terminated",
            "error": "Session terminated",
            "usage": body["usage"],
        }
    assert log.events[-1] == (
        "end_session",
        {"type": "end_session", "reason": "terminated", "message": "Session ended"},
    )


async def test_interactions_are_recorded(api: Api) -> None:
    sid = await api.new_session()
    actions: list[dict[str, Any]] = [
        {"type": "takeOverControl"},
        {"type": "CLICK", "x": 500, "y": 300},
        {"type": "DOUBLE_CLICK", "x": 1.5, "y": 2000},
        {"type": "TYPE", "text": "Hello world", "humanLike": True},
        {"type": "KEY_PRESS", "key": "Enter"},
        {"type": "releaseControl"},
    ]
    for action in actions:
        reply = await api.message(sid, {"actionType": "interaction", "action": action})
        assert reply.body == SENT
    recorded = api.emu.state.sessions[sid].interactions
    assert [r["type"] for r in recorded] == [a["type"] for a in actions]
    assert recorded[1] == {"type": "CLICK", "x": 500, "y": 300}
    assert recorded[3] == {"type": "TYPE", "text": "Hello world", "humanLike": True}


async def test_strict_coordinates(make_api: MakeApi) -> None:
    api = await make_api(strict=True)
    sid = await api.new_session()
    ok = await api.message(
        sid, {"actionType": "interaction", "action": {"type": "CLICK", "x": 1024, "y": 755}}
    )
    assert ok.body == SENT
    reply = await api.message(
        sid, {"actionType": "interaction", "action": {"type": "CLICK", "x": 10, "y": 756}}
    )
    assert reply.status == 400
    assert reply.body["message"] == "Invalid parameter 'action.y': must be between 0 and 755"


async def test_take_over_pauses_and_release_resumes(make_api: MakeApi) -> None:
    api = await make_api(inline_wait=0)
    sid = await api.new_session()
    start = await api.message(sid, {"actionType": "newTask", "taskDetails": "[[duration=0.2]]"})
    task = api.emu.state.tasks[start.body["taskId"]]
    await api.message(sid, {"actionType": "interaction", "action": {"type": "takeOverControl"}})
    assert (task.paused, task.clock.running) == (True, False)
    await api.message(sid, {"actionType": "interaction", "action": {"type": "releaseControl"}})
    assert (task.paused, task.clock.running) == (False, True)
    assert (await api.poll_until(sid, task.task_id))["type"] == "task_completed"


@pytest.mark.parametrize("field", ["taskDetails", "prompt"])
async def test_guardrail_resume(make_api: MakeApi, field: str) -> None:
    api = await make_api(task_duration=0.1)
    sid = await api.new_session()
    held = await api.message(
        sid, {"actionType": "newTask", "taskDetails": "[[guardrail=Need password]]"}
    )
    assert held.body["type"] == "guardrail_trigger"
    assert held.body["data"] == {"type": "human_input_needed", "value": "Need password"}
    reply = await api.message(
        sid, {"actionType": "guardrail", field: "Password: pass123", "newState": "resume"}
    )
    assert reply.body == SENT
    done = await api.poll_until(sid, held.body["taskId"])
    assert done["type"] == "task_completed"
    task = api.emu.state.tasks[held.body["taskId"]]
    assert task.guardrail_replies == ["Password: pass123"]


async def test_guardrail_resume_is_the_default_state(api: Api) -> None:
    sid = await api.new_session()
    held = await api.message(
        sid, {"actionType": "newTask", "taskDetails": "[[guardrail=Which one?]]"}
    )
    await api.message(sid, {"actionType": "guardrail", "taskDetails": "The first"})
    assert (await api.poll_until(sid, held.body["taskId"]))["type"] == "task_completed"


async def test_guardrail_stop(api: Api) -> None:
    sid = await api.new_session()
    held = await api.message(sid, {"actionType": "newTask", "taskDetails": "[[guardrail=Pay $5?]]"})
    reply = await api.message(sid, {"actionType": "guardrail", "prompt": "no", "newState": "stop"})
    assert reply.body == SENT
    body = await api.poll(sid, held.body["taskId"])
    assert (body["status"], body["code"]) == ("failed", "TASK_STOPPED")
    assert api.emu.live_sessions() == [sid]


async def test_session_expiry(make_api: MakeApi) -> None:
    api = await make_api(session_timeout=0.1)
    sid = await api.new_session()
    log = EventLog()
    api.emu.state.sessions[sid].subscribe(log)
    await wait_until(lambda: sid not in api.emu.live_sessions())
    assert api.emu.state.sessions[sid].end_reason == "expired"
    assert log.events == [
        ("end_session", {"type": "end_session", "reason": "expired", "message": "Session ended"})
    ]
    reply = await api.message(sid, {"actionType": "state", "newState": "pause"})
    assert reply.status == 401


async def test_running_task_keeps_session_alive(make_api: MakeApi) -> None:
    api = await make_api(session_timeout=0.05, inline_wait=0)
    sid = await api.new_session()
    start = await api.message(sid, {"actionType": "newTask", "taskDetails": "[[duration=0.3]]"})
    done = await api.poll_until(sid, start.body["taskId"])
    assert done["type"] == "task_completed"  # not terminated by expiry while running
    await wait_until(lambda: sid not in api.emu.live_sessions())
    assert api.emu.state.sessions[sid].end_reason == "expired"


async def test_listener_errors_do_not_break_the_simulation(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    sid = await api.new_session()

    def broken(event: str, payload: dict[str, Any]) -> None:
        raise RuntimeError("listener bug")

    log = EventLog()
    session = api.emu.state.sessions[sid]
    session.subscribe(broken)
    unsubscribe = session.subscribe(log)
    with caplog.at_level("ERROR", logger="webrun_async.emulator"):
        reply = await api.message(sid, {"actionType": "newTask", "taskDetails": "x"})
    assert reply.body["type"] == "task_completed"
    assert log.types()[-1] == "task_completed"
    assert any("listener" in record.getMessage() for record in caplog.records)
    unsubscribe()
    count = len(log.events)
    await api.message(sid, {"actionType": "newTask", "taskDetails": "y"})
    assert len(log.events) == count
