"""``BackgroundWork``: the client's task group and the loose tasks that closing waits for.

Work the client starts on its own (drivers starting tasks, sockets connecting, automatic
guardrail answers) runs in one anyio task group, started on first use. Work that must finish
even when its starter went away (a start-session request whose caller was cancelled, the
termination of a session) runs as a *loose* task: never cancelled, awaited (within a time
limit) when the client closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskGroup

from webrun_async._core.exceptions import ClientClosedError

__all__ = ["BackgroundWork", "describe", "retrieve", "uncancellable"]

logger = logging.getLogger("webrun_async")

R = TypeVar("R")


def describe(exc: BaseException) -> str:
    """An error for a log line: its type, and its message when it has one."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as retrieved: a task or handle nobody awaits must not log
    "exception was never retrieved" when it fails."""
    if not future.cancelled():
        future.exception()


async def uncancellable(work: Coroutine[Any, Any, R]) -> R:
    """Run ``work`` to its end even if the caller is cancelled meanwhile, then deliver the
    cancel.

    anyio's shielded scopes stop anyio's own cancellation, not a native ``task.cancel()``
    (``asyncio.timeout``, ``asyncio.wait_for``, a task cancelled by hand): clean-up that
    must finish runs in a task of its own, and the caller waits for it through any number of
    cancels before raising the first one.
    """
    task = asyncio.ensure_future(work)
    cancelled: BaseException | None = None
    while True:
        try:
            with anyio.CancelScope(shield=True):
                result = await asyncio.shield(task)
            break
        except asyncio.CancelledError as exc:
            if task.done():
                raise  # the work itself was cancelled
            cancelled = cancelled or exc
    if cancelled is not None:
        raise cancelled
    return result


class BackgroundWork:
    """The client's background work (see the module docstring)."""

    __slots__ = (
        "_closing",
        "_guard",
        "_loose",
        "_pending",
        "_runner",
        "_stop",
        "_tg",
        "cleanup_timeout",
    )

    def __init__(self, cleanup_timeout: float) -> None:
        self.cleanup_timeout = cleanup_timeout
        self._tg: TaskGroup | None = None
        self._runner: asyncio.Task[None] | None = None
        self._pending: list[tuple[Callable[..., Awaitable[Any]], tuple[Any, ...]]] = []
        # Created now, not in the runner, so that a close before the loop runs the runner
        # still stops it (an asyncio.Event binds to a loop only when first waited on).
        self._stop = asyncio.Event()
        self._loose: set[asyncio.Future[Any]] = set()
        self._closing = False
        self._guard: AsyncGenerator[None, None] | None = None

    @property
    def closing(self) -> bool:
        """Whether closing has begun: nothing new starts."""
        return self._closing

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any, if_open: bool = False) -> None:
        """Run ``fn(*args)`` in the task group (started on first use).

        Work that only matters while the client is open (``if_open=True``: stopping a task,
        answering a guardrail) is dropped once it is closing: closing ends every session.

        Raises:
            ClientClosedError: The client is closing or closed (unless ``if_open``).
        """
        if self._closing:
            if if_open:
                return
            raise ClientClosedError("the client is closed; create a new AsyncWebRun")
        if self._tg is not None:
            if asyncio.current_task() is None:
                # Called from a loop callback (a budget timer): anyio starts a task only from
                # inside one, so a task of its own starts this one a step later.
                self.track(self._spawn_from_task(fn, args, if_open))
                return
            self._tg.start_soon(self._guarded, fn, *args)
            return
        self._pending.append((fn, args))
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        if self._stop.is_set():
            return  # closed before this task first ran
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for fn, args in self._pending:
                tg.start_soon(self._guarded, fn, *args)
            self._pending.clear()
            await self._stop.wait()
            tg.cancel_scope.cancel()
        self._tg = None

    async def _spawn_from_task(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], if_open: bool
    ) -> None:
        try:
            self.spawn(fn, *args, if_open=if_open)
        except ClientClosedError:
            pass  # closing began meanwhile: it ends every session itself

    @staticmethod
    async def _guarded(fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        # One failing piece of background work must not cancel all the others.
        try:
            await fn(*args)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception:
            logger.exception("background work failed")

    def track(self, work: Coroutine[Any, Any, R]) -> asyncio.Future[R]:
        """Run ``work`` as a loose task: never cancelled, awaited when the client closes."""
        task = asyncio.ensure_future(work)
        self._loose.add(task)
        task.add_done_callback(self._loose.discard)
        task.add_done_callback(retrieve)
        return task

    async def cleanup(self, work: Awaitable[object], what: str) -> None:
        """Run clean-up to its end whatever cancels the caller (then the cancel is raised),
        bounded in time, logging (not raising) its failure."""
        await uncancellable(self._bounded(work, what))

    async def _bounded(self, work: Awaitable[object], what: str) -> None:
        try:
            with anyio.fail_after(self.cleanup_timeout):
                await work
        except Exception as exc:
            logger.error("clean-up failed while %s: %s", what, describe(exc))

    def guard_loop(
        self, close: Callable[[], Awaitable[None]], leaving: Callable[[], list[str]]
    ) -> None:
        """Call ``close()`` when the event loop shuts down (or this object is collected) while
        the client is still open, logging the ``leaving()`` sessions it terminates.

        The hook is an async generator suspended for the client's life: the loop closes it
        in ``shutdown_asyncgens()`` (``asyncio.run`` does, after cancelling every task; so do
        servers such as uvicorn), and its ``finally`` still runs on the loop.
        """
        if self._guard is None:
            guard = self._guard = self._at_loop_shutdown(close, leaving)
            step = guard.__anext__()  # registers it with the loop, and runs it to its yield
            try:
                step.send(None)
            except StopIteration:
                pass

    async def unguard(self) -> None:
        """The client was closed by hand: the loop's shutdown has nothing left to do."""
        guard, self._guard = self._guard, None
        if guard is not None:
            await guard.aclose()

    async def _at_loop_shutdown(
        self, close: Callable[[], Awaitable[None]], leaving: Callable[[], list[str]]
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            self._guard = None  # running now: closing must not try to close it again
            if not self._closing:
                left = leaving()
                if left:
                    logger.warning(
                        "the event loop is shutting down with a client still open: "
                        "terminating the %d session(s) it leaves: %s (close clients with "
                        "'async with' or aclose())",
                        len(left),
                        ", ".join(left),
                    )
                await close()

    def begin_closing(self) -> None:
        """Start nothing new from now on."""
        self._closing = True

    async def stop(self, within: float | None = None) -> None:
        """Cancel the task group's work and wait (up to ``within`` seconds) for it to end.

        Work that is cleaning up finishes its clean-up first; what outlives ``within`` ends in
        the background.
        """
        self._closing = True
        self._stop.set()
        self._pending.clear()
        if self._runner is not None:
            await asyncio.wait({self._runner}, timeout=within)

    async def cancel_loose(self) -> None:
        """Cancel the loose tasks still running (closing ran out of time) and let them end."""
        tasks = list(self._loose)
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=1.0)

    async def wait_loose(self, within: float | None) -> bool:
        """Wait for the loose tasks (those they start too); ``False`` if some outlived
        ``within`` seconds."""
        with anyio.move_on_after(within):
            while self._loose:
                await asyncio.wait(set(self._loose))
        return not self._loose
