"""The client-side rate limiter: sliding windows that hold every caller back together."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import anyio

from webrun_async._core.config import RateLimit, RateLimits
from webrun_async._core.exceptions import ClientClosedError

__all__ = ["ACCOUNT_BUCKET", "LimiterStats", "RateLimiter", "parse_retry_after", "task_bucket"]

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


@dataclass(frozen=True, slots=True)
class LimiterStats:
    """What the client-side rate limiter is doing.

    Attributes:
        waiting: Requests held back now.
        wait: Seconds until the longest current hold ends (0 when none is held).
        waited: Seconds requests have spent held back so far, added up.
        held: Requests that had to wait so far.
    """

    waiting: int = 0
    wait: float = 0.0
    waited: float = 0.0
    held: int = 0


class _Window:
    """One sliding window; callers queue on an asyncio lock, which is first come first served."""

    __slots__ = (
        "_blocked_until",
        "_limit",
        "_limiter",
        "_lock",
        "_name",
        "_starts",
        "free_at",
        "waiting",
    )

    def __init__(self, limiter: RateLimiter, name: str, limit: RateLimit) -> None:
        self._limiter = limiter
        self._name = name
        self._limit = limit
        self._starts: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = asyncio.Lock()
        self.waiting = 0
        self.free_at = 0.0  # when the request at the head of the queue may start

    async def acquire(self) -> None:
        limiter = self._limiter
        self.waiting += 1
        held_since: float | None = None
        try:
            async with self._lock:
                period = self._limit.period
                while True:
                    limiter.check_open()
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
                    if held_since is None:
                        held_since = now
                        limiter.holding(self._name, self._limit, wait)
                    self.free_at = now + wait
                    with anyio.move_on_after(wait):
                        await limiter.closed.wait()
        finally:
            self.waiting -= 1
            if held_since is not None:
                limiter.held_for(time.monotonic() - held_since)

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
    """Holds requests back so the documented per-endpoint and per-account limits are kept.

    The first time it holds a request back it says so at INFO (the wait and the limit); later
    holds are logged at DEBUG. :meth:`stats` has the figures. :meth:`close` releases every
    waiter with :class:`~webrun_async.ClientClosedError`: a closing client sends nothing new.
    """

    __slots__ = ("_held", "_limits", "_told", "_waited", "_windows", "closed")

    def __init__(self, limits: RateLimits) -> None:
        self._limits = limits
        self._windows: dict[str, _Window | None] = {}
        self._told = False
        self._waited = 0.0
        self._held = 0
        self.closed = asyncio.Event()

    def _window(self, bucket: str) -> _Window | None:
        try:
            return self._windows[bucket]
        except KeyError:
            limit = self._limits.account if bucket == ACCOUNT_BUCKET else self._limits.task
            window = _Window(self, bucket, limit) if limit is not None else None
            self._windows[bucket] = window
            return window

    def close(self) -> None:
        """Refuse every request waiting or to come (:class:`ClientClosedError`)."""
        self.closed.set()

    def check_open(self) -> None:
        """Raise :class:`ClientClosedError` once closed."""
        if self.closed.is_set():
            raise ClientClosedError(
                "the client is closing: a request held back by the rate limiter was not sent"
            )

    def holding(self, bucket: str, limit: RateLimit, wait: float) -> None:
        """A request is being held back for ``wait`` seconds (logged once at INFO)."""
        route = bucket.removeprefix("task:")
        level = logging.DEBUG if self._told else logging.INFO
        self._told = True
        logger.log(
            level,
            "client-side rate limit: holding %s for %.1f s (at most %d requests per %g s, the "
            "service's documented limit; client.stats shows the wait)",
            route,
            wait,
            limit.requests,
            limit.period,
        )

    def held_for(self, seconds: float) -> None:
        """A request was let go after ``seconds`` held back."""
        self._waited += seconds
        self._held += 1

    def stats(self) -> LimiterStats:
        """The limiter's figures now."""
        now = time.monotonic()
        windows = [w for w in self._windows.values() if w is not None and w.waiting]
        wait = max((w.free_at - now for w in windows), default=0.0)
        return LimiterStats(
            waiting=sum(w.waiting for w in windows),
            wait=max(wait, 0.0),
            waited=self._waited,
            held=self._held,
        )

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
