"""What every test shares: the fast emulator and client settings, the deadline, and waiting
for a condition.

Imported by the tests of the SDK (``tests/``) and by the emulator's own tests
(``tests/emulator/``); the fixtures built on it are in ``tests/conftest.py`` and
``tests/emulator/conftest.py``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from webrun_async import AsyncWebRun, RetryPolicy
from webrun_async.emulator import Emulator

__all__ = [
    "FAST_CLIENT",
    "FAST_EMULATOR",
    "KEY",
    "WAIT",
    "MakeClient",
    "MakeEmulator",
    "Progress",
    "wait_until",
]

KEY = "test-key"
"""The API key of every emulator the fixtures start (unless a test gives another)."""

WAIT = 10.0
"""The deadline for anything a test waits on; normally met in well under a second."""

FAST_EMULATOR: dict[str, Any] = {
    "api_key": KEY,
    "inline_wait": 0.5,  # the service holds run-task for 50 s; a task of 1 s outlasts this
    "task_duration": 0.05,
    "rate_limit": None,
    "account_rate_limit": None,
}
"""Fast but faithful emulator options: tasks of 50 ms, a hold of 0.5 s instead of 50 s, and no
rate limits. A test that needs limits, longer tasks or a longer hold says so."""

FAST_CLIENT: dict[str, Any] = {
    "rate_limit": None,
    "retry": RetryPolicy(max_retries=2, wait=False),
    "poll_interval": 0.02,
}
"""Client options for fast tests: no client-side limiter, retries without waiting, quick polls."""

MakeEmulator = Callable[..., Awaitable[Emulator]]
"""The ``make_emulator`` fixture: start an emulator with `FAST_EMULATOR` plus overrides."""

MakeClient = Callable[..., Awaitable[AsyncWebRun]]
"""The ``make_client`` fixture: a client of an emulator with `FAST_CLIENT` plus overrides."""


class Progress:
    """Records progress callbacks."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int | None]] = []

    def __call__(self, done: int, total: int | None) -> None:
        self.calls.append((done, total))

    def check(self, total: int | None) -> None:
        done = [d for d, _ in self.calls]
        assert done == sorted(done), "progress only moves forward"
        assert self.calls[-1] == (done[-1], total)


def _describe(predicate: Callable[[], object]) -> str:
    try:
        return inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return repr(predicate)


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    within: float = WAIT,
    *,
    what: str | None = None,
) -> None:
    """Wait until ``predicate()`` holds, for state kept by another component (the emulator, a
    server) that has no event to wait on.

    ``predicate`` may be a plain function or return an awaitable (an ``async def``). It is
    checked at once and then every few milliseconds; after ``within`` seconds the test fails,
    naming the condition (``what``, or else the predicate's source). A deadline, not a fixed
    sleep: it returns as soon as the condition holds.
    """
    with anyio.move_on_after(within):  # an async predicate that hangs is cut off too
        while True:
            outcome = predicate()
            if inspect.isawaitable(outcome):
                outcome = await outcome
            if outcome:
                return
            await anyio.sleep(0.005)
    raise AssertionError(f"still not true after {within:g} s: {what or _describe(predicate)}")
