"""A first-come, first-served admission gate in front of the connection pool.

aiohttp's connector lets a request that just released a connection take it again before a
queued waiter wakes up, so under bursts larger than the pool some callers wait forever while
others are served. Admitting requests through this gate, sized to the pool, serves them strictly
in arrival order. It is a plain deque of futures: O(1) per acquire and release however many wait.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["FifoGate"]


class FifoGate:
    """At most ``size`` holders at a time, admitted in arrival order."""

    __slots__ = ("_closed", "_free", "_size", "_waiters")

    def __init__(self, size: int) -> None:
        self._size = size
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed: BaseException | None = None

    def close(self, error: BaseException) -> None:
        """Fail every waiter, and every later :meth:`acquire`, with ``error``; holders keep
        their places (and give them back as usual)."""
        self._closed = error
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    @property
    def size(self) -> int:
        """How many holders are admitted at once."""
        return self._size

    @property
    def free(self) -> int:
        """How many places are free now."""
        return self._free

    @property
    def waiting(self) -> int:
        """How many callers are queued (cancelled ones may still be counted)."""
        return len(self._waiters)

    async def acquire(self) -> None:
        """Wait for a place; places are handed over in the order callers arrived.

        Raises:
            The error given to :meth:`close`, once closed.
        """
        if self._closed is not None:
            raise self._closed
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            # Cancelled after the place was handed to us: pass it on rather than lose it. A
            # waiter cancelled before that stays in the deque, done, and release() skips it.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()
            raise

    def release(self) -> None:
        """Give the place to the longest waiting caller, or free it.

        Raises:
            RuntimeError: More places released than were acquired (a bug in the caller).
        """
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        if self._free >= self._size:
            raise RuntimeError("FifoGate released more often than acquired")
        self._free += 1
