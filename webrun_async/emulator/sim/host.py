"""What the task script and the instance loss need of the engine, as a Protocol.

The engine starts scripts and loses instances, and both call back into it; typing them against
this Protocol rather than the engine class keeps the engine module the only one that knows both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

from webrun_async.emulator.config import EmulatorConfig

from .session import EmulatedSession, EmulatedTaskStatus, Task
from .store import Store

__all__ = ["SimHost"]


class SimHost(Protocol):
    """The engine, as the script and the instance module see it."""

    @property
    def config(self) -> EmulatorConfig:
        """The emulator's configuration."""
        ...

    @property
    def store(self) -> Store:
        """Every session, task and file."""
        ...

    @property
    def base_url(self) -> str:
        """`http://host:port` of the running emulator, for the URLs in answers."""
        ...

    def now(self) -> float:
        """The clock of every duration."""
        ...

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run `work` in the background until it ends or the emulator closes."""
        ...

    def conclude(
        self,
        task: Task,
        status: EmulatedTaskStatus,
        error: tuple[str, str] | None = None,
        ran_for: float | None = None,
    ) -> None:
        """Give `task` its final status (billed for `ran_for` seconds when given)."""
        ...

    def advance(self, task: Task) -> None:
        """Go on after `task` finished: next queued task, or the session's end."""
        ...

    def end_session(self, session: EmulatedSession, reason: str) -> None:
        """End `session` for `reason`."""
        ...
