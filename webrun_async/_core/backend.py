"""The SDK runs on asyncio: a clear error, at first use, for code running on anything else."""

from __future__ import annotations

import asyncio
import sys

from webrun_async._core.exceptions import UsageError

__all__ = ["require_asyncio"]


def require_asyncio() -> asyncio.AbstractEventLoop:
    """The running asyncio loop.

    Raises:
        UsageError: No asyncio event loop is running here: the code runs under trio (for
            example ``anyio.run(main, backend="trio")``), or outside async code.
    """
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    under = ""
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_task()
            under = " (this code runs under trio)"
        except RuntimeError:
            pass
    raise UsageError(
        f"webrun_async runs on asyncio, as aiohttp does, and no asyncio event loop is running"
        f"{under}: start your program with asyncio.run(main()) or "
        f"anyio.run(main, backend='asyncio'), and use the client inside it"
    )
