"""``SessionLease`` on its own: its phases, and the place it holds given back exactly once.

The host here is a small real implementation of ``LeaseHost`` (the runtime's part): it runs
the request in a task, registers sessions in a dict and records what it was asked to end.
End-to-end behaviour over real sockets is in ``test_session_lifecycle.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from webrun_async._core.gate import FifoGate
from webrun_async._tasks.lease import SessionLease
from webrun_async._tasks.registry import SessionState
from webrun_async.types.sessions import SessionInfo

R = TypeVar("R")


class Host:
    def __init__(self) -> None:
        self.sessions: dict[str, SessionState] = {}
        self.reaped: list[str] = []
        self.loose: list[asyncio.Future[Any]] = []

    def track(self, work: Coroutine[Any, Any, R]) -> asyncio.Future[R]:
        task = asyncio.ensure_future(work)
        self.loose.append(task)
        return task

    def register(
        self, session_id: str, info: SessionInfo | None, lease: SessionLease
    ) -> SessionState:
        state = self.sessions[session_id] = SessionState(session_id, info)
        state.lease = lease
        return state

    def reap(self, state: SessionState, why: str) -> None:
        self.reaped.append(state.id)
        assert state.lease is not None
        state.lease.ended()


def info(session_id: str) -> SessionInfo:
    return SessionInfo(session_id=session_id)


def started(answer: SessionInfo) -> tuple[str, SessionInfo]:
    return answer.session_id, answer


async def test_a_session_started_and_ended_gives_its_place_back_once() -> None:
    gate, host = FifoGate(1), Host()
    lease = SessionLease(host, gate)
    await lease.acquire()
    assert gate.free == 0 and lease.holds_slot

    async def send() -> SessionInfo:
        return info("s1")

    answer, state = await lease.start(send, started)
    assert answer.session_id == "s1" and state is host.sessions["s1"]
    assert lease.phase == "live" and gate.free == 0
    lease.ended()
    lease.ended()  # idempotent: the place is not given back twice
    assert gate.free == 1 and lease.phase == "gone"
    with pytest.raises(RuntimeError):
        gate.release()  # the gate itself refuses a release it never handed out


async def test_abandoned_while_the_request_is_in_flight_ends_the_session_on_arrival() -> None:
    gate, host = FifoGate(1), Host()
    lease = SessionLease(host, gate)
    await lease.acquire()
    answer = asyncio.get_running_loop().create_future()

    async def send() -> SessionInfo:
        result: SessionInfo = await answer
        return result

    caller = asyncio.ensure_future(lease.start(send, started))
    await asyncio.sleep(0)  # the request is out
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert lease.phase == "starting" and gate.free == 0  # the session may exist: place kept
    answer.set_result(info("s2"))
    await asyncio.gather(*host.loose)
    assert host.reaped == ["s2"] and gate.free == 1


async def test_abandoned_after_the_answer_arrived_ends_the_session_at_once() -> None:
    gate, host = FifoGate(1), Host()
    lease = SessionLease(host, gate)
    await lease.acquire()

    async def send() -> SessionInfo:
        return info("s3")

    await lease.start(send, started)
    lease.abandon()
    assert host.reaped == ["s3"] and gate.free == 1


async def test_a_failed_request_gives_the_place_back() -> None:
    gate, host = FifoGate(1), Host()
    lease = SessionLease(host, gate)
    await lease.acquire()

    async def send() -> SessionInfo:
        raise ConnectionError("refused")

    with pytest.raises(ConnectionError):
        await lease.start(send, started)
    assert lease.phase == "gone" and gate.free == 1 and host.sessions == {}
    with pytest.raises(RuntimeError):
        await lease.start(send, started)  # a lease starts once


async def test_abandoned_before_sending_holds_nothing() -> None:
    gate, host = FifoGate(1), Host()
    lease = SessionLease(host, gate)
    await lease.acquire()
    lease.abandon()
    assert lease.phase == "gone" and gate.free == 1


async def test_an_answer_that_leaves_no_session_running_ends_the_lease() -> None:
    gate, host = FifoGate(1), Host()
    lease = SessionLease(host, gate)
    await lease.acquire()

    async def send() -> str:
        return "final"

    answer, state = await lease.start(send, lambda _answer: None)
    assert (answer, state) == ("final", None)
    assert lease.phase == "gone" and gate.free == 1
