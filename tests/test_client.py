"""The client (``_client.py``): its lifecycle, the event loop it runs on, its health check, and
following many handles at once (``as_completed``, ``gather``).

What it looks after in the background is in ``tests/tasks/test_runtime.py``; its options, in
``tests/core/test_config.py``; the account-level errors, in ``tests/core/test_transport.py``."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from webrun_async import (
    AsyncWebRun,
    ClientClosedError,
    ConfigurationError,
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


_RATE_LIMITED_RUN = """
import asyncio, logging, sys
from webrun_async import AsyncWebRun
from webrun_async.emulator import Emulator, FaultPlan

async def main():
    plan = FaultPlan(at={"429": [1]}, storm=1, retry_after=0.05)
    async with Emulator(inline_wait=2, task_duration=0.05, faults=plan) as emu:
        async with AsyncWebRun(emu.api_key, base_url=emu.base_url) as client:
            result = await client.run_task("x")
        assert emu.faults_injected == {"429": 1}, emu.faults_injected
    print(result.message[:9])

if sys.argv[1] == "configured":
    logging.basicConfig(level=logging.WARNING)
asyncio.run(main())
"""


@pytest.mark.parametrize("logging_setup", ["unconfigured", "configured"])
async def test_the_library_is_silent_unless_logging_is_configured(logging_setup: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _RATE_LIMITED_RUN,
        logging_setup,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert out.decode().startswith("Completed")
    if logging_setup == "unconfigured":
        assert err == b""
    else:  # the same run does log a warning once the program asks for records
        assert "WARNING:webrun_async:rate limited by the server" in err.decode()


@pytest.mark.parametrize("url", ["https://connect.webrun.ai/v1", "http://127.0.0.1:8765/v1/"])
def test_a_base_url_ending_in_v1_is_refused_with_the_root(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncWebRun("k", base_url=url)
    assert "ends in /v1" in str(info.value)
    assert repr(url.rstrip("/").removesuffix("/v1")) in str(info.value)


def test_under_trio_the_client_says_it_needs_asyncio() -> None:
    trio = pytest.importorskip("trio")

    async def main() -> None:
        client = AsyncWebRun("k", base_url="http://127.0.0.1:9")
        with pytest.raises(UsageError, match=r"runs on asyncio.*runs under trio"):
            async with client:
                pass
        with pytest.raises(UsageError, match="runs on asyncio"):
            client.tasks.submit("x")
        with pytest.raises(UsageError, match="runs on asyncio"):
            await client.tasks.get("session1", "task1")

    trio.run(main)
