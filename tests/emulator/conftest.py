"""Fixtures: in-process emulators on port 0 and plain aiohttp clients talking to them.

The emulators come from the ``make_emulator`` fixture of ``tests/conftest.py`` (the fast
options of ``tests/support.py``, plus overrides).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest

from tests.emulator.emulator_support import Api, MakeApi
from tests.support import MakeEmulator


@pytest.fixture
async def http(stack: AsyncExitStack) -> aiohttp.ClientSession:
    """A plain aiohttp session (no SDK), closed after the emulators."""
    return await stack.enter_async_context(
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    )


@pytest.fixture
def make_api(make_emulator: MakeEmulator, http: aiohttp.ClientSession) -> MakeApi:
    """Start an emulator with the fast options plus overrides; returns an `Api` bound to it."""

    async def make(**overrides: Any) -> Api:
        return Api(await make_emulator(**overrides), http)

    return make


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    """An `Api` on an emulator with the fast defaults."""
    return await make_api()
