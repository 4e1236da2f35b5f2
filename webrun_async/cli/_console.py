"""Terminal output: lasting lines, one transient status line, transfer progress, formatting.

Results go to stdout. Progress is a single line on stderr, redrawn in place with ``\\r``, and
only when stderr is a terminal: piped or redirected, the command prints its results and
nothing else. Lasting lines printed while a status line is shown wipe it first and redraw it
after, so the two never run into each other on a shared terminal.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import TextIO

__all__ = [
    "CommandError",
    "Console",
    "TransferProgress",
    "format_date",
    "format_size",
    "is_terminal",
]

REDRAW_EVERY = 0.1
"""Seconds between two redraws of a progress line (the last state is always drawn)."""


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal (closed or odd streams are not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def format_size(count: float) -> str:
    """A byte count for people: ``512 B``, ``1.5 KiB``, ``3.2 MiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def format_date(value: datetime | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM`` in UTC (``-`` when unknown)."""
    if value is None:
        return "-"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M")


class Console:
    """Where a command writes: lasting lines, and one transient status line on a terminal.

    Args:
        out: Where results go (stdout by default).
        err: Where progress, prompts and errors go (stderr by default).
    """

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.live = is_terminal(self.err)
        """Whether progress is shown (stderr is a terminal)."""
        self._status = ""
        self._shown = 0  # characters of the status line now on screen

    def print(self, text: str = "", *, err: bool = False) -> None:
        """Write a lasting line to stdout (or stderr), above any status line."""
        self._wipe()
        stream = self.err if err else self.out
        stream.write(text + "\n")
        stream.flush()
        self._draw()

    def write(self, text: str) -> None:
        """Write text to stdout as it comes (no newline added), e.g. a streamed answer."""
        self.out.write(text)
        self.out.flush()

    def status(self, text: str) -> None:
        """Show ``text`` as the transient status line (nothing unless stderr is a terminal)."""
        if not self.live:
            return
        width = shutil.get_terminal_size().columns - 1
        # A line that wraps could not be redrawn in place: cut it to the terminal's width.
        self._status = text if len(text) <= width else text[: max(width - 3, 0)] + "..."
        self._draw()

    def clear_status(self) -> None:
        """Remove the status line."""
        self._wipe()
        self._status = ""

    def keep_status(self) -> None:
        """End the status line so that it stays on screen, and start a fresh line."""
        if self._shown:
            self.err.write("\n")
            self.err.flush()
        self._shown = 0
        self._status = ""

    def _wipe(self) -> None:
        if self._shown:
            self.err.write("\r" + " " * self._shown + "\r")
            self.err.flush()
            self._shown = 0

    def _draw(self) -> None:
        if not self._status:
            return
        line = self._status.ljust(self._shown)  # spaces cover the rest of a longer last line
        self.err.write("\r" + line)
        self.err.flush()
        self._shown = len(line)


class TransferProgress:
    """A ``progress(done, total)`` callback that draws one line: bytes, percent, rate.

    Use it as a context manager around the transfer: on the way out its last state stays on
    screen. Nothing is drawn unless stderr is a terminal.

    Args:
        console: Where to draw.
        label: What is moving, e.g. ``"uploading profile.tar.gz"``.
        clock: Seconds from a monotonic clock (for tests).
    """

    def __init__(
        self, console: Console, label: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._console = console
        self._label = label
        self._clock = clock
        self._started: float | None = None
        self._last_done = 0
        self._drawn_at = -float("inf")

    def __call__(self, done: int, total: int | None) -> None:
        if not self._console.live:
            return
        now = self._clock()
        if self._started is None or done < self._last_done:
            self._started = now  # the first call, or a retry starting over
        self._last_done = done
        if now - self._drawn_at < REDRAW_EVERY and done != total:
            return
        self._drawn_at = now
        self._console.status(self.describe(done, total, now - self._started))

    def describe(self, done: int, total: int | None, elapsed: float) -> str:
        """The progress line for ``done`` of ``total`` bytes after ``elapsed`` seconds."""
        text = f"{self._label}: {format_size(done)}"
        if total:
            text += f" of {format_size(total)} ({min(done * 100 // total, 100)}%)"
        if elapsed > 0 and done:
            text += f", {format_size(done / elapsed)}/s"
        return text

    def __enter__(self) -> TransferProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._console.keep_status()


class CommandError(Exception):
    """A failure the command explains in one line (``webrun: error: <message>``).

    Attributes:
        exit_code: The process's exit status (1 unless said otherwise).
    """

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
