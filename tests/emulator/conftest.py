"""Fixtures: in-process emulators on port 0 and plain aiohttp clients talking to them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from emulator_support import FAST, Api, MakeApi

from webrun_async.emulator import Emulator


@pytest.fixture
async def make_api() -> AsyncIterator[MakeApi]:
    """Start an emulator with `FAST` options plus overrides; returns an `Api` bound to it."""
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        )

        async def make(**overrides: Any) -> Api:
            emu = await stack.enter_async_context(Emulator(**{**FAST, **overrides}))
            return Api(emu, http)

        yield make


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    """An `Api` on an emulator with the fast defaults."""
    return await make_api()
