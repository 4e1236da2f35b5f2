"""The push path: a socket.io event, to a typed object, to the caller awaiting that task.

A local server (``push_server.py``, a process of its own: aiohttp with a python-socketio
``AsyncServer``) sends ``message`` events to one session's sockets on request, each the 3.5 KB
``task_completed`` answer of its own task with the send time (``time.time()``) added. The
contenders follow the same tasks over the same events, in the same run, in rotating order,
``--rounds`` times (medians are reported):

* ``bare handler`` (the floor): a ``socketio.AsyncClient`` whose ``message`` handler converts
  the payload into a typed msgspec Struct (``msgspec.convert``) and resolves that task's
  ``asyncio.Future``, which a coroutine awaits;
* ``webrun_async``: ``AsyncWebRun(mode="socket", rate_limit=None)`` with one handle per task
  (``client.tasks.attach(TaskRef(...))``), each awaited by a coroutine. The result travels
  ``_socket.py`` -> ``decode_event`` -> ``Runtime.dispatch`` -> ``TaskHandle._offer`` -> the
  handle's future -> the awaiting caller.

Set-up is not timed: connecting, attaching (each handle polls once and the session's socket
connects) and waiting until those first polls are answered and nothing else is due. Then the
clock starts, the server is asked for the events, and the clock stops when the last awaiting
coroutine has woken up. Figures:

* client CPU per event (``time.process_time``: the server shares the cores), with the events
  sent as fast as the server can (``--events``, 20,000), and events per second of wall time;
* latency from the server's send time to the moment the awaiting coroutine wakes up (both
  ``time.time()``, same machine), p50 and p99, with ``--paced-events`` (2,000) sent at
  ``--rate`` (200) events per second; the client CPU per event of that run is shown too;
* push against poll: the client CPU of one ``client.tasks.get(sid, tid)`` (one at a time, in a
  closed loop, ``--polls`` of them) times the 30 polls of a 60 s task polled every 2 s, against
  the CPU of one pushed completion through the SDK (the paced figure, the higher one: a real
  completion arrives on its own; the burst figure is shown beside it).

    pip install -e '.[bench]' && python benchmarks/bench_push.py [--events 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import socketio  # type: ignore[import-untyped]
from bench_common import machine_summary, quantile, start_server, verdict
from payloads import task_running

from webrun_async import AsyncWebRun, TaskRef

HERE = Path(__file__).resolve().parent
API_KEY = "bench-key"
BARE = "bare handler (socketio + msgspec)"
SDK = "webrun_async"
POLL = "poll: client.tasks.get()"
POLL_COUNT = 30  # a 60 s task polled every 2 s
SETTLE_TIMEOUT = 120.0
_sessions = itertools.count(1)


def task_id(index: int) -> str:
    """The task id the server's payload ``index`` carries."""
    return str(task_running(index)["taskId"])


def new_session_id() -> str:
    """A fresh fake session id, so that no run sees another's events."""
    return f"benchpush{next(_sessions):05d}"


# -- the floor's typed object ----------------------------------------------------------------


class BareFile(msgspec.Struct, rename="camel"):
    source: str
    download_url: str
    filename: str
    timestamp: int


class BareUrl(msgspec.Struct):
    url: str
    timestamp: float


class BareCapture(msgspec.Struct, rename="camel"):
    id: str
    task_id: str
    urls: list[BareUrl]


class BareData(msgspec.Struct):
    message: str
    files: list[BareFile]
    network: list[BareCapture]


class BareUsage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    completion_time: float
    cost: float


class BareCompleted(msgspec.Struct, rename="camel"):
    success: bool
    session_id: str
    task_id: str
    type: str
    data: BareData
    usage: BareUsage
    completed_at: datetime
    sent_at: float


# -- one measured run --------------------------------------------------------------------------


@dataclass
class Run:
    """What one run of one contender measured."""

    events: int
    cpu: float  # seconds of client CPU from the request for events to the last wake-up
    wall: float  # seconds of wall time over the same span
    latencies: list[float]  # seconds from each event's send to its caller's wake-up

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.events * 1e6

    @property
    def rate(self) -> float:
        return self.events / self.wall


async def trigger_and_wait(
    control: aiohttp.ClientSession,
    base: str,
    session_id: str,
    waits: list[tuple[str, Awaitable[Any]]],
    rate: float,
) -> Run:
    """Start one coroutine per ``(task id, awaitable)``, then time the events' arrival.

    The clock runs from the request that asks the server for the events to the moment the last
    coroutine has woken up from its awaitable.
    """
    loop = asyncio.get_running_loop()
    woke: dict[str, float] = {}
    finished: asyncio.Future[None] = loop.create_future()
    remaining = len(waits)

    async def waiter(tid: str, awaitable: Awaitable[Any]) -> None:
        nonlocal remaining
        await awaitable
        woke[tid] = time.time()
        remaining -= 1
        if remaining == 0:
            finished.set_result(None)

    tasks = [loop.create_task(waiter(tid, awaitable)) for tid, awaitable in waits]
    await asyncio.sleep(0)  # every waiter is now waiting
    gc.collect()  # the set-up's garbage is not the burst's
    ask = {"sessionId": session_id, "count": len(waits), "rate": rate}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    async with control.post(base + "/_bench/go", json=ask) as response:
        response.raise_for_status()
        await response.read()
    try:
        async with asyncio.timeout(60 + len(waits) / max(rate, 500)):
            await finished
    except TimeoutError:
        for task in tasks:
            task.cancel()
        raise RuntimeError(
            f"only {len(woke)} of {len(waits)} awaiting callers woke up in time"
        ) from None
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    async with control.get(base + f"/_bench/sent/{session_id}") as response:
        sent: list[float] = msgspec.json.decode(await response.read())
    latencies = [woke[task_id(i)] - sent[i] for i in range(len(waits))]
    return Run(len(waits), cpu, wall, latencies)


# -- the contenders ------------------------------------------------------------------------------


async def run_bare(control: aiohttp.ClientSession, base: str, count: int, rate: float) -> Run:
    session_id = new_session_id()
    loop = asyncio.get_running_loop()
    futures: dict[str, asyncio.Future[BareCompleted]] = {
        task_id(i): loop.create_future() for i in range(count)
    }
    convert = msgspec.convert

    def on_message(payload: Any) -> None:
        event = convert(payload, BareCompleted)
        future = futures.get(event.task_id)
        if future is not None and not future.done():
            future.set_result(event)

    sio = socketio.AsyncClient(
        reconnection=False, logger=False, engineio_logger=False, handle_sigint=False
    )
    sio.on("message", on_message)
    await sio.connect(base, auth={"sessionId": session_id}, transports=["websocket"])
    try:
        return await trigger_and_wait(control, base, session_id, list(futures.items()), rate)
    finally:
        await sio.disconnect()


async def settle(client: AsyncWebRun, session_id: str, handles: list[Any]) -> None:
    """Wait until the session's socket is connected and every handle's first poll is done,
    with no poll due for a minute (``mode="socket"``: only the deadline poll remains)."""
    runtime = client._runtime
    loop = asyncio.get_running_loop()
    give_up = loop.time() + SETTLE_TIMEOUT
    while True:
        state = runtime.sessions.get(session_id)
        channel = state.channel if state is not None else None
        horizon = loop.time() + 60
        if (
            channel is not None
            and channel.connected
            and not runtime.poller._in_flight
            and all(h._t.due is None or h._t.due > horizon for h in handles)
        ):
            break
        if loop.time() > give_up:
            raise RuntimeError("webrun_async: the socket or the first polls did not settle")
        await asyncio.sleep(0.05)
    if any(h.done() for h in handles):
        raise RuntimeError("webrun_async: a handle resolved before the events were sent")


async def run_sdk(control: aiohttp.ClientSession, base: str, count: int, rate: float) -> Run:
    session_id = new_session_id()
    async with AsyncWebRun(API_KEY, base_url=base, mode="socket", rate_limit=None) as client:
        ids = [task_id(i) for i in range(count)]
        handles = [client.tasks.attach(TaskRef(session_id=session_id, task_id=t)) for t in ids]
        await settle(client, session_id, handles)
        waits: list[tuple[str, Awaitable[Any]]] = list(zip(ids, handles, strict=True))
        return await trigger_and_wait(control, base, session_id, waits, rate)


PUSHERS: dict[str, Callable[[aiohttp.ClientSession, str, int, float], Awaitable[Run]]] = {
    BARE: run_bare,
    SDK: run_sdk,
}


async def run_polls(base: str, polls: int, rate: float) -> tuple[float, float]:
    """(polls per wall second, client CPU microseconds per poll): ``client.tasks.get`` one at a
    time, back to back (``rate`` 0: a closed loop) or started at ``rate`` per second, after an
    uncounted warm-up on the same client."""
    session_id, tid = new_session_id(), task_id(0)
    loop = asyncio.get_running_loop()
    async with AsyncWebRun(API_KEY, base_url=base, rate_limit=None) as client:
        for _ in range(min(200, polls)):
            await client.tasks.get(session_id, tid)
        gc.collect()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        start = loop.time()
        for index in range(polls):
            if rate > 0:
                delay = start + index / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            state = await client.tasks.get(session_id, tid)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if state.state != "running":
        raise RuntimeError(f"the poll answered {state!r}, expected a running task")
    return polls / wall, cpu / polls * 1e6


# -- rounds and report ---------------------------------------------------------------------------


@dataclass
class Figures:
    """Medians over the rounds for one pushing contender."""

    rate: float  # events per wall second, burst
    cpu_us: float  # client CPU µs per event, burst
    paced_cpu_us: float  # client CPU µs per event, paced
    p50_ms: float
    p99_ms: float


@dataclass
class PollFigures:
    """Medians over the rounds for polling."""

    rate: float  # polls per wall second, closed loop
    cpu_us: float  # client CPU µs per poll, closed loop
    paced_cpu_us: float  # client CPU µs per poll, started at the paced rate


def rotated(names: list[str], round_: int) -> list[str]:
    shift = round_ % len(names)
    return names[shift:] + names[:shift]


async def run(args: argparse.Namespace) -> tuple[dict[str, Figures], PollFigures]:
    most = max(args.events, args.paced_events)
    server = start_server(HERE / "push_server.py", "--prebuild", str(most))
    try:
        base = server.base_url
        names = [*PUSHERS, POLL]
        bursts: dict[str, list[Run]] = {n: [] for n in PUSHERS}
        paced: dict[str, list[Run]] = {n: [] for n in PUSHERS}
        polls: list[tuple[float, float, float]] = []
        async with aiohttp.ClientSession() as control:
            # warm-up, not counted: first connections, lazy imports, caches
            for pusher in PUSHERS.values():
                await pusher(control, base, min(2_000, args.events), 0)
                await pusher(control, base, min(200, args.paced_events), args.rate)
            await run_polls(base, min(500, args.polls), 0)
            for round_ in range(args.rounds):
                for name in rotated(names, round_):
                    if name == POLL:
                        rate, cpu = await run_polls(base, args.polls, 0)
                        _, paced_cpu = await run_polls(base, args.paced_events, args.rate)
                        polls.append((rate, cpu, paced_cpu))
                        print(
                            f"  round {round_ + 1}: {name}: {rate:,.0f} polls/s, "
                            f"{cpu:.1f} µs/poll; paced {paced_cpu:.1f} µs/poll",
                            file=sys.stderr,
                        )
                        continue
                    burst = await PUSHERS[name](control, base, args.events, 0)
                    pace = await PUSHERS[name](control, base, args.paced_events, args.rate)
                    bursts[name].append(burst)
                    paced[name].append(pace)
                    print(
                        f"  round {round_ + 1}: {name}: burst {burst.rate:,.0f} ev/s, "
                        f"{burst.cpu_us:.1f} µs/ev; paced {pace.cpu_us:.1f} µs/ev, "
                        f"p50 {quantile(pace.latencies, 0.5) * 1e3:.2f} ms, "
                        f"p99 {quantile(pace.latencies, 0.99) * 1e3:.2f} ms",
                        file=sys.stderr,
                    )
    finally:
        server.stop()
    median = statistics.median
    results = {
        name: Figures(
            rate=median(r.rate for r in bursts[name]),
            cpu_us=median(r.cpu_us for r in bursts[name]),
            paced_cpu_us=median(r.cpu_us for r in paced[name]),
            p50_ms=median(quantile(r.latencies, 0.5) * 1e3 for r in paced[name]),
            p99_ms=median(quantile(r.latencies, 0.99) * 1e3 for r in paced[name]),
        )
        for name in PUSHERS
    }
    poll = PollFigures(*(median(p[i] for p in polls) for i in range(3)))
    return results, poll


def report(
    results: dict[str, Figures], poll: PollFigures, args: argparse.Namespace, load: str
) -> None:
    print(
        f"\nPush path: socket.io event -> typed object -> awaiting caller, median of "
        f"{args.rounds} rounds"
    )
    print(machine_summary(("python-socketio", "python-engineio")))
    print(f"load average (1 min) before the run: {load} (other work on these cores)")
    print(
        f"burst: {args.events:,} events (3.5 KB task_completed, one task each, all in one "
        f"session) as fast as the server sends them; paced: {args.paced_events:,} events at "
        f"{args.rate:g}/s; poll: client.tasks.get() one at a time, {args.polls:,} back to back "
        f"and {args.paced_events:,} at {args.rate:g}/s"
    )
    bare = results[BARE]
    print(
        f"\n{'contender':34} {'burst ev/s':>11} {'burst µs/ev':>12} {'vs bare':>8} "
        f"{'paced µs/ev':>12} {'p50 ms':>7} {'p99 ms':>7}"
    )
    for name, f in results.items():
        print(
            f"{name:34} {f.rate:>11,.0f} {f.cpu_us:>12.1f} {f.cpu_us / bare.cpu_us:>7.2f}x "
            f"{f.paced_cpu_us:>12.1f} {f.p50_ms:>7.2f} {f.p99_ms:>7.2f}"
        )
    print(
        f"{POLL + ' (per poll)':34} {poll.rate:>11,.0f} {poll.cpu_us:>12.1f} {'':>8} "
        f"{poll.paced_cpu_us:>12.1f}"
    )

    sdk = results[SDK]
    ratio = sdk.cpu_us / bare.cpu_us
    polled = POLL_COUNT * poll.cpu_us
    share = sdk.cpu_us / polled
    paced_share = sdk.paced_cpu_us / (POLL_COUNT * poll.paced_cpu_us)
    print("\ntargets (webrun_async):")
    print(
        f"  {'client CPU per event <= 1.2x the bare handler':48} {ratio:7.2f}x     "
        f"{verdict(ratio <= 1.2)}"
    )
    print(
        f"  {f'p99 <= 2 ms at {args.rate:g} events/s':48} {sdk.p99_ms:7.2f} ms   "
        f"{verdict(sdk.p99_ms <= 2.0)}"
    )
    print(
        f"  {'pushed completion <= 1/20 of polling it':48} {'1/' + f'{1 / share:.0f}':>7}      "
        f"{verdict(share <= 1 / 20)}"
    )
    print(
        f"    push {sdk.cpu_us:.0f} µs (burst) against {POLL_COUNT} polls x {poll.cpu_us:.0f} µs "
        f"(back to back) = {polled / 1e3:.2f} ms, a 60 s task polled every 2 s"
    )
    print(
        f"    both one at a time at {args.rate:g}/s: push {sdk.paced_cpu_us:.0f} µs against "
        f"{POLL_COUNT} x {poll.paced_cpu_us:.0f} µs = 1/{1 / paced_share:.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000, help="events in each burst")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paced-events", type=int, default=2_000, help="events in a paced run")
    parser.add_argument("--rate", type=float, default=200.0, help="paced events per second")
    parser.add_argument("--polls", type=int, default=2_000, help="polls in a closed-loop run")
    args = parser.parse_args()
    before = os.getloadavg()[0]
    results, poll = asyncio.run(run(args))
    report(results, poll, args, f"{before:.2f}")


if __name__ == "__main__":
    main()
