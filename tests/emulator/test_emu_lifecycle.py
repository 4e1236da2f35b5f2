"""Starting, closing, configuration, inspection and load."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from tests.emulator.emulator_support import Api, MakeApi
from tests.support import KEY, wait_until
from webrun_async.emulator import ConfigError, Emulator, EmulatorConfig


def _our_pending_tasks() -> list[asyncio.Task[object]]:
    names = ("run_script", "_sweep_forever")
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done() and any(name in task.get_coro().__qualname__ for name in names)  # type: ignore[union-attr]
    ]


async def test_start_and_close_without_context_manager() -> None:
    emu = Emulator(api_key="k")
    with pytest.raises(RuntimeError):
        _ = emu.base_url
    await emu.start()
    await emu.start()  # idempotent
    assert emu.base_url.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession() as http, http.get(emu.base_url + "/start/health") as reply:
        assert reply.status == 200
    await emu.aclose()
    await emu.aclose()  # idempotent
    with pytest.raises(RuntimeError):
        await emu.start()
    assert _our_pending_tasks() == []


async def test_config_object_and_overrides() -> None:
    config = EmulatorConfig(api_key="from-config", balance=5.0, instances=3)
    async with Emulator(config=config, instances=1) as emu:
        assert emu.config.api_key == "from-config"
        assert emu.config.instances == 1
        assert emu.account.balance == 5.0
        assert emu.api_key == "from-config"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"inline_wait": -1}, "inline_wait"),
        ({"port": 70000}, "port"),
        ({"rate_limit": (0, 60.0)}, "rate_limit"),
        ({"account_rate_limit": (5, 0.0)}, "account_rate_limit"),
        ({"instances": -1}, "instances"),
        ({"session_timeout": 0}, "session_timeout"),
        ({"dialect": "modern"}, "dialect"),
        ({"max_upload_bytes": 0}, "max_upload_bytes"),
        ({"api_key": ""}, "api_key"),
        ({"instance_grace": -1}, "instance_grace"),
    ],
)
def test_invalid_options(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Emulator(**options)
    assert caught.value.field == field


def test_unknown_option() -> None:
    with pytest.raises(TypeError):
        Emulator(colour="blue")


async def test_close_answers_holds_promptly(make_api: MakeApi) -> None:
    api = await make_api(inline_wait=60)
    request = asyncio.create_task(api.post("/start/run-task", {"taskDetails": "[[duration=60]]"}))
    await wait_until(lambda: bool(api.emu.state.tasks))
    started = time.monotonic()
    await api.emu.aclose()
    reply = await request
    assert time.monotonic() - started < 2.0
    assert reply.status == 200
    assert reply.body["status"] == "pending"
    assert _our_pending_tasks() == []


async def test_state_endpoint_and_request_counts(api: Api) -> None:
    await api.post("/start/run-task", {"taskDetails": "x"})
    await api.post("/start/run-task", {"taskDetails": "y"})
    sid = await api.new_session()
    refused = await api.get("/_emulator/state", key=None)
    assert (refused.status, refused.body["code"]) == (401, "UNAUTHORIZED")
    assert (await api.get("/_emulator/state", key="wr_wrong")).status == 401
    reply = await api.get("/_emulator/state")
    assert reply.body == {
        "liveSessions": [sid],
        "sessionsCreated": 3,
        "tasksCreated": 2,
        "instancesInUse": 1,
        "balance": api.emu.account.balance,
        "requestCounts": {
            "POST /start/run-task": 2,
            "POST /start/start-session": 1,
            "GET /_emulator/state": 3,
        },
        "openSockets": 0,
        "socketConnections": 0,
        "socketRefused": 0,
        "faultsInjected": {},
    }
    task = next(iter(api.emu.state.tasks))
    await api.get(f"/task/{sid}/{task}")
    assert api.emu.request_counts["GET /task/{sessionId}/{taskId}"] == 1


async def test_a_thousand_concurrent_holds(make_api: MakeApi) -> None:
    api = await make_api(inline_wait=30, task_duration=0.3)
    connector = aiohttp.TCPConnector(limit=0)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:

        async def one(index: int) -> str:
            async with http.post(
                api.emu.base_url + "/start/run-task", json={"taskDetails": f"task {index}"}
            ) as response:
                body = await response.json()
                return str(body["type"])

        results = await asyncio.gather(*(one(i) for i in range(1000)))
    assert results == ["task_completed"] * 1000
    assert len(api.emu.state.sessions) == 1000
    assert api.emu.live_sessions() == []
