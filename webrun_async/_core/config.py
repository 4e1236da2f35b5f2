"""Client options: timeouts, retries and the client-side rate limits."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from webrun_async._core.exceptions import ConfigurationError

__all__ = ["HOLD_SECONDS", "RateLimit", "RateLimits", "RetryPolicy", "Timeouts"]

HOLD_SECONDS = 50.0
"""How long run-task and newTask may hold a request before answering "pending"."""


def _check_positive(name: str, value: float | None, *, allow_none: bool = True) -> None:
    if value is None:
        if not allow_none:
            raise ConfigurationError(f"{name} must be a number of seconds, not None")
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long a single HTTP attempt may take, in seconds (``None``: no limit).

    Attributes:
        connect: To open a connection.
        read: For the answer to arrive, from the start of the attempt (for uploads: between two
            reads of the answer, since sending may take longer).
        total: For the whole attempt, answer included; no limit by default so that large
            uploads and held requests are not cut short. Streamed answers (downloads, chat
            streams) have no total limit.
        hold_read: The read limit for the held endpoints (run-task and newTask), which the
            server may keep silent for up to 50 s; never less than 50 s plus a margin.
        stream_idle: The longest silence between two chunks of a streamed answer once it has
            started (the first chunk may take as long as the task). Streams have no total limit.
    """

    connect: float | None = 10.0
    read: float | None = 60.0
    total: float | None = None
    hold_read: float = HOLD_SECONDS + 25.0
    stream_idle: float | None = 60.0

    def __post_init__(self) -> None:
        _check_positive("Timeouts.connect", self.connect)
        _check_positive("Timeouts.read", self.read)
        _check_positive("Timeouts.total", self.total)
        _check_positive("Timeouts.hold_read", self.hold_read, allow_none=False)
        _check_positive("Timeouts.stream_idle", self.stream_idle)
        if self.hold_read < HOLD_SECONDS + 5:
            raise ConfigurationError(
                f"Timeouts.hold_read must be at least {HOLD_SECONDS + 5:g} s: the server may hold "
                f"a task request for {HOLD_SECONDS:g} s before answering"
            )

    @classmethod
    def of(cls, value: Timeouts | float | None) -> Timeouts:
        """Accept a :class:`Timeouts`, one number (used as the read limit) or ``None``."""
        if value is None:
            return cls()
        if isinstance(value, Timeouts):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigurationError(
                f"timeout must be a Timeouts or a number of seconds, got {type(value).__name__}"
            )
        return cls(read=float(value))

    def read_for(self, silent_for: float) -> float | None:
        """The read limit for an endpoint that may stay silent for ``silent_for`` seconds.

        That is never less than ``hold_read`` plus the extra silence beyond the 50 s hold.
        """
        needed = self.hold_read + max(silent_for - HOLD_SECONDS, 0.0)
        return None if self.read is None else max(self.read, needed)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before retrying a failed request.

    GETs and DELETEs are retried on connection errors, 408, 429 and 5xx. POSTs, which may
    create billable work, are retried only when the server provably did not act on them: a
    429, a 503, or a connection that never opened.

    Attributes:
        max_retries: Retries after the first attempt.
        initial_backoff: The first backoff cap; it doubles with each retry.
        max_backoff: The largest backoff cap. Each wait is uniform in [0, cap] ("full jitter").
        max_retry_after: The longest ``Retry-After`` that is honoured; longer ones are cut.
        max_elapsed: No retry starts once this many seconds have passed since the first attempt.
        wait: ``False`` removes every wait (for tests); the retry decisions stay the same.
    """

    max_retries: int = 3
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0
    max_elapsed: float = 120.0
    wait: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise ConfigurationError("RetryPolicy.max_retries must be an int")
        if self.max_retries < 0:
            raise ConfigurationError(
                f"RetryPolicy.max_retries must be 0 or more, got {self.max_retries}"
            )
        for name in ("initial_backoff", "max_backoff", "max_retry_after", "max_elapsed"):
            _check_positive(f"RetryPolicy.{name}", getattr(self, name), allow_none=False)

    def delay(self, retry: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        if not self.wait:
            return 0.0
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        cap = min(self.max_backoff, self.initial_backoff * (2**retry))
        return random.uniform(0.0, cap)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``requests`` in any sliding window of ``period`` seconds."""

    requests: int
    period: float

    def __post_init__(self) -> None:
        if isinstance(self.requests, bool) or not isinstance(self.requests, int):
            raise ConfigurationError("RateLimit.requests must be an int")
        if self.requests < 1:
            raise ConfigurationError(f"RateLimit.requests must be 1 or more, got {self.requests}")
        _check_positive("RateLimit.period", self.period, allow_none=False)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The client-side limits, matching the service's documented ones.

    Attributes:
        task: Per endpoint, on the POSTs that start or steer work (start-session,
            send-message, run-task, chat completions, file uploads): 10 per minute.
        account: Shared by the profile and environment endpoints: 100 per 15 minutes.
            ``None`` leaves either group unlimited.
    """

    task: RateLimit | None = field(default_factory=lambda: RateLimit(10, 60.0))
    account: RateLimit | None = field(default_factory=lambda: RateLimit(100, 900.0))
