"""One owner for every session's life: cancel anywhere, close anytime, and nothing is left.

The sweeps cancel each call at every one of its await points (see ``tests/sweep.py``), once
while what it waits for is pending and once just after it completed, and check after each run
that the emulator has no live session the client does not know of, the ``max_sessions`` place
is free, and no socket is open. The other tests pin one bug each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support import FAST_EMULATOR, MakeClient, MakeEmulator, wait_until
from tests.sweep import EmulatorThread, Interrupt, When, sweep
from webrun_async import AsyncWebRun, Session, TaskCancelled, TaskFailed
from webrun_async._tasks import starting
from webrun_async.emulator import Emulator, FaultPlan

START = "POST /start/start-session"
MakeRemote = Callable[..., EmulatorThread]
Server = Emulator | EmulatorThread


@pytest.fixture
def make_remote() -> Iterator[MakeRemote]:
    """Emulators in threads of their own: the test's loop then holds only the client's tasks."""
    started: list[EmulatorThread] = []

    def make(**overrides: Any) -> EmulatorThread:
        server = EmulatorThread(**{**FAST_EMULATOR, **overrides})
        started.append(server.__enter__())
        return server

    yield make
    for server in started:
        server.__exit__()


def other_tasks(baseline: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    """Tasks alive now that were not before (this test's own task aside)."""
    return asyncio.all_tasks() - baseline - {asyncio.current_task()}  # type: ignore[operator]


async def nothing_left(emu: Server, client: AsyncWebRun, *, keep: tuple[str, ...] = ()) -> None:
    """No session but ``keep`` live on the server or in the client, no socket, places free."""
    await wait_until(lambda: sorted(emu.live_sessions()) == sorted(keep))
    await wait_until(lambda: sorted(client.live_sessions) == sorted(keep))
    await wait_until(
        lambda: emu.open_sockets() == len(keep) or client._runtime.options.mode == "poll"
    )
    gate = client._runtime.session_gate
    if gate is not None:
        await wait_until(lambda: gate.free == gate.size - len(keep))


async def closed_cleanly(
    emu: Emulator, client: AsyncWebRun, baseline: set[asyncio.Task[Any]]
) -> None:
    """Closing leaves no session, socket or task behind."""
    await client.aclose()
    await wait_until(lambda: emu.live_sessions() == [])
    await wait_until(lambda: emu.open_sockets() == 0)
    try:
        await wait_until(lambda: not other_tasks(baseline))
    except AssertionError:
        raise AssertionError(f"tasks left: {other_tasks(baseline)}") from None


# -- the sweeps ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "poll"])
async def test_sessions_create_cancelled_at_every_await_point(
    make_remote: MakeRemote, make_client: MakeClient, mode: str
) -> None:
    emu = make_remote()
    baseline = asyncio.all_tasks()
    client = await make_client(emu, mode=mode, max_sessions=1)

    async def finish(session: Session) -> None:
        await session.aclose()

    report = await sweep(
        lambda: client.sessions.create(), lambda: nothing_left(emu, client), finish=finish
    )
    assert report.points["early"] >= 1 and report.points["late"] >= 1
    assert report.outcomes["cancelled"] >= report.points["early"]
    await closed_cleanly(emu, client, baseline)


async def test_sessions_create_block_cancelled_at_every_await_point(
    make_remote: MakeRemote, make_client: MakeClient
) -> None:
    emu = make_remote()
    baseline = asyncio.all_tasks()
    client = await make_client(emu, max_sessions=1)

    async def block() -> str:
        async with client.sessions.create() as session:
            result = await session.run("Read the title")
            return str(result.output)

    report = await sweep(block, lambda: nothing_left(emu, client))
    assert report.outcomes["completed"] >= 1
    await closed_cleanly(emu, client, baseline)


@pytest.mark.parametrize("mode", ["auto", "poll"])
async def test_run_task_cancelled_at_every_await_point(
    make_remote: MakeRemote, make_client: MakeClient, mode: str
) -> None:
    emu = make_remote(task_duration=0.2)
    baseline = asyncio.all_tasks()
    client = await make_client(emu, mode=mode, max_sessions=1)
    report = await sweep(
        lambda: client.run_task("Read the title"), lambda: nothing_left(emu, client)
    )
    assert report.outcomes["cancelled"] >= 2
    await closed_cleanly(emu, client, baseline)


async def test_tasks_create_cancelled_at_every_await_point(
    make_remote: MakeRemote, make_client: MakeClient
) -> None:
    # A held run-task answer arrives after the task is final (0.05 s < the 0.5 s hold):
    # the session ended with its task, and a cancelled caller's session must too.
    emu = make_remote(task_duration=2.0, inline_wait=0.05)
    baseline = asyncio.all_tasks()
    client = await make_client(emu, max_sessions=1)

    async def finish(status: Any) -> None:
        await client.sessions.attach(status.session_id).terminate()

    await sweep(
        lambda: client.tasks.create("Read the title"),
        lambda: nothing_left(emu, client),
        finish=finish,
    )
    await closed_cleanly(emu, client, baseline)


async def test_session_run_cancelled_at_every_await_point(
    make_remote: MakeRemote, make_client: MakeClient
) -> None:
    emu = make_remote(task_duration=0.2)
    baseline = asyncio.all_tasks()
    client = await make_client(emu, max_sessions=1)
    session = await client.sessions.create()

    async def idle() -> None:
        await nothing_left(emu, client, keep=(session.id,))
        await wait_until(lambda: not emu.running(session.id))  # the cancelled task runs no more

    report = await sweep(lambda: session.run("Read the title"), idle)
    assert report.outcomes["cancelled"] >= 2 and report.outcomes["completed"] >= 1
    await closed_cleanly(emu, client, baseline)


async def test_submit_cancelled_at_every_await_point_of_its_driver(
    make_remote: MakeRemote, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handle is cancelled at each await point of the work that starts its task."""
    emu = make_remote(task_duration=0.2)
    baseline = asyncio.all_tasks()
    client = await make_client(emu, max_sessions=1)
    original = starting._drive_one_shot
    probes: list[Interrupt] = []
    cancels: list[asyncio.Future[None]] = []
    plan: dict[str, Any] = {}

    def instrumented(*args: Any) -> Interrupt:
        tracker = args[1]

        def cancel_handle() -> None:
            cancels.append(asyncio.ensure_future(tracker.owner.cancel()))

        probe = Interrupt(original(*args), plan["point"], plan["when"], act=cancel_handle)
        probes.append(probe)
        return probe

    monkeypatch.setattr(starting, "_drive_one_shot", instrumented)
    for when in ("early", "late"):
        point = 1
        while True:
            plan.update(point=point, when=when)
            handle = client.tasks.submit("Read the title")
            try:
                await handle
            except TaskCancelled:
                pass
            await asyncio.gather(*cancels)
            cancels.clear()
            await nothing_left(emu, client)
            if not probes[-1].fired:
                break
            point += 1
        assert point > 3
    await closed_cleanly(emu, client, baseline)


async def test_attach_cancelled_at_every_await_point(
    make_remote: MakeRemote, make_client: MakeClient
) -> None:
    emu = make_remote(task_duration=0.3)
    baseline = asyncio.all_tasks()
    client = await make_client(emu, max_sessions=1)

    async def follow() -> Any:
        started = client.tasks.submit("Read the title")
        ref = await started.submitted()
        started.detach()
        return await client.tasks.wait(ref.session_id, ref.task_id)

    async def after() -> None:
        # The task ends its session when it completes; a cancelled follower stops nothing.
        await wait_until(lambda: emu.live_sessions() == [])
        gate = client._runtime.session_gate
        assert gate is not None
        await wait_until(lambda: gate.free == gate.size)

    await sweep(follow, after)
    await closed_cleanly(emu, client, baseline)


@pytest.mark.parametrize("when", ["early", "late"])
async def test_close_cancelled_at_every_await_point(make_remote: MakeRemote, when: When) -> None:
    emu = make_remote(task_duration=5.0)
    point = 1
    while True:
        baseline = asyncio.all_tasks()
        client = AsyncWebRun(emu.api_key, base_url=emu.base_url, rate_limit=None)
        session = await client.sessions.create()
        handle = session.submit("Read the title")
        await handle.submitted()
        doomed = client.tasks.submit("Another")
        probe = Interrupt(client.aclose(), point, when)
        runner = asyncio.ensure_future(probe)
        try:
            await runner
        except asyncio.CancelledError:
            assert probe.fired
        else:
            assert not probe.fired  # a cancel is delivered once closing is done, not lost
        assert handle.final and doomed.final
        await closed_cleanly(emu, client, baseline)
        if not probe.fired:
            break
        point += 1
    assert point >= 2  # closing runs in a task of its own: the caller waits at one point


# -- one test per bug ------------------------------------------------------------------------------


async def test_cancel_during_start_session_releases_the_place_once(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    """Cancelled handles whose start-session is in flight keep their places until their
    sessions are gone: ``max_sessions`` is never exceeded."""
    emu = await make_emulator()
    emu.faults = FaultPlan(rates={"slow": 1.0}, routes=(START,), slow=0.3)
    client = await make_client(emu, max_sessions=2)
    for _ in range(3):
        sent = emu.request_counts.get(START, 0)
        doomed = [client.tasks.submit("Read the title") for _ in range(3)]
        await wait_until(lambda: emu.request_counts.get(START, 0) >= sent + 2)  # noqa: B023
        for handle in doomed:
            await handle.cancel()
        await client.gather(*[client.tasks.submit("Read the title") for _ in range(6)])
    assert emu.peak_live_sessions <= 2
    await nothing_left(emu, client)


async def test_socket_reconnecting_when_detached_does_not_come_back(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(task_duration=30.0)
    client = await make_client(emu)
    handle = client.tasks.submit("Read the title")
    ref = await handle.submitted()
    await wait_until(lambda: emu.open_sockets(ref.session_id) == 1)

    def reconnecting() -> bool:
        return any("_handle_reconnect" in repr(task.get_coro()) for task in asyncio.all_tasks())

    await emu.drop_sockets(ref.session_id)
    await wait_until(reconnecting)
    handle.detach()  # while python-socketio waits to reconnect
    await wait_until(lambda: not reconnecting())
    assert emu.open_sockets(ref.session_id) == 0
    await client.sessions.attach(ref.session_id).terminate()


async def test_client_closed_before_the_loop_runs_again_leaves_no_task(
    make_remote: MakeRemote,
) -> None:
    emu = make_remote()
    baseline = asyncio.all_tasks()
    for _ in range(20):
        client = AsyncWebRun(emu.api_key, base_url=emu.base_url, rate_limit=None)
        handle = client.tasks.submit("Read the title")  # starts the runner, not yet run
        await client.aclose()
        assert handle.final
    await wait_until(lambda: not other_tasks(baseline))
    assert emu.call(lambda: emu.emulator.sessions_created) == 0  # nothing started after close


async def test_leaving_as_completed_early_logs_nothing(
    make_emulator: MakeEmulator, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    emu = await make_emulator(task_duration=0.2)
    client = await make_client(emu)
    handles = [client.tasks.submit(f"Read the title [[duration={n / 10}]]") for n in range(6)]
    with caplog.at_level(logging.ERROR, logger="webrun_async"):
        async for _first in client.as_completed(handles):
            break
        for handle in handles:
            await _outcome(handle)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def _outcome(handle: Any) -> object:
    try:
        return await handle
    except Exception as exc:
        return exc


async def test_gather_raising_leaves_no_error_log_for_later_handles(
    make_emulator: MakeEmulator, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    emu = await make_emulator()
    client = await make_client(emu)
    failing = client.tasks.submit("Read the title [[fail=PAGE_CRASH]] [[duration=0.05]]")
    slow = [client.tasks.submit(f"Read the title [[duration={n / 10}]]") for n in range(2, 7)]
    with caplog.at_level(logging.ERROR, logger="webrun_async"):
        with pytest.raises(TaskFailed):
            await client.gather(failing, *slow)
        for handle in slow:
            await _outcome(handle)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_socket_mode_forgets_settled_tasks_in_the_poll_heap(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(inline_wait=0.05, task_duration=0.1)  # settled by the socket
    client = await make_client(emu, mode="socket")
    for _ in range(4):
        await client.gather(*[client.tasks.submit("Read the title") for _ in range(60)])
    # Each settled task left a stale entry until its deadline (max_duration + margin) before.
    assert client._runtime.poller.size <= 100
