"""Interrupt a call at each of its await points, deterministically, not at random.

``Interrupt(coro, point, when)`` runs ``coro`` and counts the times it suspends. At the
``point``-th suspension it acts (by default: cancels the task running it):

* ``when="early"``: at once, while what it waits for is still pending (a cancel that lands
  while a request is in flight);
* ``when="late"``: the moment what it waits for completes, before the call resumes (a cancel
  that lands just after an answer arrived, the window where an answer is easiest to lose).

:func:`sweep` runs a call once per point, early and late, until the call completes before the
point is reached, and runs the caller's checks after each interrupted run.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from webrun_async.emulator import Emulator

T = TypeVar("T")
When = Literal["early", "late"]


class Interrupt:
    """An awaitable running ``coro`` that acts at its ``point``-th suspension."""

    def __init__(
        self,
        coro: Coroutine[Any, Any, Any],
        point: int,
        when: When,
        act: Callable[[], object] | None = None,
    ) -> None:
        self.coro = coro
        self.point = point
        self.when = when
        self.act = act
        self.seen = 0
        self.fired = False

    def __await__(self) -> Generator[Any, Any, Any]:
        task = asyncio.current_task()
        assert task is not None
        act = self.act or task.cancel
        gen = self.coro.__await__()
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                yielded = gen.send(value) if error is None else gen.throw(error)
            except StopIteration as stop:
                return stop.value
            self.seen += 1
            if self.seen == self.point:
                self.fired = True
                if self.when == "late" and isinstance(yielded, asyncio.Future):
                    # Registered before the task's own wake-up: runs first when it completes.
                    yielded.add_done_callback(lambda _done: act())
                else:
                    act()
            try:
                value, error = (yield yielded), None
            except BaseException as exc:  # a cancel or error thrown in at this await point
                value, error = None, exc


@dataclass
class SweepReport:
    """What a sweep did: the points interrupted, per mode, and the outcomes seen."""

    points: dict[When, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)


async def sweep(
    call: Callable[[], Coroutine[Any, Any, Any]],
    check: Callable[[], Awaitable[None]],
    *,
    finish: Callable[[Any], Awaitable[None]] | None = None,
    modes: tuple[When, ...] = ("early", "late"),
    limit: int = 2000,
) -> SweepReport:
    """Interrupt ``call()`` at every await point, ``check()`` after each run.

    ``finish(result)`` cleans up after a run that completed despite the interruption (the
    cancel landed where it is deliberately deferred) and after the last, uninterrupted run.
    """
    report = SweepReport()
    for when in modes:
        point = 1
        while True:
            probe = Interrupt(call(), point, when)
            runner = asyncio.ensure_future(probe)
            try:
                result = await runner
            except asyncio.CancelledError:
                if not runner.cancelled():
                    raise  # the sweeping test itself was cancelled
                outcome = "cancelled"
            except Exception as exc:  # the call may fail (a cancelled request, say)
                outcome = type(exc).__name__
            else:
                outcome = "completed"
                if finish is not None:
                    await finish(result)
            report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
            await check()
            if not probe.fired:
                report.points[when] = point - 1
                break
            point += 1
            assert point < limit, "the call never completes"
    return report


class EmulatorThread:
    """An emulator serving from an event loop in a thread of its own.

    The client under test then has its loop to itself: every task left in it after closing
    is the client's. Methods of the emulator are called in its own loop through :meth:`call`.
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.emulator: Emulator | None = None

    def __enter__(self) -> EmulatorThread:
        self._thread.start()
        emu = Emulator(**self._options)
        asyncio.run_coroutine_threadsafe(emu.start(), self._loop).result(timeout=30)
        self.emulator = emu
        return self

    def __exit__(self, *exc: object) -> None:
        if self.emulator is not None:
            asyncio.run_coroutine_threadsafe(self.emulator.aclose(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` run in the emulator's loop; its result."""

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    @property
    def base_url(self) -> str:
        assert self.emulator is not None
        return self.emulator.base_url

    @property
    def api_key(self) -> str:
        assert self.emulator is not None
        return self.emulator.api_key

    def live_sessions(self) -> list[str]:
        assert self.emulator is not None
        return self.call(self.emulator.live_sessions)

    def open_sockets(self, session_id: str | None = None) -> int:
        assert self.emulator is not None
        return self.call(self.emulator.open_sockets, session_id)

    def running(self, session_id: str) -> bool:
        """Whether a task runs or waits in the session."""
        assert self.emulator is not None
        live = self.emulator.state.live

        def busy() -> bool:
            session = live.get(session_id)
            return session is not None and (session.current is not None or bool(session.queue))

        return self.call(busy)
