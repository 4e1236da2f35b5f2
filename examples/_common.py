"""What the examples share: a client of the WebRun service, or of the built-in emulator."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from webrun_async import AsyncWebRun
from webrun_async.emulator import Emulator


@asynccontextmanager
async def open_client(**options: Any) -> AsyncIterator[tuple[AsyncWebRun, bool]]:
    """Yield ``(client, emulated)``: the service when ``WEBRUN_API_KEY`` is set, else an
    emulator started here (no account needed), saying which one it is."""
    if os.environ.get("WEBRUN_API_KEY"):
        async with AsyncWebRun(**options) as client:
            print(f"Using the WebRun service at {client.base_url}")
            yield client, False
        return
    # The service allows 10 task starts a minute and the client keeps to that by default; the
    # examples' emulator lifts the limit so that they finish in seconds.
    async with Emulator(rate_limit=None) as emulator:
        print(
            "WEBRUN_API_KEY is not set: running against the built-in emulator at "
            f"{emulator.base_url} (no account needed)."
        )
        options = {"rate_limit": None, **options}
        async with AsyncWebRun(emulator.api_key, base_url=emulator.base_url, **options) as client:
            yield client, True
