"""The client (``_client.py``): its lifecycle, the event loop it runs on, its health check, and
following many handles at once (``as_completed``, ``gather``).

What it looks after in the background is in ``tests/tasks/test_runtime.py``; its options, in
``tests/core/test_config.py``; the account-level errors, in ``tests/core/test_transport.py``."""

from __future__ import annotations

import asyncio
import os

import pytest

from webrun_async import (
    AsyncWebRun,
    ClientClosedError,
    TaskFailed,
    TaskResult,
    UsageError,
)
from webrun_async.emulator import Emulator


async def test_runs_on_the_chosen_event_loop(client: AsyncWebRun) -> None:
    # WEBRUN_TEST_UVLOOP=1 runs the suite on uvloop: make sure it really does.
    loop_module = type(asyncio.get_running_loop()).__module__
    assert loop_module.startswith("uvloop") == (os.environ.get("WEBRUN_TEST_UVLOOP") == "1")
    assert (await client.health()).status == "healthy"


async def test_lifecycle(emulator: Emulator) -> None:
    client = AsyncWebRun(emulator.api_key, base_url=emulator.base_url, rate_limit=None)
    async with client:
        with pytest.raises(UsageError):
            async with client:
                pass
        await client.health()
    await client.aclose()  # idempotent
    with pytest.raises(ClientClosedError):
        await client.health()
    with pytest.raises(ClientClosedError):
        async with client:
            pass
    assert "closed" in repr(client)


async def test_health(client: AsyncWebRun) -> None:
    health = await client.health()
    assert health.status == "healthy"
    assert health.instances_available is True
    assert health.timestamp is not None


async def test_used_without_async_with(emulator: Emulator) -> None:
    client = AsyncWebRun(emulator.api_key, base_url=emulator.base_url, rate_limit=None)
    try:
        assert (await client.health()).status == "healthy"
    finally:
        await client.aclose()


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
