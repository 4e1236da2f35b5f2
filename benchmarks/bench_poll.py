"""Open-loop polling: thousands of task handles, each polled every 2 s on average.

A local server (``local_server.py --task running``, a process of its own) answers
``GET /task/{sid}/{tid}`` with a task still running, so nothing ever finishes. Each contender
holds ``--tasks`` waiting tasks, every one of them polled every 2 s on average, **each contender
in a fresh process**, in rotating order, ``--rounds`` times; after a warm-up (the first polls all
start at once), a ``--window`` measures:

* ``webrun_async``: ``client.tasks.attach(...)`` handles in ``mode="poll"``, one per task, with
  ``poll_interval=1.6``: the SDK waits 1 to 1.5 intervals between polls (spread out so polls do
  not bunch up), 2 s on average. Polls are counted and timed around ``Runtime.fetch``, the
  function the SDK's one poll scheduler is given;
* ``floor``: one ``aiohttp.ClientSession`` (pool of 100, as the SDK's) with a typed msgspec
  decoder, and one ``asyncio`` task per waiting task that polls at a fixed 2 s interval from a
  random phase;
* with ``--peers``: the same loop with ``httpx.AsyncClient`` + pydantic, and with the
  ``openai`` package's own request path.

Figures: the poll rate achieved against the target (tasks / 2 s), client CPU in cores and per
poll (``time.process_time``), and the latency of a poll (p50 / p99).

    python benchmarks/bench_poll.py [--tasks 5000] [--rounds 3] [--peers]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench_common import (
    install_uvloop,
    interleaved_rounds,
    machine_summary,
    medians,
    start_server,
    verdict,
)

HERE = Path(__file__).resolve().parent
INTERVAL = 2.0
POOL = 100
NAMES = ["webrun_async", "floor"]
PEERS = ["httpx + pydantic", "openai"]


class Recorder:
    """Counts and times the polls that end inside the measured window."""

    def __init__(self) -> None:
        self.measuring = False
        self.latencies: list[float] = []

    async def timed(self, poll: Awaitable[Any]) -> Any:
        begun = time.perf_counter()
        answer = await poll
        if self.measuring:
            self.latencies.append(time.perf_counter() - begun)
        return answer


async def run_sdk(base: str, count: int, recorder: Recorder) -> Callable[[], Awaitable[None]]:
    from webrun_async import AsyncWebRun, TaskRef
    from webrun_async._tasks import runtime as runtime_module

    original = runtime_module.Runtime.fetch

    def counted(self: Any, session_id: str, task_id: str) -> Awaitable[Any]:
        return recorder.timed(original(self, session_id, task_id))

    runtime_module.Runtime.fetch = counted  # type: ignore[assignment,method-assign]
    client = AsyncWebRun(
        "bench",
        base_url=base,
        rate_limit=None,
        max_connections=POOL,
        mode="poll",
        poll_interval=INTERVAL / 1.25,  # waits of 1 to 1.5 intervals: 2 s on average
        cleanup_timeout=5,
    )
    handles = [
        client.tasks.attach(TaskRef(session_id=f"s{i:07d}", task_id=f"t{i:07d}"))
        for i in range(count)
    ]

    async def close() -> None:
        for handle in handles:
            handle.detach()  # the local server has no sessions to terminate
        await client.aclose()

    return close


async def run_loop(
    name: str, base: str, count: int, recorder: Recorder
) -> Callable[[], Awaitable[None]]:
    """The hand-written loop: one task per waiting task, a poll every 2 s from a random phase."""
    poll, close_client = await make_getter(name, base)

    async def waiter(index: int) -> None:
        loop = asyncio.get_running_loop()
        path = f"/task/s{index:07d}/t{index:07d}"
        due = loop.time() + random.random() * INTERVAL
        while True:
            await asyncio.sleep(due - loop.time())
            due += INTERVAL
            await recorder.timed(poll(path))

    tasks = [asyncio.create_task(waiter(i)) for i in range(count)]

    async def close() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close_client()

    return close


async def make_getter(
    name: str, base: str
) -> tuple[Callable[[str], Awaitable[Any]], Callable[[], Awaitable[None]]]:
    """``name``'s GET + decode of a path, and how to close it."""
    if name == "floor":
        import aiohttp
        import msgspec
        from bench_decode import Running

        decode = msgspec.json.Decoder(Running).decode
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=POOL))

        async def get(path: str) -> Any:
            async with session.get(base + path) as response:
                return decode(await response.read())

        return get, session.close
    if name == "httpx + pydantic":
        import httpx
        from bench_decode import PRunning

        limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
        hclient = httpx.AsyncClient(base_url=base, limits=limits, timeout=None)

        async def hget(path: str) -> Any:
            response = await hclient.get(path)
            return PRunning.model_validate_json(response.content)

        return hget, hclient.aclose
    from bench_decode import ORunning
    from openai import AsyncOpenAI

    oai = AsyncOpenAI(base_url=base, api_key="bench", max_retries=0)
    return (lambda path: oai.get(path, cast_to=ORunning)), oai.close


async def worker_run(
    name: str, base: str, count: int, warmup: float, window: float
) -> dict[str, Any]:
    recorder = Recorder()
    if name == "webrun_async":
        close = await run_sdk(base, count, recorder)
    else:
        close = await run_loop(name, base, count, recorder)
    await asyncio.sleep(warmup)
    recorder.measuring = True
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(window)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    recorder.measuring = False
    await close()
    latencies = sorted(recorder.latencies)
    polls = len(latencies)
    return {
        "rate": polls / wall,
        "achieved": polls / wall / (count / INTERVAL),
        "cores": cpu / wall,
        "cpu_us": cpu / polls * 1e6 if polls else float("inf"),
        "p50_ms": latencies[len(latencies) // 2] * 1e3 if latencies else float("nan"),
        "p99_ms": latencies[min(polls - 1, int(polls * 0.99))] * 1e3 if latencies else float("nan"),
    }


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    figures = medians(results)
    loop = "uvloop" if args.uvloop else "asyncio"
    target = args.tasks / INTERVAL
    print(
        f"\nOpen-loop polling: {args.tasks:,} waiting tasks, one poll each every {INTERVAL:g} s "
        f"(target {target:,.0f} polls/s), pool of {POOL}, {loop}, {args.window:g} s windows, "
        f"median of {args.rounds} rounds (each in a fresh process)"
    )
    print(machine_summary())
    print(
        f"{'contender':20} {'polls/s':>9} {'of target':>10} {'client cores':>13} "
        f"{'CPU µs/poll':>12} {'p50 ms':>7} {'p99 ms':>7}"
    )
    for name, m in figures.items():
        print(
            f"{name:20} {m['rate']:>9,.0f} {m['achieved']:>10.3f} {m['cores']:>13.2f} "
            f"{m['cpu_us']:>12.1f} {m['p50_ms']:>7.1f} {m['p99_ms']:>7.1f}"
        )
    sdk, floor = figures.get("webrun_async"), figures.get("floor")
    if sdk is None or floor is None:
        return
    ratio = sdk["cpu_us"] / floor["cpu_us"]
    print("\ntargets:")
    print(
        f"  at least 99% of the target poll rate       {sdk['achieved']:6.3f}   "
        f"{verdict(sdk['achieved'] >= 0.99)}"
    )
    print(f"  client CPU per poll at most 1.25x the floor {ratio:5.2f}x   {verdict(ratio <= 1.25)}")
    print(
        f"  p99 poll latency at most 10 ms              {sdk['p99_ms']:5.1f} ms "
        f"{verdict(sdk['p99_ms'] <= 10)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds before measuring")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--peers", action="store_true", help="also run httpx + pydantic and openai")
    parser.add_argument("--uvloop", action="store_true", help="run the clients on uvloop")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        install_uvloop(args.uvloop)
        result = asyncio.run(
            worker_run(args.worker, args.base, args.tasks, args.warmup, args.window)
        )
        print(json.dumps(result))
        return
    names = NAMES + (PEERS if args.peers else [])
    arguments = [
        "--tasks", str(args.tasks),
        "--warmup", str(args.warmup), "--window", str(args.window),
        *(["--uvloop"] if args.uvloop else []),
    ]  # fmt: skip
    server = start_server(HERE / "local_server.py", "--chunks", "1", "--task", "running")
    try:
        results = interleaved_rounds(
            __file__,
            names,
            server.base_url,
            args.rounds,
            arguments,
            lambda run: f"{run['achieved']:.3f} of target, {run['cpu_us']:.0f} µs/poll",
        )
    finally:
        server.stop()
    report(results, args)


if __name__ == "__main__":
    main()
