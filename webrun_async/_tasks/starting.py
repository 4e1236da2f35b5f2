"""Starting and following tasks: every way a session or a task comes into the client's care.

Each function that creates a session does it through a :class:`SessionLease` made before the
request is written, so that a cancel at any await point ends with the session terminated (or
never created) and its place under ``max_sessions`` free.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import anyio

from webrun_async._api import calls
from webrun_async._core.exceptions import ClientClosedError, SessionTerminated, UsageError
from webrun_async._tasks.registry import SessionState
from webrun_async._tasks.runtime import Runtime
from webrun_async._tasks.tracker import Tracker
from webrun_async.types.common import Ack
from webrun_async.types.sessions import NewTask, SessionInfo, StartSessionRequest
from webrun_async.types.tasks import RunTaskRequest, TaskRef, TaskStatus

__all__ = [
    "enqueue",
    "follow",
    "follow_initial",
    "open_session",
    "run_task_once",
    "submit_one_shot",
]


def submit_one_shot(
    runtime: Runtime, tracker: Tracker, message: NewTask, request: StartSessionRequest
) -> None:
    """Start a task in a session of its own, in the background."""
    runtime.spawn(_drive_one_shot, runtime, tracker, message, request)


def enqueue(runtime: Runtime, tracker: Tracker, state: SessionState, message: NewTask) -> None:
    """Start a task in a known session (queued there behind any running task)."""
    tracker.attach_to(state)
    state.add(tracker)  # submission order is the order the server runs them
    runtime.spawn(_drive_in_session, runtime, tracker, message)


async def _drive_one_shot(
    runtime: Runtime, tracker: Tracker, message: NewTask, request: StartSessionRequest
) -> None:
    """The driver of a one-shot task: its session (under a lease), its socket, then the task.

    Settling the tracker cancels the driver; a session that exists by then is ended by the
    tracker (``stop_remote``), one on its way by the lease.
    """

    async def steps() -> None:
        lease = runtime.new_lease()
        await lease.acquire()
        tracker.status = "starting"
        _, state = await lease.start(
            lambda: calls.start_session(runtime.transport, request), _started
        )
        assert state is not None
        tracker.attach_to(state)
        state.add(tracker)
        if tracker.settled:  # settled while the answer was on its way: the lease ends it
            lease.abandon()
            return
        await runtime.ensure_channel(state)
        await _start_task(runtime, tracker, state, message)

    await _driving(runtime, tracker, steps)


async def _drive_in_session(runtime: Runtime, tracker: Tracker, message: NewTask) -> None:
    async def steps() -> None:
        state = tracker.session
        assert state is not None
        tracker.status = "starting"
        await runtime.ensure_channel(state)
        await _start_task(runtime, tracker, state, message)

    await _driving(runtime, tracker, steps)


async def _driving(
    runtime: Runtime, tracker: Tracker, steps: Callable[[], Awaitable[None]]
) -> None:
    """Run a driver's ``steps`` in a scope settling the tracker cancels; a failure settles it."""
    with anyio.CancelScope() as scope:
        tracker.driver = scope
        try:
            await steps()
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            await _failed_to_start(runtime, tracker, exc)
        finally:
            tracker.driver = None


async def _start_task(
    runtime: Runtime, tracker: Tracker, state: SessionState, message: NewTask
) -> None:
    loop = asyncio.get_running_loop()
    observed = loop.time()
    if state.current() is tracker:
        tracker.started(observed)  # its deadline and its cost floor run from now
    else:  # queued behind another task: both start when it does (Runtime.promote)
        tracker.deadline = tracker.deadline_from(observed)
    answer = await runtime.post_message(state.id, message)
    assert not isinstance(answer, Ack)
    tracker.offer(answer, observed)
    if not tracker.settled:
        if tracker.status == "starting":
            tracker.status = "running"
        runtime.schedule_next(tracker)


async def _failed_to_start(runtime: Runtime, tracker: Tracker, exc: Exception) -> None:
    if isinstance(exc, ClientClosedError):  # closing began before the task was sent
        closed = SessionTerminated(
            "the client closed before the task was started; nothing more was sent",
            **tracker.ids(),
        )
        closed.__cause__ = exc
        tracker.settle(closed, "terminated")
    else:
        tracker.fail(exc)
    state = tracker.session
    if tracker.one_shot and state is not None:
        await runtime.cleanup(runtime.end_session(state), f"ending {state.id}")


async def open_session(runtime: Runtime, request: StartSessionRequest) -> SessionState:
    """Start a session for ``sessions.create`` and connect its socket.

    A cancel at any point, the socket's connection included, ends the session: the caller
    never got it, so nobody else could.
    """
    lease = runtime.new_lease()
    await lease.acquire()
    _, state = await lease.start(lambda: calls.start_session(runtime.transport, request), _started)
    assert state is not None
    try:
        await runtime.ensure_channel(state)
    except BaseException:
        lease.abandon()
        raise
    return state


def follow_initial(runtime: Runtime, tracker: Tracker, state: SessionState) -> None:
    """Follow the initial task of a session just started."""
    tracker.attach_to(state)
    state.add(tracker, first=True)  # it was started before anything else
    tracker.status = "running"
    tracker.started(asyncio.get_running_loop().time())
    task_id = state.info.task_id if state.info is not None else None
    if task_id:
        tracker.named_as(task_id)
        # It started before the socket connected: what it pushed meanwhile was missed.
        runtime.poll_in(tracker, 0)
    elif state.channel is None:
        tracker.fail(
            UsageError(
                "the server did not name the initial task and no socket is open to follow "
                "it; start tasks with session.submit() instead"
            )
        )


def follow(runtime: Runtime, tracker: Tracker, ref: TaskRef) -> None:
    """Follow an already running task: poll it now, and connect its session's socket."""
    state = runtime.adopt(ref.session_id)
    tracker.attach_to(state)
    tracker.named_as(ref.task_id)
    state.add(tracker)
    tracker.status = "running"
    tracker.started(asyncio.get_running_loop().time())
    runtime.poll_in(tracker, 0)
    if state.channel is None and runtime.options.mode != "poll":
        runtime.spawn(runtime.ensure_channel, state)


async def run_task_once(runtime: Runtime, request: RunTaskRequest) -> TaskStatus:
    """``POST /start/run-task`` once, under a lease: the session it leaves running (the task
    is not final yet) is looked after and ends with its task; a cancelled caller's is ended."""
    lease = runtime.new_lease()
    await lease.acquire()
    status, state = await lease.start(
        lambda: calls.run_task(runtime.transport, request), _left_running
    )
    if state is not None:
        state.ends_with = status.task_id
    return status


def _started(info: SessionInfo) -> tuple[str, SessionInfo]:
    return info.session_id, info


def _left_running(status: TaskStatus) -> tuple[str, None] | None:
    # A final answer: terminateOnCompletion ended the session with its task.
    return None if status.terminal else (status.session_id, None)
