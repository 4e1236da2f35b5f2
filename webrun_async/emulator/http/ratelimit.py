"""Sliding-window rate limiting with the `X-RateLimit-*` headers of the rate-limits page."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

__all__ = ["Decision", "SlidingWindow"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one check, with the headers to send."""

    allowed: bool
    headers: dict[str, str]


class SlidingWindow:
    """A log of recent hits per key; a hit counts only when it is allowed.

    Args:
        limit: Requests allowed within any window.
        window: Window length in seconds.
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str, now: float) -> Decision:
        """Count a request for `key` at loop time `now` if the window has room."""
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        allowed = len(hits) < self.limit
        if allowed:
            hits.append(now)
        # Seconds until the oldest counted request leaves the window.
        until_free = hits[0] + self.window - now
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.limit - len(hits)),
            "X-RateLimit-Reset": str(math.ceil(time.time() + until_free)),
        }
        if not allowed:
            headers["Retry-After"] = str(max(1, math.ceil(until_free)))
        return Decision(allowed, headers)
