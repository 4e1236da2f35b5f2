"""GET + decode under load: this SDK against the raw floor, httpx + pydantic and ``openai``.

A local server (``local_server.py``, a process of its own) answers ``GET /task/{sid}/{tid}``
with the 3.5 KB completed task answer. Each contender runs ``--concurrency`` workers in a closed
loop (each sends its next request as soon as its last one is answered) for a ``--window`` of
seconds after a warm-up, **each in a fresh process**, in rotating order, ``--rounds`` times:

* ``webrun_async``: ``client.tasks.get(sid, tid)`` (typed ``TaskResult``), pool of 100;
* ``floor``: one ``aiohttp.ClientSession`` (``TCPConnector(limit=100)``) and a typed msgspec
  decoder;
* ``floor + FIFO``: the floor behind an ``asyncio.Semaphore(100)`` (for reference);
* ``httpx + pydantic``: ``httpx.AsyncClient`` (100 connections) and ``model_validate_json``;
* ``openai``: ``AsyncOpenAI(...).get(path, cast_to=Model)``, the package's own request path.

Figures: requests per second, client CPU per request (``time.process_time``), p99 latency of
completed requests, p99 counting the requests still waiting at the end of the window (by their
age: starvation shows there, not in completed latency), and workers that completed nothing.

    python benchmarks/bench_http.py --concurrency 100      # benchmark 2
    python benchmarks/bench_http.py --concurrency 1000     # benchmark 3 (pool of 100)
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
PATH = "/task/a1b2c3d4e5f6/x9y8z7w60000"
POOL = 100

NAMES = ["webrun_async", "floor", "floor + FIFO", "httpx + pydantic", "openai"]


async def make_contender(name: str, base: str) -> tuple[Callable[[], Awaitable[Any]], Any]:
    """The request function of ``name`` and the object to close afterwards."""
    if name == "webrun_async":
        from webrun_async import AsyncWebRun

        client = AsyncWebRun("bench", base_url=base, rate_limit=None, max_connections=POOL)
        return (lambda: client.tasks.get("a1b2c3d4e5f6", "x9y8z7w60000")), client
    if name.startswith("floor"):
        import aiohttp
        import msgspec
        from bench_decode import Completed

        decode = msgspec.json.Decoder(Completed).decode
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=POOL))
        url = base + PATH

        async def get() -> Any:
            async with session.get(url) as response:
                return decode(await response.read())

        if name == "floor":
            return get, session
        gate = asyncio.Semaphore(POOL)

        async def fair() -> Any:
            async with gate:
                return await get()

        return fair, session
    if name == "httpx + pydantic":
        import httpx
        from bench_decode import PCompleted

        limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
        hclient = httpx.AsyncClient(base_url=base, limits=limits, timeout=None)

        async def hget() -> Any:
            response = await hclient.get(PATH)
            return PCompleted.model_validate_json(response.content)

        return hget, hclient
    from bench_decode import OCompleted
    from openai import AsyncOpenAI

    oai = AsyncOpenAI(base_url=base, api_key="bench", max_retries=0)
    return (lambda: oai.get(PATH, cast_to=OCompleted)), oai


async def worker_run(
    name: str, base: str, concurrency: int, warmup: float, window: float
) -> dict[str, Any]:
    request, resource = await make_contender(name, base)
    latencies: list[float] = []
    counts = [0] * concurrency
    started_at: list[float | None] = [None] * concurrency
    measuring = False
    stop = False

    async def worker(index: int) -> None:
        while not stop:
            begun = time.perf_counter()
            started_at[index] = begun
            await request()
            started_at[index] = None
            if measuring:
                latencies.append(time.perf_counter() - begun)
                counts[index] += 1

    tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
    await asyncio.sleep(warmup)
    measuring = True
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(window)
    cpu, wall, end = time.process_time() - cpu0, time.perf_counter() - wall0, time.perf_counter()
    measuring = False
    waiting = [end - begun for begun in started_at if begun is not None]
    stop = True
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    close = getattr(resource, "aclose", None) or resource.close
    await close()
    done = len(latencies)
    everything = sorted(latencies + waiting)
    return {
        "rps": done / wall,
        "cpu_us": cpu / done * 1e6 if done else float("inf"),
        "p99_ms": _p99(sorted(latencies)) * 1e3,
        "p99_all_ms": _p99(everything) * 1e3,
        "starved": sum(1 for c in counts if c == 0),
    }


def _p99(values: list[float]) -> float:
    return values[min(len(values) - 1, int(len(values) * 0.99))] if values else float("nan")


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    figures = medians(results)
    loop = "uvloop" if args.uvloop else "asyncio"
    print(
        f"\nGET + decode, {args.concurrency} concurrent workers, pool of {POOL}, {loop}, "
        f"{args.window:g} s windows, median of {args.rounds} rounds (each in a fresh process)"
    )
    print(machine_summary())
    print(
        f"{'contender':20} {'req/s':>9} {'CPU µs/req':>11} {'p99 ms':>8} {'p99 incl. waiting':>18} "
        f"{'starved':>8}"
    )
    for name, m in figures.items():
        print(
            f"{name:20} {m['rps']:>9,.0f} {m['cpu_us']:>11.1f} {m['p99_ms']:>8.1f} "
            f"{m['p99_all_ms']:>18.1f} {m['starved']:>5.0f}/{args.concurrency}"
        )
    sdk, floor = figures.get("webrun_async"), figures.get("floor")
    if sdk is None or floor is None:
        return
    print("\ntargets:")
    if args.concurrency <= POOL:
        ratio = sdk["cpu_us"] / floor["cpu_us"]
        print(
            f"  client CPU per request at most 1.2x the floor   {ratio:5.2f}x  "
            f"{verdict(ratio <= 1.2)}"
        )
        if "openai" in figures:
            speed = sdk["rps"] / figures["openai"]["rps"]
            print(
                f"  at least 10x the openai package's throughput    {speed:5.1f}x  "
                f"{verdict(speed >= 10)}"
            )
    else:
        ratio = sdk["rps"] / floor["rps"]
        print(
            f"  throughput at least 0.8x the floor              {ratio:5.2f}x  "
            f"{verdict(ratio >= 0.8)}"
        )
        print(
            f"  no caller left without a completed request      {sdk['starved']:.0f} starved  "
            f"{verdict(sdk['starved'] == 0)}"
        )
        print(
            f"  p99 counting the requests still waiting         {sdk['p99_all_ms']:.0f} ms "
            f"(floor: {floor['p99_all_ms']:.0f} ms)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--window", type=float, default=3.0)
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("--uvloop", action="store_true", help="run the clients on uvloop")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        install_uvloop(args.uvloop)
        result = asyncio.run(
            worker_run(args.worker, args.base, args.concurrency, args.warmup, args.window)
        )
        print(json.dumps(result))
        return
    names = [n for n in NAMES if not args.only or any(o in n for o in args.only)]
    arguments = [
        "--concurrency", str(args.concurrency),
        "--warmup", str(args.warmup), "--window", str(args.window),
        *(["--uvloop"] if args.uvloop else []),
    ]  # fmt: skip
    server = start_server(HERE / "local_server.py", "--chunks", "1", "--task", "completed")
    try:
        results = interleaved_rounds(
            __file__,
            names,
            server.base_url,
            args.rounds,
            arguments,
            lambda run: f"{run['rps']:,.0f} req/s",
        )
    finally:
        server.stop()
    report(results, args)


if __name__ == "__main__":
    main()
