"""The engine: session and task lifecycle, holds, expiry, and the account's money.

Transport-independent on purpose: the REST handlers and the socket.io server (`push.hub`) call
the same methods, and the socket server follows sessions through `EmulatedSession.subscribe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from webrun_async.emulator.config import EmulatorConfig
from webrun_async.emulator.errors import ApiError
from webrun_async.emulator.faults import Faults

from .bodies import completed_event, error_event
from .directives import parse_directives
from .ids import new_short_id, remove_files
from .instance import disconnect_instance
from .script import result_data, run_script
from .session import EmulatedSession, EmulatedTaskStatus, EmulatedUsage, Task
from .store import Store
from .taskspec import SessionOptions, TaskSpec

__all__ = ["Engine"]

logger = logging.getLogger("webrun_async.emulator")

# How long after its task starts an injected instance loss happens.
_INSTANCE_FAULT_DELAY = 0.05
ORPHAN_FILE_TTL = 3600.0  # Orphan uploads are deleted after an hour, as the files page says.
# Emulator-defined: the docs give no code for a task ended by `state: stop`.
TASK_STOPPED = ("TASK_STOPPED", "Task stopped by user")


class Engine:
    """Runs sessions and tasks over a `Store`."""

    def __init__(self, config: EmulatorConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.base_url = ""
        self.tmp_dir: Path | None = None
        self.closing = False
        # Signs profile download URLs; new per emulator so old URLs never verify.
        self.url_secret = secrets.token_bytes(32)
        self._runners: set[asyncio.Task[None]] = set()
        self._holds: set[asyncio.Future[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.faults = Faults(config.faults)

    @staticmethod
    def now() -> float:
        """The event loop's clock, used for every duration."""
        return asyncio.get_running_loop().time()

    # -- admission -------------------------------------------------------------------------

    def check_balance(self) -> None:
        """Raise 402 when the account has no money left."""
        balance = self.store.account.balance
        if balance <= 0:
            raise ApiError(
                402, "Insufficient balance.", "INSUFFICIENT_BALANCE", extra={"balance": balance}
            )

    def check_instances(self) -> None:
        """Raise 503 when every browser instance is held by a live session."""
        if self.free_instances() <= 0:
            raise ApiError(503, "No available instances.", "NO_INSTANCES_AVAILABLE")

    def free_instances(self) -> int:
        """Free instances; with an unlimited pool, the live sessions plus 100."""
        live = len(self.store.live)
        if self.config.instances is None:
            return live + 100
        return max(0, self.config.instances - live)

    # -- sessions and tasks ----------------------------------------------------------------

    def create_session(self, options: SessionOptions) -> EmulatedSession:
        """Create a live session (it holds one instance) and attach its environment."""
        session_id = new_short_id()
        while session_id in self.store.sessions:
            session_id = new_short_id()
        session = EmulatedSession(session_id, options, time.time(), self.now())
        self.store.sessions[session_id] = session
        self.store.live[session_id] = session
        self.store.peak_live = max(self.store.peak_live, len(self.store.live))
        env = self.store.environments.get(options.environment_id or "")
        if env is not None:
            env.usage_count += 1
            env.last_used_at = time.time()
        logger.debug("session %s started", session_id)
        return session

    def submit(self, session: EmulatedSession, spec: TaskSpec) -> Task:
        """Queue a task on a session; it starts at once if the session is idle."""
        task_id = spec.task_id
        while not task_id or task_id in self.store.tasks:
            task_id = new_short_id()
        task = Task(task_id, session, spec, parse_directives(spec.text))
        session.tasks[task_id] = task
        self.store.tasks[task_id] = task
        self._promote_files(session, spec)
        session.queue.append(task)
        session.last_activity = self.now()
        self._start_next(session)
        return task

    def pause(self, session: EmulatedSession, paused: bool) -> None:
        """Freeze (or unfreeze) the current task's simulated clock."""
        task = session.current
        if task is not None and not task.finished:
            task.set_paused(paused, self.now())

    def stop(self, session: EmulatedSession) -> None:
        """End the current task as failed `TASK_STOPPED` and move on to the next one."""
        task = session.current
        if task is not None and not task.finished:
            self.conclude(task, EmulatedTaskStatus.FAILED, TASK_STOPPED)
            self.advance(task)

    def answer_guardrail(self, session: EmulatedSession, reply: str, resume: bool) -> None:
        """Deliver a guardrail reply: resume the waiting task, or stop it."""
        task = session.current
        if task is None or task.finished:
            return
        if reply:
            task.guardrail_replies.append(reply)
        if not resume:
            self.stop(session)
        elif task.status is EmulatedTaskStatus.GUARDRAIL:
            task.set_status(EmulatedTaskStatus.RUNNING, self.now())

    def end_session(self, session: EmulatedSession, reason: str) -> None:
        """End a session: terminate its unfinished tasks, release its instance, tell listeners."""
        if not session.live:
            return
        session.end_reason = reason
        session.ended_at = time.time()
        unfinished = [task for task in (session.current, *session.queue) if task is not None]
        session.current = None
        session.queue.clear()
        for task in unfinished:
            self.conclude(task, EmulatedTaskStatus.TERMINATED)
        self.store.live.pop(session.session_id, None)
        payload = {"type": "end_session", "reason": reason, "message": "Session ended"}
        session.publish("end_session", payload)
        session.clear_listeners()
        logger.debug("session %s ended (%s)", session.session_id, reason)

    def conclude(
        self,
        task: Task,
        status: EmulatedTaskStatus,
        error: tuple[str, str] | None = None,
        ran_for: float | None = None,
    ) -> None:
        """Give a task its final status, bill it and publish its terminal event.

        A script that ran to its end passes `ran_for`, the scripted length: the task is billed
        for the time it was meant to take, not for however late the event loop woke it.
        """
        if task.finished:
            return
        now = self.now()
        if status is EmulatedTaskStatus.COMPLETED:
            task.result = result_data(self, task)
        task.error = error
        task.completed_at = time.time()
        if ran_for is None:
            task.final_usage = task.usage(now)
        else:
            task.final_usage = EmulatedUsage.for_elapsed(ran_for, task.spec)
        task.set_status(status, now)
        account = self.store.account
        account.balance = round(account.balance - task.final_usage.cost, 6)
        runner = task.runner
        if runner is not None and runner is not asyncio.current_task():
            runner.cancel()
        session = task.session
        session.last_activity = now
        if status is EmulatedTaskStatus.COMPLETED:
            session.publish("message", completed_event(task, now))
        elif status is EmulatedTaskStatus.FAILED:
            session.publish("message", error_event(task))
        logger.debug("task %s/%s %s", session.session_id, task.task_id, status.value)

    def advance(self, task: Task) -> None:
        """After `task` finished: auto-terminate the session or start the next queued task."""
        session = task.session
        if session.current is task:
            session.current = None
        if not session.live:
            return
        if task.spec.terminate_on_completion and task.status in (
            EmulatedTaskStatus.COMPLETED,
            EmulatedTaskStatus.FAILED,
        ):
            self.end_session(session, "terminateOnCompletion")
        else:
            self._start_next(session)

    async def wait_settled(self, task: Task) -> None:
        """Wait until the task settles or the emulator closes (callers bound it in time)."""
        if task.settled or self.closing:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task.add_waiter(waiter)
        self._holds.add(waiter)
        try:
            await waiter
        finally:
            task.discard_waiter(waiter)
            self._holds.discard(waiter)

    async def hold(self, task: Task, seconds: float | None) -> None:
        """Hold a request up to `seconds` (or indefinitely) for the task to settle.

        A hold of 0 (a newTask sent over a socket) returns without yielding to the loop, so the
        answer goes out before any event the new task publishes.
        """
        if seconds is not None and seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.wait_settled(task)

    def _start_next(self, session: EmulatedSession) -> None:
        if not session.live or session.current is not None or not session.queue:
            return
        task = session.queue.popleft()
        session.current = task
        task.set_status(EmulatedTaskStatus.RUNNING, self.now())
        session.publish(
            "message",
            {
                "type": "response_update",
                "data": {"message": "Starting task... Browsing the web now."},
            },
        )
        task.runner = self.spawn(run_script(self, task), f"webrun-emulator-task-{task.task_id}")
        fault = self.faults.draw("task")
        if fault is not None:
            self.spawn(
                self._lose_instance(task, recovers=fault == "instance_reconnect"),
                f"webrun-emulator-fault-{task.task_id}",
            )

    async def _lose_instance(self, task: Task, *, recovers: bool) -> None:
        """An injected instance loss, a moment after ``task`` started (see `faults`)."""
        await asyncio.sleep(_INSTANCE_FAULT_DELAY)
        session = task.session
        if session.live and session.current is task and not session.orphaned:
            gap = self.faults.plan.instance_gap if recovers else None
            disconnect_instance(self, session, gap)

    def _promote_files(self, session: EmulatedSession, spec: TaskSpec) -> None:
        # An orphan upload used with an environment becomes that environment's file.
        env_id = session.options.environment_id
        if env_id is None or env_id not in self.store.environments:
            return
        for file_id in spec.files:
            record = self.store.files.get(file_id)
            if record is not None and record.environment_id is None:
                record.environment_id = env_id

    # -- background work -------------------------------------------------------------------

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run `work` in the background; `aclose()` cancels it if it is still running."""
        runner = asyncio.create_task(work, name=name)
        self._runners.add(runner)
        runner.add_done_callback(self._runners.discard)
        return runner

    def start(self) -> None:
        """Start the expiry sweeper (one for all sessions)."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever())

    def sweep(self) -> list[Path]:
        """Expire idle sessions and drop stale orphan files; returns the paths to delete."""
        now = self.now()
        timeout = self.config.session_timeout
        for session in list(self.store.live.values()):
            # An orphaned session is governed by its instance grace period instead.
            if session.orphaned or session.busy:
                continue
            if now - session.last_activity >= timeout:
                self.end_session(session, "expired")
        stale = [
            record
            for record in self.store.files.values()
            if record.environment_id is None and now - record.created_mono >= ORPHAN_FILE_TTL
        ]
        for record in stale:
            del self.store.files[record.file_id]
        return [record.path for record in stale]

    async def _sweep_forever(self) -> None:
        interval = min(1.0, max(0.01, self.config.session_timeout / 10))
        while True:
            await asyncio.sleep(interval)
            stale = self.sweep()
            if stale:
                await asyncio.to_thread(remove_files, stale)

    async def aclose(self) -> None:
        """Answer every hold, stop the sweeper and cancel every simulation."""
        self.closing = True
        for waiter in list(self._holds):
            _resolve(waiter)
        tasks = [*self._runners]
        if self._sweeper is not None:
            tasks.append(self._sweeper)
            self._sweeper = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
