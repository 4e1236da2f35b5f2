"""The options the task machinery works by, and how handles follow their tasks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from webrun_async._tasks.tracker import GuardrailCallback

__all__ = ["FollowMode", "RuntimeOptions"]

FollowMode = Literal["auto", "socket", "poll"]
"""How handles learn about their tasks.

``auto``: a socket per session while fewer than ``max_sockets`` are open, with a slow safety-net
poll; polling every 2-3 s otherwise. ``socket``: a socket for every session whatever the cap, and
no polling while it is connected. ``poll``: no sockets; polling every 2-3 s.
"""


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """The client options the runtime works by (see :class:`~webrun_async.AsyncWebRun`)."""

    mode: FollowMode = "auto"
    max_sockets: int = 500
    max_sessions: int | None = None
    max_cost: float | None = None
    on_guardrail: GuardrailCallback | None = None
    poll_interval: float = 2.0
    safety_poll_interval: float = 30.0
    socket_connect_timeout: float = 5.0
    socket_reconnect_attempts: int = 5
    cleanup_timeout: float = 15.0
    unreachable_timeout: float = 60.0
