"""The server's limits on what a client sends: sizes, JSON nesting and read timeouts.

Documented in the README next to the other emulator limits:

* JSON bodies: at most `JSON_BODY_LIMIT` bytes (413 `PAYLOAD_TOO_LARGE`) and `MAX_JSON_DEPTH`
  levels of nested arrays and objects (400 `INVALID_PARAMETER`).
* Uploads: `EmulatorConfig.max_upload_bytes` per file (400 `FILE_TOO_LARGE`).
* Request headers must arrive within `EmulatorConfig.header_timeout` seconds of the request's
  first byte (the connection is closed otherwise), and a body may pause at most
  `EmulatorConfig.body_timeout` seconds between two reads (408 `REQUEST_TIMEOUT`, then the
  connection is closed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from webrun_async.emulator.errors import ApiError

__all__ = [
    "JSON_BODY_LIMIT",
    "MAX_JSON_DEPTH",
    "check_json_depth",
    "read_within",
    "too_deep",
]

JSON_BODY_LIMIT = 16 * 1024 * 1024
MAX_JSON_DEPTH = 100

_T = TypeVar("_T")


def too_deep() -> ApiError:
    """400 for a JSON body nested deeper than `MAX_JSON_DEPTH`."""
    return ApiError(
        400,
        f"JSON body is nested deeper than {MAX_JSON_DEPTH} levels",
        "INVALID_PARAMETER",
    )


def check_json_depth(raw: bytes, value: Any) -> None:
    """Raise `too_deep()` when the decoded `value` nests deeper than `MAX_JSON_DEPTH`.

    A body with fewer opening brackets than the limit cannot be too deep, so the walk (over the
    containers only, without recursion) runs only for bodies that could be.
    """
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise too_deep()
        children = container.values() if isinstance(container, dict) else container
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def body_timed_out() -> ApiError:
    """408: the client stopped sending its body; the connection is closed after the answer."""
    return ApiError(408, "Request body not received in time", "REQUEST_TIMEOUT")


async def read_within(seconds: float, read: Awaitable[_T]) -> _T:
    """Await one read of a request body, or raise 408 when nothing comes for `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            return await read
    except TimeoutError:
        raise body_timed_out() from None
