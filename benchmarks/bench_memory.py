"""Memory per pending task handle, in a fresh process for each count.

Each handle follows its own task (``client.tasks.attach``, one session each, the way one-shot
tasks are held) in ``poll`` mode against a local server that answers "running"; after every
handle's first poll, it waits for the next (an hour away): that is a pending handle. Sockets
aside (poll mode), as the target says. For scale, the same process shape is measured with a bare
``asyncio`` future per waiter and with an ``asyncio`` task sleeping per waiter.

The figure is the growth of resident memory (``VmRSS``) divided by the count; ``--trace`` adds
the Python allocations ``tracemalloc`` sees, measured in a separate process (tracing itself
takes memory, so a traced process's RSS would overstate the growth).

    python benchmarks/bench_memory.py [--counts 10000,100000] [--trace]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tracemalloc
from pathlib import Path
from typing import Any

from bench_common import machine_summary, run_worker, start_server, status_mb, verdict

HERE = Path(__file__).resolve().parent
TARGET_BYTES = 2.5 * 1024
SHAPES = ["webrun_async handle", "asyncio future (reference)", "asyncio task + sleep (reference)"]


async def handles(count: int, base: str) -> list[Any]:
    from webrun_async import AsyncWebRun, TaskRef
    from webrun_async._tasks import runtime as runtime_module

    polled = 0
    original = runtime_module.Runtime.fetch

    async def counted(self: Any, session_id: str, task_id: str) -> Any:
        nonlocal polled
        answer = await original(self, session_id, task_id)
        polled += 1
        return answer

    runtime_module.Runtime.fetch = counted  # type: ignore[method-assign]
    client = AsyncWebRun("bench", base_url=base, rate_limit=None, mode="poll", poll_interval=3600)
    await client.tasks.get("warm", "up")  # the pool, the imports and the decoders are ready
    kept = [
        client.tasks.attach(TaskRef(session_id=f"s{i:07d}", task_id=f"t{i:07d}"))
        for i in range(count)
    ]
    # Every handle had its first poll and now waits for its next (the count is kept by the
    # patched ``Runtime.fetch``, the poller's fetch function, which has no event to wait on).
    while polled < count:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    kept.append(client)
    return kept


async def futures(count: int, base: str) -> list[Any]:
    loop = asyncio.get_running_loop()
    return [loop.create_future() for _ in range(count)]


async def sleepers(count: int, base: str) -> list[Any]:
    kept = [asyncio.create_task(asyncio.sleep(3600)) for _ in range(count)]
    await asyncio.sleep(0.1)  # every task has started and sleeps
    return kept


async def measure(shape: str, count: int, base: str, trace: bool) -> dict[str, Any]:
    make = {SHAPES[0]: handles, SHAPES[1]: futures, SHAPES[2]: sleepers}[shape]
    if shape == SHAPES[0]:
        # Warm the SDK up first (imports, the event loop's machinery) with one handle.
        import webrun_async  # noqa: F401
    gc.collect()
    if trace:
        tracemalloc.start()
    before_rss = int(status_mb("VmRSS") * 1024 * 1024)
    before_traced = tracemalloc.get_traced_memory()[0] if trace else 0
    kept = await make(count, base)
    gc.collect()
    after_rss = int(status_mb("VmRSS") * 1024 * 1024)
    after_traced = tracemalloc.get_traced_memory()[0] if trace else 0
    result = {
        "rss_per": (after_rss - before_rss) / count,
        "traced_per": (after_traced - before_traced) / count if trace else None,
    }
    del kept
    return result


def run_config(shape: str, count: int, base: str, trace: bool) -> dict[str, Any]:
    arguments = ["--worker", shape, "--count", str(count), "--base", base]
    if trace:
        arguments.append("--trace")
    return run_worker(__file__, arguments)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--counts", default="10000,100000")
    parser.add_argument("--trace", action="store_true", help="also measure with tracemalloc")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = asyncio.run(measure(args.worker, args.count, args.base, args.trace))
        print(json.dumps(result))
        return
    counts = [int(c) for c in args.counts.split(",")]
    server = start_server(HERE / "local_server.py", "--chunks", "1", "--task", "running")
    try:
        rows = []
        for count in counts:
            for shape in SHAPES:
                result = run_config(shape, count, server.base_url, False)
                if args.trace:
                    traced = run_config(shape, count, server.base_url, True)
                    result["traced_per"] = traced["traced_per"]
                rows.append((shape, count, result))
    finally:
        server.stop()
    print("Memory per pending waiter, one fresh process per row")
    print(machine_summary())
    print(f"{'shape':34} {'count':>8} {'RSS bytes each':>15} {'traced bytes each':>18}")
    for shape, count, result in rows:
        traced = result["traced_per"]
        traced_text = f"{traced:,.0f}" if traced is not None else "-"
        print(f"{shape:34} {count:>8,} {result['rss_per']:>15,.0f} {traced_text:>18}")
    print("\ntarget: at most 2.5 KB (2,560 bytes) per pending handle")
    for shape, count, result in rows:
        if shape == SHAPES[0]:
            outcome = verdict(result["rss_per"] <= TARGET_BYTES)
            print(f"  {count:>8,} handles: {result['rss_per']:,.0f} bytes each  {outcome}")


if __name__ == "__main__":
    main()
