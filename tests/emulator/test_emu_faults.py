"""Fault injection: the emulator misbehaves exactly as its `FaultPlan` says."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.emulator.emulator_support import Api, MakeApi
from tests.emulator.socket_support import MakeProbe, probe_factory
from webrun_async.emulator import ConfigError, FaultPlan
from webrun_async.emulator.cli import config_from_args
from webrun_async.emulator.faults import Faults

NEW_TASK = {"actionType": "newTask", "newState": "start"}
HEALTH = "/start/health"


@pytest.fixture
async def make_probe() -> AsyncIterator[MakeProbe]:
    async with probe_factory() as make:
        yield make


async def test_scheduled_errors_hit_the_given_requests_and_render_like_real_ones(
    make_api: MakeApi,
) -> None:
    api = await make_api(faults=FaultPlan(at={"503": [1], "502": [3]}))
    statuses = [(await api.get(HEALTH)).status for _ in range(4)]
    assert statuses == [503, 200, 502, 200]
    reply = await api.call("GET", "/v1/models")  # the 5th request: no fault
    assert reply.status == 200
    api.emu.faults = FaultPlan(at={"500": [1]})
    failed = await api.call("GET", "/v1/models")
    assert failed.status == 500
    assert failed.body["error"]["message"] == "Internal server error"  # the OpenAI shape there
    assert api.emu.faults_injected == {"503": 1, "502": 1, "500": 1}


async def test_a_429_storm_answers_several_in_a_row_with_retry_after(make_api: MakeApi) -> None:
    api = await make_api(faults=FaultPlan(at={"429": [2]}, storm=3, retry_after=2))
    replies = [await api.get(HEALTH) for _ in range(6)]
    assert [r.status for r in replies] == [200, 429, 429, 429, 200, 200]
    assert replies[1].headers["Retry-After"] == "2"
    assert replies[1].body["code"] == "RATE_LIMIT_EXCEEDED"


async def test_routes_limit_the_faults_and_the_emulator_routes_are_never_hit(
    make_api: MakeApi,
) -> None:
    api = await make_api(faults=FaultPlan(rates={"500": 1.0}, routes=("GET /v1/models",)))
    assert (await api.get(HEALTH)).status == 200
    assert (await api.get("/_emulator/state")).status == 200
    assert (await api.get("/v1/models")).status == 500
    api.emu.faults = FaultPlan(rates={"500": 1.0})
    state = await api.get("/_emulator/state")
    assert state.status == 200
    assert state.body["faultsInjected"] == {"500": 1}


async def test_reset_before_drops_the_connection_and_does_no_work(make_api: MakeApi) -> None:
    api = await make_api(faults=FaultPlan(at={"reset_before": [1]}))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.post("/start/start-session")
    assert api.emu.sessions_created == 0


async def test_reset_after_does_the_work_and_loses_the_answer(make_api: MakeApi) -> None:
    api = await make_api(faults=FaultPlan(at={"reset_after": [1]}))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.post("/start/start-session")
    assert api.emu.sessions_created == 1
    assert len(api.emu.live_sessions()) == 1


async def test_malformed_and_oversized_answers(make_api: MakeApi) -> None:
    plan = FaultPlan(at={"malformed": [1], "oversized": [2]}, oversized_bytes=100_000)
    api = await make_api(faults=plan)
    async with api.http.post(api.emu.base_url + "/start/start-session", json={}) as response:
        assert response.status == 200
        raw = await response.read()
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    async with api.http.get(api.emu.base_url + HEALTH) as response:
        assert response.status == 200
        assert len(await response.read()) == 100_000
    assert api.emu.sessions_created == 0  # neither request was handled


async def test_a_slow_answer_waits_before_the_request_is_handled(make_api: MakeApi) -> None:
    api = await make_api(faults=FaultPlan(at={"slow": [1]}, slow=0.3))
    started = time.monotonic()
    assert (await api.get(HEALTH)).status == 200
    assert time.monotonic() - started >= 0.3


async def test_duplicated_events_arrive_twice_and_end_session_once(
    api: Api, make_probe: MakeProbe
) -> None:
    session_id = await api.new_session()
    probe = make_probe()
    await probe.connect(api.emu, session_id)
    api.emu.faults = FaultPlan(rates={"duplicate": 1.0})
    await api.message(session_id, {**NEW_TASK, "taskDetails": "twice [[events=1]]"})
    await probe.wait_type("task_completed", 2)
    assert probe.types() == [
        "response_update",
        "response_update",
        "agent",
        "agent",
        "task_completed",
        "task_completed",
    ]
    await api.message(session_id, {"actionType": "state", "newState": "terminate"})
    await probe.wait_entry("disconnect")
    assert len(probe.entries("end_session")) == 1


async def test_a_reordered_event_is_overtaken_by_the_next(api: Api, make_probe: MakeProbe) -> None:
    session_id = await api.new_session()
    probe = make_probe()
    await probe.connect(api.emu, session_id)
    api.emu.faults = FaultPlan(at={"reorder": [1]})  # the first event: response_update
    await api.message(session_id, {**NEW_TASK, "taskDetails": "swap [[events=1]]"})
    await probe.wait_type("task_completed")
    assert probe.types() == ["agent", "response_update", "task_completed"]


async def test_a_dropped_socket_loses_that_event_and_the_client_may_reconnect(
    api: Api, make_probe: MakeProbe
) -> None:
    session_id = await api.new_session()
    probe = make_probe(reconnection=True)
    await probe.connect(api.emu, session_id)
    api.emu.faults = FaultPlan(at={"drop_socket": [1]})
    await api.message(session_id, {**NEW_TASK, "taskDetails": "cut [[events=1]] [[duration=1]]"})
    await probe.wait_entry("connect", 2)  # reconnected after the cut
    assert "response_update" not in probe.types()  # the event cut off was lost
    assert api.emu.faults_injected == {"drop_socket": 1}


async def test_instance_faults_publish_the_documented_events(
    make_api: MakeApi, make_probe: MakeProbe
) -> None:
    api = await make_api(faults=FaultPlan(at={"instance_reconnect": [1]}, instance_gap=0.1))
    session_id = await api.new_session()
    probe = make_probe()
    await probe.connect(api.emu, session_id)
    await api.message(session_id, {**NEW_TASK, "taskDetails": "wobbly [[duration=0.5]]"})
    await probe.wait_type("task_completed")
    names = probe.names()
    assert names.index("instance:disconnected") < names.index("instance:reconnected")


def test_seeded_plans_repeat_exactly() -> None:
    plan = FaultPlan(rates={"500": 0.3, "reset_after": 0.2, "duplicate": 0.5}, seed=42)
    first, second = Faults(plan), Faults(plan)
    draws = [(first.draw("http", "x"), first.draw("event")) for _ in range(200)]
    assert draws == [(second.draw("http", "x"), second.draw("event")) for _ in range(200)]
    assert {d for d, _ in draws} == {None, "500", "reset_after"}
    assert 0.25 < sum(d == "500" for d, _ in draws) / 200 < 0.35 + 0.1


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"rates": {"teapot": 0.5}}, "faults.rates"),
        ({"rates": {"500": 1.5}}, "faults.rates"),
        ({"at": {"500": [0]}}, "faults.at"),
        ({"storm": 0}, "faults.storm"),
        ({"slow": -1}, "faults.slow"),
    ],
)
def test_invalid_plans_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        FaultPlan(**options)
    assert caught.value.field == field


def test_cli_flags_build_the_plan() -> None:
    config = config_from_args(
        [
            "--fault", "503=0.25",
            "--fault", "duplicate=0.5",
            "--fault-at", "500@2",
            "--fault-at", "500@4",
            "--fault-route", "GET /start/health",
            "--fault-seed", "3",
            "--fault-storm", "5",
            "--fault-retry-after", "0.5",
            "--fault-slow", "70",
            "--fault-oversized-bytes", "1000",
            "--fault-instance-gap", "2",
        ]
    )  # fmt: skip
    assert config.faults == FaultPlan(
        rates={"503": 0.25, "duplicate": 0.5},
        at={"500": [2, 4]},
        routes=("GET /start/health",),
        seed=3,
        storm=5,
        retry_after=0.5,
        slow=70,
        oversized_bytes=1000,
        instance_gap=2,
    )
    assert config_from_args([]).faults is None


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--fault", "teapot=0.1"], "--fault"),
        (["--fault", "503"], "--fault"),
        (["--fault-at", "503@0"], "--fault-at"),
        (["--fault-storm", "0"], "--fault-storm"),
    ],
)
def test_bad_fault_flags_exit_naming_the_flag(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        config_from_args(argv)
    assert f"argument {flag}" in capsys.readouterr().err
