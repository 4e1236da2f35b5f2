"""Ids, timestamps and file removal shared by the simulation and the routes."""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime
from pathlib import Path

__all__ = [
    "iso",
    "new_hex_id",
    "new_short_id",
    "now_ms",
    "remove_files",
]

_ALNUM = string.ascii_lowercase + string.digits


def new_short_id(length: int = 12) -> str:
    """A lowercase alphanumeric id (12 chars for sessions and tasks, 5 for network entries)."""
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def new_hex_id() -> str:
    """A 24-hex id, shaped like the MongoDB ObjectIds of the real API."""
    return secrets.token_hex(12)


def iso(unix: float | None) -> str | None:
    """ISO 8601 UTC with milliseconds and `Z`, or `None` for an unset timestamp."""
    if unix is None:
        return None
    moment = datetime.fromtimestamp(unix, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def now_ms(unix: float) -> int:
    """Unix milliseconds, the unit of the API's file timestamps."""
    return int(unix * 1000)


def remove_files(paths: list[Path]) -> None:
    """Delete files that may already be gone (blocking: call in a thread for many files)."""
    for path in paths:
        path.unlink(missing_ok=True)
