"""Fault injection: the emulator misbehaving on purpose, on a probability or a schedule.

A :class:`FaultPlan` says what goes wrong and how often; the emulator's :class:`Faults` draws
from it. Faults come in four families, each with its own opportunities:

* ``http``: every request to an API route (never ``/_emulator/*``, never socket.io's own
  transport). ``500``, ``502``, ``503`` and ``504`` answer that status before the request is
  handled; ``429`` starts a storm (``storm`` answers in a row with ``Retry-After``); ``slow``
  waits ``slow`` seconds before handling the request (past the client's hold window);
  ``reset_before`` drops the connection before the request is handled; ``reset_after``
  handles it and then drops the connection instead of answering (the work is done, the answer
  lost); ``malformed`` answers 200 with broken JSON and ``oversized`` with a JSON document of
  ``oversized_bytes`` bytes, both without handling the request.
* ``event``: every event pushed to a session's sockets. ``drop_socket`` cuts the session's
  sockets before the event (which is lost: push is live only), as a network failure would;
  ``duplicate`` delivers the event twice; ``reorder`` holds it back and delivers it after the
  session's next event.
* ``task``: every task that starts running. ``instance_reconnect`` loses the session's browser
  instance while the task runs and restores it ``instance_gap`` seconds later;
  ``instance_lost`` loses it for good (the session ends with ``instance_lost`` after the
  emulator's ``instance_grace``).
* ``stream``: every streamed chat answer. ``sse_truncate`` cuts the connection after the first
  chunk, with no ``[DONE]``.

Sessions expiring after inactivity need no fault: set the emulator's ``session_timeout``.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .errors import ConfigError

__all__ = ["FAULT_FAMILIES", "FAULT_KINDS", "Family", "FaultPlan", "Faults"]

Family = Literal["http", "event", "task", "stream"]

FAULT_FAMILIES: dict[str, Family] = {
    **dict.fromkeys(
        (
            "500",
            "502",
            "503",
            "504",
            "429",
            "slow",
            "reset_before",
            "reset_after",
            "malformed",
            "oversized",
        ),
        "http",
    ),
    **dict.fromkeys(("drop_socket", "duplicate", "reorder"), "event"),
    **dict.fromkeys(("instance_reconnect", "instance_lost"), "task"),
    "sse_truncate": "stream",
}
"""Every fault kind, and the family of opportunities it is drawn on."""

FAULT_KINDS = tuple(FAULT_FAMILIES)


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What the emulator does wrong, and how often (see the module docstring for the kinds).

    Args:
        rates: Probability (0 to 1) of each fault kind at each opportunity of its family. The
            kinds of one family are drawn in turn, so at most one of them hits an opportunity.
        at: Faults forced at given opportunities of their family, as ``{kind: [n, ...]}``
            with ``n`` counted from 1: ``{"503": [1, 2]}`` answers 503 to the first two API
            requests. A forced fault takes precedence over the rates.
        routes: Route keys (``"POST /start/send-message"``) the ``http`` faults may hit; empty
            means every API route. Requests to other routes are not opportunities.
        seed: Seed of the random draws, for runs that repeat exactly.
        retry_after: Seconds announced in ``Retry-After`` by an injected 429.
        storm: How many 429 answers in a row once a ``429`` fault is drawn (at least 1).
        slow: Seconds an injected ``slow`` answer waits before the request is handled.
        oversized_bytes: Size of an injected ``oversized`` answer.
        instance_gap: Seconds a lost instance stays away with ``instance_reconnect``.
    """

    rates: Mapping[str, float] = field(default_factory=dict)
    at: Mapping[str, tuple[int, ...] | list[int]] = field(default_factory=dict)
    routes: tuple[str, ...] = ()
    seed: int | None = None
    retry_after: float = 1.0
    storm: int = 3
    slow: float = 60.0
    oversized_bytes: int = 80 * 1024 * 1024
    instance_gap: float = 1.0

    def __post_init__(self) -> None:
        for kind, rate in self.rates.items():
            _known(kind, "faults.rates")
            if not isinstance(rate, int | float) or not 0 <= rate <= 1:
                raise ConfigError("faults.rates", f"{kind}: must be a probability from 0 to 1")
        for kind, positions in self.at.items():
            _known(kind, "faults.at")
            if any(not isinstance(n, int) or n < 1 for n in positions):
                raise ConfigError("faults.at", f"{kind}: positions are counted from 1")
        for name in ("retry_after", "slow", "instance_gap"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"faults.{name}", "must be a finite number >= 0")
        if self.storm < 1:
            raise ConfigError("faults.storm", "must be >= 1")
        if self.oversized_bytes < 1:
            raise ConfigError("faults.oversized_bytes", "must be >= 1")

    @property
    def active(self) -> bool:
        """Whether any fault can happen at all."""
        return any(rate > 0 for rate in self.rates.values()) or any(self.at.values())


def _known(kind: str, where: str) -> None:
    if kind not in FAULT_FAMILIES:
        raise ConfigError(where, f"unknown fault {kind!r} (known: {', '.join(FAULT_KINDS)})")


class Faults:
    """Draws faults from a :class:`FaultPlan` and counts what it injected.

    Attributes:
        plan: The plan in force; assign a new one to change course (its positions and draws
            start over).
        injected: How many times each kind was injected, under every plan so far.
    """

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self.injected: Counter[str] = Counter()
        self.plan = plan or FaultPlan()

    @property
    def plan(self) -> FaultPlan:
        """The plan in force."""
        return self._plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        self._plan = plan
        self._random = random.Random(plan.seed)
        self._seen: Counter[Family] = Counter()
        self._forced: dict[Family, dict[int, str]] = {}
        for kind, positions in plan.at.items():
            for n in positions:
                self._forced.setdefault(FAULT_FAMILIES[kind], {})[n] = kind
        self._rates: dict[Family, list[tuple[str, float]]] = {}
        for kind, rate in plan.rates.items():
            if rate > 0:
                self._rates.setdefault(FAULT_FAMILIES[kind], []).append((kind, rate))
        self._storm_left = 0
        self._active = plan.active

    def draw(self, family: Family, route: str | None = None) -> str | None:
        """The fault (if any) for the next opportunity of ``family``."""
        if not self._active:
            return None
        plan = self._plan
        if family == "http":
            if plan.routes and route not in plan.routes:
                return None
            if self._storm_left > 0:
                self._storm_left -= 1
                return self._count("429")
        self._seen[family] += 1
        kind = self._forced.get(family, {}).get(self._seen[family])
        if kind is None:
            for candidate, rate in self._rates.get(family, ()):
                if self._random.random() < rate:
                    kind = candidate
                    break
        if kind is None:
            return None
        if kind == "429":
            self._storm_left = plan.storm - 1
        return self._count(kind)

    def _count(self, kind: str) -> str:
        self.injected[kind] += 1
        return kind
