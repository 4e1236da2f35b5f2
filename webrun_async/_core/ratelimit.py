"""The client-side rate limiter: sliding windows that hold every caller back together."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections import deque
from collections.abc import Mapping

import anyio

from webrun_async._core.config import RateLimit, RateLimits

__all__ = ["ACCOUNT_BUCKET", "RateLimiter", "parse_retry_after", "task_bucket"]

logger = logging.getLogger("webrun_async")

ACCOUNT_BUCKET = "account"
"""The one window shared by the profile and environment endpoints."""


def task_bucket(route: str) -> str:
    """The window of one task endpoint, e.g. ``task_bucket("POST /start/run-task")``."""
    return f"task:{route}"


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), if valid."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(seconds, 0.0) if seconds == seconds else None  # NaN is not a delay


class _Window:
    """One sliding window; callers queue on an asyncio lock, which is first come first served."""

    __slots__ = ("_blocked_until", "_limit", "_lock", "_starts")

    def __init__(self, limit: RateLimit) -> None:
        self._limit = limit
        self._starts: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            period = self._limit.period
            while True:
                now = time.monotonic()
                starts = self._starts
                while starts and starts[0] <= now - period:
                    starts.popleft()
                if now < self._blocked_until:
                    wait = self._blocked_until - now
                elif len(starts) >= self._limit.requests:
                    wait = starts[0] + period - now
                else:
                    starts.append(now)
                    return
                await anyio.sleep(wait)

    def block_for(self, seconds: float) -> None:
        # Never longer than one window: a server that asks for more is honoured on the next 429.
        seconds = min(seconds, self._limit.period)
        self._blocked_until = max(self._blocked_until, time.monotonic() + seconds)

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        if status == 429:
            retry_after = parse_retry_after(headers)
            wait = retry_after if retry_after is not None else self._limit.period
            logger.warning("rate limited by the server; holding requests for %.1f s", wait)
            self.block_for(wait)
            return
        if headers.get("X-RateLimit-Remaining", "").strip() == "0":
            try:
                reset = float(headers.get("X-RateLimit-Reset", ""))
            except ValueError:
                return
            self.block_for(max(reset - time.time(), 0.0))


class RateLimiter:
    """Holds requests back so the documented per-endpoint and per-account limits are kept."""

    __slots__ = ("_limits", "_windows")

    def __init__(self, limits: RateLimits) -> None:
        self._limits = limits
        self._windows: dict[str, _Window | None] = {}

    def _window(self, bucket: str) -> _Window | None:
        try:
            return self._windows[bucket]
        except KeyError:
            limit = self._limits.account if bucket == ACCOUNT_BUCKET else self._limits.task
            window = _Window(limit) if limit is not None else None
            self._windows[bucket] = window
            return window

    async def acquire(self, bucket: str) -> None:
        """Wait until a request in ``bucket`` may start."""
        window = self._window(bucket)
        if window is not None:
            await window.acquire()

    def observe(self, bucket: str, status: int, headers: Mapping[str, str]) -> None:
        """Learn from an answer's status and ``X-RateLimit-*`` / ``Retry-After`` headers."""
        window = self._window(bucket)
        if window is not None:
            window.observe(status, headers)
