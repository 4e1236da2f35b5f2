"""Shared fixtures: every async test runs on asyncio through the anyio plugin, against an
in-process emulator on port 0 (or a scripted server) reached over real HTTP.

The settings and helpers they are built on are in ``tests/support.py``; those of the
``webrun`` command's tests (an emulator subprocess) in ``tests/cli_support.py``.
``WEBRUN_TEST_UVLOOP=1`` runs the whole suite on uvloop (``pip install -e '.[uvloop]'``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.cli_support import Served, Webrun, serve_emulator, webrun_in
from tests.scripted import ScriptedServer, scripted_server
from tests.support import FAST_CLIENT, FAST_EMULATOR, MakeClient, MakeEmulator
from webrun_async import AsyncWebRun
from webrun_async.emulator import Emulator


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return "asyncio", {"use_uvloop": os.environ.get("WEBRUN_TEST_UVLOOP") == "1"}


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as exit_stack:
        yield exit_stack


@pytest.fixture
def make_emulator(stack: AsyncExitStack) -> MakeEmulator:
    """Start an emulator with the fast options (`FAST_EMULATOR`) plus overrides."""

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


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    """A scripted server (``tests/scripted.py``): it answers what the test scripts."""
    async with scripted_server() as scripted:
        yield scripted


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """``webrun emulator`` in a subprocess, for the tests of the ``webrun`` command."""
    with serve_emulator() as emulator:
        yield emulator


@pytest.fixture
def webrun(served: Served, tmp_path: Path) -> Webrun:
    """Run ``webrun ARGS...`` against ``served`` in ``tmp_path``; the key never shows."""
    return webrun_in(served, tmp_path)
