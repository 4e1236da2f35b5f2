"""The FIFO admission gate serves callers strictly in arrival order."""

from __future__ import annotations

import asyncio

import anyio
import anyio.lowlevel

from webrun_async._core.gate import FifoGate


async def test_waiters_are_admitted_in_arrival_order() -> None:
    gate = FifoGate(1)
    await gate.acquire()
    order: list[int] = []

    async def waiter(i: int) -> None:
        await gate.acquire()
        order.append(i)
        gate.release()

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(waiter, i)
        while gate.waiting < 5:
            await anyio.lowlevel.checkpoint()
        gate.release()
    assert order == [0, 1, 2, 3, 4]


async def test_newcomer_does_not_overtake_a_queued_waiter() -> None:
    gate = FifoGate(1)
    await gate.acquire()
    order: list[str] = []

    async def queued() -> None:
        await gate.acquire()
        order.append("queued")
        gate.release()

    task = asyncio.create_task(queued())
    while gate.waiting < 1:
        await anyio.lowlevel.checkpoint()
    gate.release()  # hands the place to the queued waiter, not to whoever asks next
    await gate.acquire()  # the newcomer, arriving before the waiter has run
    order.append("newcomer")
    gate.release()
    await task
    assert order == ["queued", "newcomer"]


async def test_cancelled_waiter_is_skipped_and_loses_no_place() -> None:
    gate = FifoGate(1)
    await gate.acquire()
    admitted: list[int] = []

    async def waiter(i: int) -> None:
        await gate.acquire()
        admitted.append(i)
        gate.release()

    first = asyncio.create_task(waiter(1))
    second = asyncio.create_task(waiter(2))
    while gate.waiting < 2:
        await anyio.lowlevel.checkpoint()
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    gate.release()
    await second
    assert admitted == [2]
    await gate.acquire()  # the place came back: the gate is not stuck
    gate.release()


async def test_waiter_cancelled_after_being_handed_the_place_passes_it_on() -> None:
    gate = FifoGate(1)
    await gate.acquire()
    first = asyncio.create_task(gate.acquire())
    second = asyncio.create_task(gate.acquire())
    while gate.waiting < 2:
        await anyio.lowlevel.checkpoint()
    gate.release()  # the place goes to `first`...
    first.cancel()  # ...which is cancelled before it runs
    await asyncio.gather(first, return_exceptions=True)
    await second  # and `second` gets it instead
    gate.release()
    await gate.acquire()
    gate.release()
