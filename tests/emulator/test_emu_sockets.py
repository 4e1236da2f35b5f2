"""The socket.io push channel, over real socket.io with `socketio.AsyncClient`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import pytest
import socketio  # type: ignore[import-untyped, unused-ignore]

from tests.emulator.emulator_support import Api, MakeApi
from tests.emulator.socket_support import (
    NOT_FOUND_401,
    POLLING,
    SENT,
    WEBSOCKET,
    MakeProbe,
    Probe,
    probe_factory,
)
from tests.support import FAST_EMULATOR, wait_until
from webrun_async.emulator import Emulator

NEW_TASK = {"actionType": "newTask", "newState": "start"}
ALL_TRANSPORTS = [
    pytest.param(WEBSOCKET, id="websocket"),
    pytest.param(POLLING, id="polling"),
    pytest.param(None, id="polling+upgrade"),
]


@pytest.fixture
async def make_probe() -> AsyncIterator[MakeProbe]:
    async with probe_factory() as make:
        yield make


async def _connected(
    api: Api, make_probe: MakeProbe, transports: Sequence[str] | None = WEBSOCKET, **body: Any
) -> tuple[str, Probe]:
    """A new session with one connected probe."""
    session_id = await api.new_session(**body)
    probe = make_probe()
    await probe.connect(api.emu, session_id, transports)
    return session_id, probe


async def _refusal(probe: Probe, emu: Emulator, session_id: str) -> Any:
    with pytest.raises(socketio.exceptions.ConnectionError):
        await probe.connect(emu, session_id)
    return probe.entries("connect_error")[-1]


def _our_pending_tasks() -> list[asyncio.Task[Any]]:
    """Emulator tasks (named `webrun-emulator-*`) and engine.io's ping and monitor tasks."""
    found = []
    for task in asyncio.all_tasks():
        name = task.get_coro().__qualname__  # type: ignore[union-attr]
        if not task.done() and (
            task.get_name().startswith("webrun-emulator-")
            or name in ("AsyncSocket._send_ping", "AsyncServer._service_task")
        ):
            found.append(task)
    return found


# -- the handshake ---------------------------------------------------------------------------


@pytest.mark.parametrize("transports", ALL_TRANSPORTS)
async def test_connect_with_a_live_session(
    api: Api, make_probe: MakeProbe, transports: Sequence[str] | None
) -> None:
    session_id, probe = await _connected(api, make_probe, transports)
    assert probe.client.connected
    assert probe.log == [("connect", None)]
    assert api.emu.open_sockets() == 1
    assert api.emu.open_sockets(session_id) == 1
    assert api.emu.socket_connections == 1


async def test_unknown_and_ended_sessions_are_refused(api: Api, make_probe: MakeProbe) -> None:
    assert await _refusal(make_probe(), api.emu, "nosuchsessio") == {"message": "Session not found"}
    session_id = await api.new_session()
    await api.message(session_id, {"actionType": "state", "newState": "terminate"})
    assert await _refusal(make_probe(), api.emu, session_id) == {"message": "Session not found"}
    probe = make_probe()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await probe.client.connect(api.emu.base_url, auth=None, transports=["websocket"])
    assert probe.entries("connect_error") == [{"message": "Session not found"}]
    assert (api.emu.socket_connections, api.emu.socket_refused, api.emu.open_sockets()) == (0, 3, 0)


async def test_sockets_disabled_refuses_connections_and_polling_still_works(
    make_api: MakeApi, make_probe: MakeProbe
) -> None:
    api = await make_api(sockets=False)
    reply = await api.post("/start/start-session", {"taskDetails": "poll me [[duration=0.1]]"})
    session_id, task_id = reply.body["sessionId"], reply.body["taskId"]
    refusal = await _refusal(make_probe(), api.emu, session_id)
    assert refusal == {"message": "Socket connections are disabled"}
    body = await api.poll_until(session_id, task_id)
    assert body["type"] == "task_completed"
    assert api.emu.socket_refused == 1
    assert api.emu.socket_connections == 0


# -- pushed events ---------------------------------------------------------------------------


@pytest.mark.parametrize("transports", ALL_TRANSPORTS)
async def test_a_rest_task_streams_its_events_in_order(
    api: Api, make_probe: MakeProbe, transports: Sequence[str] | None
) -> None:
    session_id, probe = await _connected(api, make_probe, transports)
    reply = await api.message(session_id, {**NEW_TASK, "taskDetails": "Find it [[events=3]]"})
    assert reply.body["type"] == "task_completed"
    await probe.wait_type("task_completed")
    assert probe.types() == ["response_update", "agent", "action", "agent", "task_completed"]
    update, thought, action, _, completed = probe.messages()
    assert update == {
        "type": "response_update",
        "data": {"message": "Starting task... Browsing the web now."},
    }
    assert isinstance(thought["content"], str)
    assert set(action["data"]) == {"name", "target"}
    # The socket's task_completed is the completed REST body without `success`.
    assert completed == {key: value for key, value in reply.body.items() if key != "success"}
    assert completed["sessionId"] == session_id
    assert completed["taskId"] == reply.body["taskId"]
    assert set(completed["usage"]) == {
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "completion_time",
        "cost",
    }


async def test_every_socket_of_a_session_gets_every_event(api: Api, make_probe: MakeProbe) -> None:
    session_id, first = await _connected(api, make_probe, WEBSOCKET)
    second = make_probe()
    await second.connect(api.emu, session_id, POLLING)
    _, other = await _connected(api, make_probe)
    assert api.emu.open_sockets(session_id) == 2
    await api.message(session_id, {**NEW_TASK, "taskDetails": "one [[events=2]]"})
    await api.message(session_id, {**NEW_TASK, "taskDetails": "two [[fail=ELEMENT_NOT_FOUND]]"})
    for probe in (first, second):
        await probe.wait_type("error")
    assert first.messages() == second.messages()
    assert first.types() == [
        "response_update",
        "agent",
        "action",
        "task_completed",
        "response_update",
        *["agent", "action", "agent", "action"],
        "error",
    ]
    assert other.messages() == []


async def test_guardrail_trigger_and_error_events(api: Api, make_probe: MakeProbe) -> None:
    session_id, probe = await _connected(api, make_probe)
    text = "Log in [[guardrail=I need login credentials]] [[events=0]]"
    reply = await api.message(session_id, {**NEW_TASK, "taskDetails": text})
    task_id = reply.body["taskId"]
    await probe.wait_type("guardrail_trigger")
    assert probe.messages()[-1] == {
        "type": "guardrail_trigger",
        "sessionId": session_id,
        "taskId": task_id,
        "data": {"type": "human_input_needed", "value": "I need login credentials"},
    }
    await api.message(session_id, {"actionType": "guardrail", "newState": "stop"})
    await probe.wait_type("error")
    assert probe.messages()[-1] == {
        "type": "error",
        "sessionId": session_id,
        "taskId": task_id,
        "error": "Task stopped by user",
        "code": "TASK_STOPPED",
    }
    reply = await api.message(
        session_id, {**NEW_TASK, "taskDetails": "[[fail=NAVIGATION_TIMEOUT]]"}
    )
    await probe.wait_type("error", 2)
    failure = probe.messages()[-1]
    assert (failure["code"], failure["taskId"]) == ("NAVIGATION_TIMEOUT", reply.body["taskId"])
    assert failure["error"] == reply.body["error"]


async def test_events_published_with_no_socket_connected_are_not_replayed(
    api: Api, make_probe: MakeProbe
) -> None:
    reply = await api.post("/start/start-session", {"taskDetails": "before [[events=2]]"})
    session_id, early = reply.body["sessionId"], reply.body["taskId"]
    await api.poll_until(session_id, early)
    probe = make_probe()
    await probe.connect(api.emu, session_id)
    await probe.close()
    await wait_until(lambda: api.emu.open_sockets() == 0)
    reply = await api.message(session_id, {**NEW_TASK, "taskDetails": "while away [[events=1]]"})
    assert reply.body["type"] == "task_completed"
    again = make_probe()
    await again.connect(api.emu, session_id)
    reply = await api.message(session_id, {**NEW_TASK, "taskDetails": "after [[events=1]]"})
    await again.wait_type("task_completed")
    assert again.types() == ["response_update", "agent", "task_completed"]
    assert again.messages()[-1]["taskId"] == reply.body["taskId"]
    assert probe.messages() == []


# -- messages emitted by the client ----------------------------------------------------------


async def test_new_task_over_the_socket_acks_at_once_then_streams(
    api: Api, make_probe: MakeProbe
) -> None:
    session_id, probe = await _connected(api, make_probe)
    await probe.emit_with_ack({**NEW_TASK, "taskDetails": "socket task [[events=1]]"})
    await probe.wait_type("task_completed")
    assert probe.names() == ["connect", "ack", "response_update", "agent", "task_completed"]
    ack = probe.entries("ack")[0]
    task_id = ack["taskId"]
    assert ack == {
        "success": True,
        "sessionId": session_id,
        "taskId": task_id,
        "status": "pending",
        "pending": True,
        "pollUrl": f"{api.emu.base_url}/task/{session_id}/{task_id}",
        "message": "Task still running. Poll GET /task/:sessionId/:taskId for result.",
    }
    assert probe.messages()[-1]["taskId"] == task_id
    assert (await api.poll(session_id, task_id))["type"] == "task_completed"
    assert api.emu.request_counts["SOCKET message"] == 1


async def test_state_messages_over_the_socket(api: Api, make_probe: MakeProbe) -> None:
    session_id, probe = await _connected(api, make_probe, POLLING)
    ack = await probe.call({**NEW_TASK, "taskDetails": "long [[duration=30]] [[events=0]]"})
    task = api.emu.state.tasks[ack["taskId"]]
    assert await probe.call({"actionType": "state", "newState": "pause"}) == SENT
    assert (task.paused, task.clock.running) == (True, False)
    assert await probe.call({"actionType": "state", "newState": "resume"}) == SENT
    assert (task.paused, task.clock.running) == (False, True)
    assert await probe.call({"actionType": "state", "newState": "stop"}) == SENT
    await probe.wait_type("error")
    assert probe.messages()[-1]["code"] == "TASK_STOPPED"
    assert api.emu.state.live[session_id].current is None


async def test_interactions_over_the_socket(api: Api, make_probe: MakeProbe) -> None:
    session_id, probe = await _connected(api, make_probe)
    ack = await probe.call({**NEW_TASK, "taskDetails": "long [[duration=30]] [[events=0]]"})
    task = api.emu.state.tasks[ack["taskId"]]
    actions: list[dict[str, Any]] = [
        {"type": "takeOverControl"},
        {"type": "CLICK", "x": 500, "y": 300},
        {"type": "TYPE", "text": "Hello world", "humanLike": True},
        {"type": "KEY_PRESS", "key": "Enter"},
    ]
    for action in actions:
        assert await probe.call({"actionType": "interaction", "action": action}) == SENT
    assert (task.paused, task.clock.running) == (True, False)
    assert await probe.call({"actionType": "interaction", "action": {"type": "releaseControl"}})
    assert (task.paused, task.clock.running) == (False, True)
    assert api.emu.state.live[session_id].interactions == [*actions, {"type": "releaseControl"}]


async def test_guardrail_reply_over_the_socket(api: Api, make_probe: MakeProbe) -> None:
    _, probe = await _connected(api, make_probe)
    ack = await probe.call({**NEW_TASK, "taskDetails": "[[guardrail=Password?]] [[events=0]]"})
    await probe.wait_type("guardrail_trigger")
    reply = {"actionType": "guardrail", "prompt": "Password: hunter2", "newState": "resume"}
    assert await probe.call(reply) == SENT
    await probe.wait_type("task_completed")
    task = api.emu.state.tasks[ack["taskId"]]
    assert task.guardrail_replies == ["Password: hunter2"]
    assert probe.types() == ["response_update", "guardrail_trigger", "task_completed"]


@pytest.mark.parametrize(
    ("message", "status_message"),
    [
        ({"actionType": "dance"}, "Invalid parameter 'actionType'"),
        ({"actionType": "state", "newState": "nap"}, "Invalid parameter 'newState'"),
        ({**NEW_TASK, "taskDetails": "   "}, "taskDetails is required"),
        ("not an object", "Invalid parameter 'message': must be an object"),
    ],
)
async def test_bad_messages_ack_the_rest_error_body(
    api: Api, make_probe: MakeProbe, message: Any, status_message: str
) -> None:
    _, probe = await _connected(api, make_probe)
    ack = await probe.call(message)
    assert ack["success"] is False
    assert ack["message"].startswith(status_message)
    assert ack["code"] in ("INVALID_PARAMETER", "MISSING_REQUIRED_FIELD")


async def test_messages_without_an_ack_get_no_reply(api: Api, make_probe: MakeProbe) -> None:
    _, probe = await _connected(api, make_probe)
    await probe.client.emit("message", {"actionType": "dance"})
    await probe.client.emit("message", {"actionType": "state", "newState": "pause"})
    # An acknowledged message sent after them: once its answer is in, so would any reply be.
    assert await probe.call({"actionType": "state", "newState": "resume"}) == SENT
    assert probe.log == [("connect", None)]
    assert api.emu.request_counts["SOCKET message"] == 3


async def test_a_message_for_an_ended_session_acks_401(api: Api, make_probe: MakeProbe) -> None:
    # Over polling the two messages travel in one request and are handled back to back,
    # before the server gets to disconnect the socket of the terminated session.
    _, probe = await _connected(api, make_probe, POLLING)
    await probe.emit_with_ack({"actionType": "state", "newState": "terminate"})
    await probe.emit_with_ack({"actionType": "state", "newState": "pause"})
    await probe.wait_entry("ack", 2)
    assert probe.entries("ack") == [SENT, NOT_FOUND_401]


# -- the end of a session --------------------------------------------------------------------


@pytest.mark.parametrize("transports", [WEBSOCKET, POLLING], ids=["websocket", "polling"])
@pytest.mark.parametrize("reason", ["terminated", "terminateOnCompletion", "expired"])
async def test_end_session_then_the_server_closes_the_sockets(
    make_api: MakeApi, make_probe: MakeProbe, reason: str, transports: Sequence[str]
) -> None:
    api = await make_api(session_timeout=0.5 if reason == "expired" else 60)
    session_id, probe = await _connected(api, make_probe, transports)
    second = make_probe(reconnection=True)
    await second.connect(api.emu, session_id, transports)
    if reason == "terminated":
        assert await probe.call({"actionType": "state", "newState": "terminate"}) == SENT
    elif reason == "terminateOnCompletion":
        task = {**NEW_TASK, "taskDetails": "once", "terminateOnCompletion": True}
        assert (await probe.call(task))["status"] == "pending"
    for each in (probe, second):
        await each.wait_entry("disconnect")
    ended = {"type": "end_session", "reason": reason, "message": "Session ended"}
    assert probe.entries("end_session") == [ended]
    assert second.entries("end_session") == [ended]
    assert probe.names()[-2:] == ["end_session", "disconnect"]
    assert probe.entries("disconnect") == ["server disconnect"]
    assert "end_session" not in probe.types()
    await wait_until(lambda: api.emu.open_sockets() == 0)
    assert session_id not in api.emu.live_sessions()
    # A server disconnect is final: the reconnecting client does not come back.
    assert second.entries("connect") == [None]
    assert api.emu.socket_connections == 2


# -- the browser instance --------------------------------------------------------------------


async def test_instance_disconnects_and_reconnects(api: Api, make_probe: MakeProbe) -> None:
    session_id, probe = await _connected(api, make_probe)
    ack = await probe.call({**NEW_TASK, "taskDetails": "[[duration=0.3]] [[events=0]]"})
    task = api.emu.state.tasks[ack["taskId"]]
    await probe.wait_type("response_update")
    started = time.monotonic()
    await api.emu.disconnect_instance(session_id, reconnect_after=0.2)
    assert not task.clock.running
    assert api.emu.state.live[session_id].orphaned
    await probe.wait_entry("instance:reconnected")
    assert task.clock.running or task.finished
    await probe.wait_type("task_completed")
    assert time.monotonic() - started >= 0.2
    assert probe.entries("instance:disconnected") == [
        {
            "type": "instance:disconnected",
            "message": "Instance connection lost. Attempting reconnection...",
            "gracePeriod": 300000,
        }
    ]
    assert probe.entries("instance:reconnected") == [
        {"type": "instance:reconnected", "message": "Instance connection restored"}
    ]
    assert probe.names() == [
        "connect",
        "response_update",
        "instance:disconnected",
        "instance:reconnected",
        "task_completed",
    ]
    assert (await api.poll(session_id, task.task_id))["type"] == "task_completed"


@pytest.mark.parametrize("reconnect_after", [None, 5.0])
async def test_instance_lost_after_the_grace_period(
    make_api: MakeApi, make_probe: MakeProbe, reconnect_after: float | None
) -> None:
    # A short inactivity timeout too: an orphaned session waits for its grace period instead.
    api = await make_api(instance_grace=0.3, session_timeout=0.05)
    session_id, probe = await _connected(api, make_probe, taskDetails="[[duration=30]]")
    await api.emu.disconnect_instance(session_id, reconnect_after=reconnect_after)
    await probe.wait_entry("disconnect")
    assert probe.entries("instance:disconnected")[0]["gracePeriod"] == 300
    assert probe.entries("end_session") == [
        {"type": "end_session", "reason": "instance_lost", "message": "Session ended"}
    ]
    assert probe.entries("instance:reconnected") == []
    assert api.emu.state.sessions[session_id].end_reason == "instance_lost"


async def test_instance_lost_terminates_the_running_task(
    make_api: MakeApi, make_probe: MakeProbe
) -> None:
    api = await make_api(instance_grace=0.05)
    session_id, probe = await _connected(api, make_probe)
    ack = await probe.call({**NEW_TASK, "taskDetails": "[[duration=30]]"})
    await api.emu.disconnect_instance(session_id)
    await probe.wait_entry("end_session")
    body = await api.poll(session_id, ack["taskId"])
    assert (body["status"], body["error"]) == ("terminated", "Session terminated")


async def test_disconnect_instance_misuse(api: Api) -> None:
    session_id = await api.new_session()
    with pytest.raises(KeyError):
        await api.emu.disconnect_instance("nosuchsessio")
    with pytest.raises(ValueError, match="reconnect_after"):
        await api.emu.disconnect_instance(session_id, reconnect_after=-1)
    await api.emu.disconnect_instance(session_id, reconnect_after=30)
    with pytest.raises(RuntimeError, match="already disconnected"):
        await api.emu.disconnect_instance(session_id)


# -- abrupt drops ----------------------------------------------------------------------------


@pytest.mark.parametrize("transports", [WEBSOCKET, POLLING], ids=["websocket", "polling"])
async def test_a_dropped_client_reconnects_by_itself(
    api: Api, make_probe: MakeProbe, transports: Sequence[str]
) -> None:
    session_id = await api.new_session()
    probe = make_probe(reconnection=True)
    await probe.connect(api.emu, session_id, transports)
    assert await api.emu.drop_sockets(session_id) == 1
    await probe.wait_entry("connect", 2)
    # A lost transport, not a socket.io disconnect: that is why the client came back.
    assert probe.names() == ["connect", "disconnect", "connect"]
    assert probe.entries("disconnect") == ["transport error"]
    assert api.emu.open_sockets(session_id) == 1
    assert api.emu.socket_connections == 2
    reply = await api.message(session_id, {**NEW_TASK, "taskDetails": "after the drop"})
    await probe.wait_type("task_completed")
    assert probe.messages()[-1]["taskId"] == reply.body["taskId"]


async def test_drop_with_refused_reconnection(api: Api, make_probe: MakeProbe) -> None:
    session_id = await api.new_session()
    _, bystander = await _connected(api, make_probe)
    probe = make_probe(reconnection=True)
    await probe.connect(api.emu, session_id)
    assert await api.emu.drop_sockets(session_id, refuse_reconnect=True) == 1
    await probe.wait_entry("connect_error", 2)
    refusal = {"message": "Socket connections for this session are refused"}
    assert probe.entries("connect_error")[:2] == [refusal, refusal]
    assert api.emu.open_sockets(session_id) == 0
    assert api.emu.socket_refused >= 2
    assert bystander.client.connected
    api.emu.allow_sockets(session_id)
    await probe.wait_entry("connect", 2)
    assert api.emu.open_sockets(session_id) == 1
    assert await api.emu.drop_sockets(session_id) == 1
    await probe.wait_entry("connect", 3)


async def test_drop_sockets_of_an_unknown_or_unconnected_session(api: Api) -> None:
    with pytest.raises(KeyError):
        await api.emu.drop_sockets("nosuchsessio")
    assert await api.emu.drop_sockets(await api.new_session()) == 0


# -- inspection and shutdown -----------------------------------------------------------------


async def test_socket_counts_in_the_state_endpoint(api: Api, make_probe: MakeProbe) -> None:
    session_id, probe = await _connected(api, make_probe)
    await _connected(api, make_probe, POLLING)
    await _refusal(make_probe(), api.emu, "nosuchsessio")
    await probe.call({"actionType": "state", "newState": "pause"})
    await probe.client.emit("message", {"actionType": "state", "newState": "resume"})
    await wait_until(lambda: api.emu.request_counts.get("SOCKET message") == 2)
    await probe.close()
    await wait_until(lambda: api.emu.open_sockets() == 1)
    body = (await api.get("/_emulator/state")).body
    assert (body["openSockets"], body["socketConnections"], body["socketRefused"]) == (1, 2, 1)
    assert body["requestCounts"] == {
        "POST /start/start-session": 2,
        "SOCKET message": 2,
        "GET /_emulator/state": 1,
    }
    assert api.emu.open_sockets(session_id) == 0


async def test_aclose_with_open_sockets(make_probe: MakeProbe) -> None:
    emu = Emulator(**FAST_EMULATOR)
    await emu.start()
    probes = []
    async with aiohttp.ClientSession() as http:
        api = Api(emu, http)
        for transports in (WEBSOCKET, POLLING):
            session_id = await api.new_session(taskDetails="[[duration=30]]")
            probe = make_probe(reconnection=True)
            await probe.connect(emu, session_id, transports)
            probes.append(probe)
    started = time.monotonic()
    await emu.aclose()
    assert time.monotonic() - started < 1.5
    for probe in probes:
        await probe.wait_entry("disconnect")
        assert probe.entries("disconnect") == ["server disconnect"]
    assert emu.open_sockets() == 0
    assert _our_pending_tasks() == []
