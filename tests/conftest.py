"""Shared fixtures: every async test runs on asyncio through the anyio plugin, against an
in-process emulator on port 0 reached over real HTTP.

``WEBRUN_TEST_UVLOOP=1`` runs the whole suite on uvloop (``pip install -e '.[uvloop]'``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest

from webrun_async import AsyncWebRun, RetryPolicy
from webrun_async.emulator import Emulator

# Fast but faithful: tasks of 50 ms, a hold of 0.5 s instead of 50 s, no rate limits unless a
# test asks for them.
FAST_EMULATOR: dict[str, Any] = {
    "inline_wait": 0.5,
    "task_duration": 0.05,
    "rate_limit": None,
    "account_rate_limit": None,
}
FAST_CLIENT: dict[str, Any] = {
    "rate_limit": None,
    "retry": RetryPolicy(max_retries=2, wait=False),
    "poll_interval": 0.02,
}


async def wait_until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until ``predicate()`` holds, for state kept by another component (the emulator).

    It checks at a short interval and fails after ``within`` seconds: a deadline, not a fixed
    sleep.
    """
    with anyio.fail_after(within):
        while not predicate():  # noqa: ASYNC110 - the state has no event to wait on
            await anyio.sleep(0.01)


MakeEmulator = Callable[..., Awaitable[Emulator]]
MakeClient = Callable[..., Awaitable[AsyncWebRun]]


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return "asyncio", {"use_uvloop": os.environ.get("WEBRUN_TEST_UVLOOP") == "1"}


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as exit_stack:
        yield exit_stack


@pytest.fixture
def make_emulator(stack: AsyncExitStack) -> MakeEmulator:
    """Start an emulator with the fast options plus overrides."""

    async def make(**overrides: Any) -> Emulator:
        return await stack.enter_async_context(Emulator(**{**FAST_EMULATOR, **overrides}))

    return make


@pytest.fixture
async def emulator(make_emulator: MakeEmulator) -> Emulator:
    return await make_emulator()


@pytest.fixture
def make_client(stack: AsyncExitStack, emulator: Emulator) -> MakeClient:
    """A client of the `emulator` fixture (or of another one) with fast options plus overrides."""

    async def make(emu: Emulator | None = None, **overrides: Any) -> AsyncWebRun:
        target = emu or emulator
        options = {**FAST_CLIENT, **overrides}
        options.setdefault("base_url", target.base_url)
        api_key = options.pop("api_key", target.api_key)
        return await stack.enter_async_context(AsyncWebRun(api_key, **options))

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> AsyncWebRun:
    return await make_client()
