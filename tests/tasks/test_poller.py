"""The poll scheduler (``_tasks/poller.py``): when handles are polled, how often, how many at
once, and what a failed poll does.

Over real HTTP: a scripted server (``tests/scripted.py``) answers the polls, or the emulator
runs the tasks. A followed task is polled at once, then every ``poll_interval`` (spread out by
up to half as much again) until its answer is final.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest

import webrun_async.resources.tasks as tasks_module
from tests.scripted import ScriptedReply, ScriptedServer, Seen, client_for, scripted_server
from tests.support import MakeClient
from webrun_async import (
    APIStatusError,
    AsyncWebRun,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    RetryPolicy,
    TaskRef,
    TaskResult,
    TaskTimeoutError,
)
from webrun_async.emulator import Emulator

SENT = {"success": True, "message": "Message sent successfully"}
TASK = TaskRef(session_id="s1", task_id="t1")


def running(session_id: str = "s1", task_id: str = "t1") -> ScriptedReply:
    body = {"success": True, "status": "running", "sessionId": session_id, "taskId": task_id}
    return ScriptedReply(200, body)


def completed(message: str = "done") -> ScriptedReply:
    body = {
        "success": True,
        "sessionId": "s1",
        "taskId": "t1",
        "type": "task_completed",
        "data": {"message": message},
        "usage": {"cost": 0.01},
    }
    return ScriptedReply(200, body)


def polls_then_acks(polls: list[ScriptedReply]) -> Callable[[Seen], ScriptedReply]:
    """Answers the polls of task t1 in turn (the last one from then on); acknowledges messages
    (the termination of the attached session when the client closes)."""
    answers = iter(polls)
    last = polls[-1]

    def answer(seen: Seen) -> ScriptedReply:
        if seen.path != "/task/s1/t1":
            return ScriptedReply(200, SENT)
        nonlocal last
        last = next(answers, last)
        return last

    return answer


def poll_times(server: ScriptedServer, arrived: list[float]) -> Callable[[Seen], ScriptedReply]:
    """Wraps the server's default answer to note when each poll arrived."""
    inner = server.default
    assert callable(inner)

    def answer(seen: Seen) -> ScriptedReply:
        if seen.path.startswith("/task/"):
            arrived.append(time.monotonic())
        return inner(seen)

    return answer


async def test_a_task_is_polled_no_sooner_than_the_poll_interval(server: ScriptedServer) -> None:
    server.default = polls_then_acks([running()] * 4 + [completed()])
    arrived: list[float] = []
    server.default = poll_times(server, arrived)
    async with client_for(server, mode="poll", poll_interval=0.2) as client:
        result = await client.tasks.attach(TASK)
    assert isinstance(result, TaskResult)
    assert len(arrived) == 5
    # Each poll is sent once the answer to the one before has come back, and the interval
    # after it, so the gaps between arrivals cannot be shorter. (The tolerance is for timers
    # that fire early: by a millisecond, or on uvloop from a clock read when its loop woke.)
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrived)]
    assert min(gaps) >= 0.9 * 0.2, gaps


async def test_a_failed_poll_is_tried_again_at_the_next_interval(server: ScriptedServer) -> None:
    broken = [
        ScriptedReply(500, {"message": "boom"}),
        ScriptedReply(reset=True),
        ScriptedReply(200, raw=b"{not json"),
        ScriptedReply(503, {"message": "busy"}),
    ]
    server.default = polls_then_acks([*broken, completed("made it")])
    retry = RetryPolicy(max_retries=0)  # each failure reaches the scheduler
    async with client_for(server, mode="poll", poll_interval=0.02, retry=retry) as client:
        handle = client.tasks.attach(TASK)
        result = await handle
    assert result.message == "made it"
    assert handle.status == "completed"
    assert [s.path for s in server.seen].count("/task/s1/t1") == 5


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthenticationError), (403, PermissionDeniedError), (404, NotFoundError)],
)
async def test_a_task_the_server_no_longer_shows_fails_its_handle(
    server: ScriptedServer, status: int, error: type[APIStatusError]
) -> None:
    gone = ScriptedReply(status, {"success": False, "error": "Task t1 not found"})
    server.default = polls_then_acks([running(), gone, completed()])
    async with client_for(server, mode="poll", poll_interval=0.02) as client:
        handle = client.tasks.attach(TASK)
        with pytest.raises(error) as info:
            await handle
    assert info.value.status == status
    assert handle.status == "error"
    assert [s.path for s in server.seen].count("/task/s1/t1") == 2  # and polling stopped there


async def test_pending_then_polled(make_client: MakeClient, emulator: Emulator) -> None:
    client = await make_client(mode="poll")
    result = await client.run_task("Long job [[duration=1.2]]")
    assert result.usage.completion_time >= 1.0
    assert emulator.request_counts["GET /task/{sessionId}/{taskId}"] >= 1
    assert emulator.socket_connections == 0
    assert emulator.live_sessions() == []


async def test_unknown_status_polls_until_the_deadline_then_terminates(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tasks_module, "DEADLINE_MARGIN", 0.3)
    pending = {"success": True, "sessionId": "s1", "taskId": "t1", "status": "pending"}
    odd = {"success": True, "sessionId": "s1", "taskId": "t1", "status": "thinking_hard"}

    def answer(seen: Any) -> ScriptedReply:
        if seen.path == "/start/start-session":
            return ScriptedReply(200, {"success": True, "sessionId": "s1"})
        if seen.path == "/start/send-message" and b"newTask" in seen.body:
            return ScriptedReply(200, pending)
        if seen.path == "/start/send-message":
            return ScriptedReply(200, {"success": True, "message": "Message sent successfully"})
        return ScriptedReply(200, odd)

    async with scripted_server() as server:
        server.default = answer
        async with AsyncWebRun(
            "k",
            base_url=server.base_url,
            rate_limit=None,
            poll_interval=0.02,
            retry=RetryPolicy(wait=False),
            mode="poll",
        ) as client:
            with pytest.raises(TaskTimeoutError):
                await client.run_task("x", max_duration=1)
        paths = [s.path for s in server.seen]
    assert paths[:2] == ["/start/start-session", "/start/send-message"]
    assert "/task/s1/t1" in paths
    terminate = [s for s in server.seen if b'"newState":"terminate"' in s.body]
    assert len(terminate) == 1
    assert b'"terminate"' in terminate[0].body
    assert "thinking_hard" in caplog.text  # the unknown status was reported, once
    assert caplog.text.count("unknown status") == 1


async def test_handles_due_at_once_wait_in_the_heap_not_as_tasks() -> None:
    """Handles attached in bulk all fall due at once: their polls wait in the scheduler's heap,
    at most ``max_connections`` of them running, rather than as a task each queued at the
    pool. Every one of them is still polled."""
    count, pool = 80, 4
    baseline = most_tasks = 0

    def answer(seen: Seen) -> ScriptedReply:
        nonlocal most_tasks
        most_tasks = max(most_tasks, len(asyncio.all_tasks()))
        _, session_id, task_id = seen.path.rsplit("/", 2)
        return running(session_id, task_id)

    async with scripted_server() as server:
        server.default = answer
        async with AsyncWebRun(
            "k",
            base_url=server.base_url,
            rate_limit=None,
            mode="poll",
            max_connections=pool,
            poll_interval=3600,
        ) as client:
            baseline = len(asyncio.all_tasks())
            handles = [
                client.tasks.attach(TaskRef(session_id=f"s{i}", task_id=f"t{i}"))
                for i in range(count)
            ]
            await server.wait_for_requests(count)
            polled = {seen.path for seen in server.seen}
            for handle in handles:
                handle.detach()
    assert polled == {f"/task/s{i}/t{i}" for i in range(count)}
    # About 13 more tasks at most: `pool` polls and the scheduler in the client, and two per
    # connection in the server. A task per due poll would be `count` more.
    assert most_tasks - baseline < count // 2, most_tasks - baseline
