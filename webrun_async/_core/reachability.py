"""Whether the API accepts connections: one warning when it stops, one line when it is back."""

from __future__ import annotations

import logging
import time

from webrun_async._core.exceptions import APIConnectionError

__all__ = ["Reachability"]

logger = logging.getLogger("webrun_async")


class Reachability:
    """Tracks a streak of attempts that could not open a connection to the API."""

    __slots__ = ("_base_url", "_error", "_since")

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url
        self._since: float | None = None  # no connection could be opened since then
        self._error: APIConnectionError | None = None

    @property
    def is_down(self) -> bool:
        """Whether the last attempts could not connect."""
        return self._since is not None

    def down(self) -> tuple[float, APIConnectionError] | None:
        """``(seconds, last error)`` while the API does not accept connections."""
        if self._since is None or self._error is None:
            return None
        return time.monotonic() - self._since, self._error

    def failed(self, error: APIConnectionError) -> None:
        """An attempt could not connect (warned about once per streak)."""
        self._error = error
        if self._since is None:
            self._since = time.monotonic()
            logger.warning(
                "cannot reach the API at %s (%s); retrying quietly until it answers",
                self._base_url,
                error,
            )

    def answered(self) -> None:
        """An answer arrived (any status): the streak, if any, is over."""
        if self._since is not None:
            logger.info(
                "the API at %s answers again after %.0f s",
                self._base_url,
                time.monotonic() - self._since,
            )
            self._since = self._error = None
