"""The progress of ``webrun batch`` on stderr: tasks done, running, held by the rate limit and
waiting, failures, cost so far, and an estimate of the time left.

On a terminal it is one line redrawn in place (``Console.status``) and kept on screen at the
end. Otherwise (a pipe, a file, a CI log) it is a plain line every ``every`` seconds and one
at the end, each starting ``webrun: batch:``, so a log shows how a long batch went without
filling up with redraws. Nothing of it goes to stdout.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

from webrun_async import AsyncWebRun, TaskHandle

from ._console import Console

__all__ = ["TICK", "BatchProgress", "Tally", "estimate", "format_duration"]

TICK = 0.2
"""Seconds between two redraws of the progress line on a terminal."""


@dataclass(slots=True)
class Tally:
    """Where the batch stands.

    Attributes:
        total: Tasks this run has to do (the file's tasks minus those skipped).
        skipped: Tasks skipped because the ``--out`` file records them already.
        done: Outcomes written.
        failed: Of those, the ones that did not complete.
        running: Handles of tasks started and not settled yet.
        durations: Seconds from start to outcome of the tasks done so far, summed.
        cost: USD the tasks done so far cost.
    """

    total: int
    skipped: int = 0
    done: int = 0
    failed: int = 0
    running: dict[str, TaskHandle[Any]] = field(default_factory=dict)
    durations: float = 0.0
    cost: float = 0.0

    @property
    def waiting(self) -> int:
        """Tasks not started yet."""
        return self.total - self.done - len(self.running)

    def spent(self) -> float:
        """USD spent so far: the tasks done, and at least the compute time of those running
        (the service reports a task's cost only when its held request answers or it ends)."""
        running = sum(max(h.usage.cost, h.min_cost) for h in self.running.values())
        return self.cost + running

    @property
    def mean_duration(self) -> float | None:
        """How long a task has taken so far, on average (``None`` before the first)."""
        return self.durations / self.done if self.done else None


def estimate(
    left: int, running: int, *, rate: float | None, slots: int, mean: float | None
) -> float | None:
    """Seconds until the batch is done, or ``None`` when nothing tells yet.

    The rate limit bounds how fast tasks start: ``left`` tasks not started yet need
    ``left / rate`` seconds to get through it. Once tasks have finished, their mean duration
    bounds it too (``slots`` tasks at a time), and the last ones started still have to run.

    Args:
        left: Tasks not started yet.
        running: Tasks started and not finished.
        rate: Tasks the rate limit lets start per second (``None``: no limit).
        slots: Tasks run at once (``--concurrency``).
        mean: The mean duration of the tasks done so far, in seconds.
    """
    if left == 0 and running == 0:
        return 0.0
    if mean is None:  # no task has ended yet: only the rate limit tells
        return left / rate if rate and left else None
    through_limit = left / rate if rate else 0.0
    return max(through_limit, math.ceil(left / slots) * mean) + mean


def format_duration(seconds: float) -> str:
    """``45s``, ``3m05s``, ``2h07m``."""
    whole = max(round(seconds), 0)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class BatchProgress:
    """Draws the tally while the batch runs (see the module's docstring).

    Args:
        console: Where to draw.
        client: The client running the batch (for the requests its rate limiter holds).
        tally: What to show.
        rate: Tasks the rate limit lets start per second (``None``: no limit).
        slots: Tasks run at once.
        every: Seconds between two plain lines when stderr is not a terminal (0: none).
    """

    def __init__(
        self,
        console: Console,
        client: AsyncWebRun,
        tally: Tally,
        *,
        rate: float | None,
        slots: int,
        every: float,
    ) -> None:
        self._console = console
        self._client = client
        self._tally = tally
        self._rate = rate
        self._slots = slots
        self._every = every
        self._started = asyncio.get_running_loop().time()

    def line(self, *, final: bool = False) -> str:
        """The progress now, in one line short enough for most terminals, e.g.
        ``3/10 done, 1 failed, 4 running (2 rate-limited), 3 waiting, $0.0123, ETA 1m05s``;
        the final one ends with the time taken instead of the estimate."""
        tally = self._tally
        running = len(tally.running)
        held = min(self._client.stats.rate_limit_waiting, running)
        line = (
            f"{tally.done}/{tally.total} done, {tally.failed} failed, {running} running"
            + (f" ({held} rate-limited)" if held else "")
            + f", {tally.waiting} waiting, ${tally.spent():.4f}"
        )
        if final:
            elapsed = asyncio.get_running_loop().time() - self._started
            line += f", in {format_duration(elapsed)}"
        elif tally.waiting or running:
            left = estimate(
                tally.waiting, running, rate=self._rate, slots=self._slots, mean=tally.mean_duration
            )
            if left is not None:
                line += f", ETA {format_duration(left)}"
        if tally.skipped:
            line += f" ({tally.skipped} recorded before)"
        return line

    async def run(self) -> None:
        """Draw until cancelled."""
        if self._console.live:
            while True:
                self._console.status(self.line())
                await asyncio.sleep(TICK)
        if self._every <= 0:
            return
        while True:
            await asyncio.sleep(self._every)
            self.plain()

    def plain(self, *, final: bool = False) -> None:
        """Print the progress as a lasting line."""
        self._console.print(f"webrun: batch: {self.line(final=final)}", err=True)

    def finish(self) -> None:
        """Show the final state: kept on screen on a terminal, one more plain line otherwise."""
        if self._console.live:
            self._console.status(self.line(final=True))
            self._console.keep_status()
        elif self._every > 0:
            self.plain(final=True)
