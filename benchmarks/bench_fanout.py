"""Fan-out: thousands of concurrent tasks from one client, in ``socket``, ``poll`` and ``auto``.

The built-in emulator runs in a process of its own (rate limits off, a short ``--inline-wait``
so that the held request answers "pending", a large balance), and every task runs
``--duration`` seconds, long enough to be still running when the last one has started: its
result then comes by push or by poll, never inline. For each mode a fresh client process (this
script with ``--worker MODE``) submits ``--tasks`` tasks with ``client.tasks.submit(...)`` on one
``AsyncWebRun(mode=MODE, rate_limit=None, max_connections=100)`` (default ``max_sockets``),
awaits them all and reports as JSON:

* HTTP requests per task: the emulator's ``requestCounts`` (REST routes only, not
  ``SOCKET message`` and not this script's own ``GET /_emulator/state``), after minus before,
  divided by the tasks; and the socket.io connections it accepted (``socketConnections``);
* event-loop lag: a task sleeping 10 ms in a loop records how late it wakes (target p99 <= 100 ms);
* wake-up delay: ``time.time()`` when ``await handle`` returned minus the result's
  ``completed_at`` (the emulator's completion time, same machine clock);
* memory: the client's VmRSS at baseline (client open, pool warm), when every task has started
  (every socket open), and its peak (VmHWM, reset at baseline). Memory per socket is
  (RSS when all started in this mode - the same in ``poll`` mode) / sockets open then: the
  difference method, so it needs ``poll`` among the modes;
* client CPU per task (``time.process_time``) and wall time from the first submit to the last
  result; and the checks: every result delivered exactly once, every task completed, no
  warning or error logged, no live session left in the emulator after the client closed.

Finally it proposes a default ``max_sockets`` that keeps the sockets' memory under
``--socket-budget-mb``.

    python benchmarks/bench_fanout.py [--tasks 10000] [--modes socket,poll,auto]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import inspect
import json
import logging
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from bench_common import (
    machine_cpu_seconds,
    machine_summary,
    process_cpu_seconds,
    quantile,
    reset_peak,
    start_emulator,
    status_mb,
    verdict,
)

HERE = Path(__file__).resolve().parent
MODES = ("socket", "poll", "auto")
API_KEY = "bench-key"
MAX_CONNECTIONS = 100
TICK = 0.010  # the lag monitor's sleep
LAG_TARGET_MS = 100.0
STATE_ROUTE = "GET /_emulator/state"
HEALTH_ROUTE = "GET /start/health"
OWN_ROUTES = (STATE_ROUTE, HEALTH_ROUTE)  # this script's probes, not the SDK's requests
SOCKET_MESSAGE = "SOCKET message"


# -- the machine ---------------------------------------------------------------------------------


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard limit; returns (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def sdk_fingerprint() -> str:
    """A short hash of the SDK's source as it is on disk now (it may differ from any commit)."""
    digest = hashlib.sha256()
    package = HERE.parent / "webrun_async"
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


# -- the worker: one mode, in a fresh process ----------------------------------------------------


class _LogCounter(logging.Handler):
    """Counts (and keeps a few of) the SDK's warnings and errors."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.samples: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.samples) < 5:
            self.samples.append(f"{record.levelname}: {record.getMessage()[:300]}")


async def emulator_state(probe: aiohttp.ClientSession, base_url: str) -> dict[str, Any]:
    async with probe.get(base_url + "/_emulator/state") as response:
        response.raise_for_status()
        state: dict[str, Any] = await response.json()
        return state


async def health_latency(probe: aiohttp.ClientSession, base_url: str) -> float:
    """Seconds the emulator takes to answer ``GET /start/health`` (how busy it is)."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(10):
            async with probe.get(base_url + "/start/health") as response:
                await response.read()
    except TimeoutError:
        return math.inf
    return time.perf_counter() - started


async def lag_monitor(samples: list[tuple[float, float]]) -> None:
    """Sleep ``TICK`` in a loop; record (when, how late in seconds) for every wake-up."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(TICK)
        now = loop.time()
        samples.append((now, max(0.0, now - before - TICK)))


async def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    from webrun_async import AsyncWebRun  # imported here: the parent process never needs it

    soft, hard = raise_fd_limit()
    mode: str = args.worker
    tasks: int = args.tasks
    log = _LogCounter()
    sdk_logger = logging.getLogger("webrun_async")
    sdk_logger.addHandler(log)
    sdk_logger.setLevel(logging.WARNING)
    transport_log = _LogCounter()  # python-socketio and python-engineio, under the SDK
    for name in ("socketio.client", "engineio.client"):
        logging.getLogger(name).addHandler(transport_log)

    loop = asyncio.get_running_loop()
    lags: list[tuple[float, float]] = []
    # [seconds, started, done, client RSS MB, client CPU s, emulator CPU s, emulator health
    # answer ms(, sockets open in the emulator)]
    timeline: list[list[float]] = []
    deliveries: dict[int, int] = {}
    returned: dict[int, float] = {}
    outcomes: dict[int, Any] = {}
    text = f"[[duration={args.duration:g}]]"

    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as probe:
        client = AsyncWebRun(
            API_KEY,
            base_url=args.base_url,
            mode=mode,  # type: ignore[arg-type]
            rate_limit=None,
            max_connections=MAX_CONNECTIONS,
        )
        async with client:
            await client.health()  # the pool is open and lazy imports are done
            gc.collect()
            rss_base = status_mb("VmRSS")
            before = await emulator_state(probe, args.base_url)
            exact_peak = reset_peak()

            finished = 0
            all_done = asyncio.Event()

            async def follow(index: int, handle: Any) -> None:
                nonlocal finished
                try:
                    outcomes[index] = await handle
                except Exception as exc:  # recorded and reported: never hidden
                    outcomes[index] = exc
                returned[index] = time.time()
                finished += 1
                if finished == tasks:
                    all_done.set()

            def delivered(index: int) -> Any:
                def count(_handle: Any) -> None:
                    deliveries[index] = deliveries.get(index, 0) + 1

                return count

            monitor = loop.create_task(lag_monitor(lags))
            await asyncio.sleep(0.2)  # a few idle samples first: the monitor itself is sane
            cpu0, wall0, unix0 = time.process_time(), loop.time(), time.time()
            emu_cpu0 = process_cpu_seconds(args.emulator_pid)
            handles = []
            for index in range(tasks):
                handle = client.tasks.submit(f"fan-out task {index} {text}")
                handle.add_done_callback(delivered(index))
                handles.append(handle)
            waiters = [loop.create_task(follow(i, h)) for i, h in enumerate(handles)]
            submitted = loop.time()

            # Watch until every task has started (the server named it) and all are done.
            all_started: float | None = None
            rss_started = math.nan
            started_state: dict[str, Any] = {}
            first_unstarted = 0
            next_state = 0.0
            while not all_done.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(all_done.wait(), 1.0)
                while first_unstarted < tasks and (
                    handles[first_unstarted].task_id is not None or handles[first_unstarted].final
                ):
                    first_unstarted += 1
                started = first_unstarted + sum(
                    1 for h in handles[first_unstarted:] if h.task_id is not None or h.final
                )
                now = loop.time()
                rss = status_mb("VmRSS")
                point = [round(now - wall0, 2), started, finished, round(rss, 1)]
                point.append(round(time.process_time() - cpu0, 2))
                point.append(round(process_cpu_seconds(args.emulator_pid) - emu_cpu0, 2))
                point.append(round(await health_latency(probe, args.base_url) * 1000, 1))
                if all_started is None and started == tasks:
                    all_started = now
                    rss_started = rss
                    started_state = await emulator_state(probe, args.base_url)
                    point.append(started_state["openSockets"])
                elif now >= next_state:  # the emulator's view, now and then (a large answer)
                    point.append((await emulator_state(probe, args.base_url))["openSockets"])
                    next_state = now + args.state_every
                timeline.append(point)
            await asyncio.gather(*waiters)
            done_at = loop.time()
            cpu = time.process_time() - cpu0
            monitor.cancel()
            rss_peak = status_mb("VmHWM") if exact_peak else max(p[3] for p in timeline)
            rss_end = status_mb("VmRSS")
            close0 = loop.time()
        close_time = loop.time() - close0
        after = await emulator_state(probe, args.base_url)

    # -- what happened ---------------------------------------------------------------------
    sdk_logger.removeHandler(log)
    counts_before: dict[str, int] = before["requestCounts"]
    counts_after: dict[str, int] = after["requestCounts"]
    per_route = {
        route: counts_after.get(route, 0) - counts_before.get(route, 0)
        for route in sorted(set(counts_after) | set(counts_before))
    }
    rest = sum(n for route, n in per_route.items() if route not in (*OWN_ROUTES, SOCKET_MESSAGE))
    completed = [(i, r) for i, r in outcomes.items() if type(r).__name__ == "TaskResult"]
    failures: dict[str, int] = {}
    for result in outcomes.values():
        if isinstance(result, BaseException):
            name = type(result).__name__
            failures[name] = failures.get(name, 0) + 1
    wakeups = [
        returned[i] - r.completed_at.timestamp() for i, r in completed if r.completed_at is not None
    ]
    completions = [r.completed_at.timestamp() for _, r in completed if r.completed_at is not None]
    task_ids = {r.task_id for _, r in completed}
    started_rel = (all_started - wall0) if all_started is not None else None
    first_done_rel = (min(completions) - unix0) if completions else None
    lags = [(at, lag) for at, lag in lags if wall0 <= at <= done_at]  # the run only
    lag_ms = [lag * 1000 for _, lag in lags]
    lag_start_ms = [lag * 1000 for at, lag in lags if all_started is None or at <= all_started]
    lag_wait_ms = [lag * 1000 for at, lag in lags if all_started is not None and at > all_started]
    worst_at = max(lags, key=lambda s: s[1])[0] - wall0 if lags else math.nan
    # The monitor takes one sample per wake-up, so a long stall counts once: also report the
    # share of the run's wall time the loop spent more than 100 ms late.
    stalled = sum(lag for _, lag in lags if lag * 1000 > LAG_TARGET_MS) / (done_at - wall0)
    return {
        "mode": mode,
        "tasks": tasks,
        "duration": args.duration,
        "fd_limit": [soft, hard],
        "sdk_fingerprint": sdk_fingerprint(),
        "submit_seconds": submitted - wall0,
        "wall_seconds": done_at - wall0,
        "close_seconds": close_time,
        "cpu_seconds": cpu,
        "cpu_ms_per_task": cpu / tasks * 1000,
        "requests_per_route": per_route,
        "rest_requests": rest,
        "requests_per_task": rest / tasks,
        "socket_connections": after["socketConnections"] - before["socketConnections"],
        "socket_refused": after["socketRefused"] - before["socketRefused"],
        "sockets_open_when_started": started_state.get("openSockets"),
        "live_sessions_when_started": len(started_state.get("liveSessions", [])),
        "sessions_created": after["sessionsCreated"] - before["sessionsCreated"],
        "tasks_created": after["tasksCreated"] - before["tasksCreated"],
        "live_sessions_after": len(after["liveSessions"]),
        "open_sockets_after": after["openSockets"],
        "all_started_seconds": started_rel,
        "first_completion_seconds": first_done_rel,
        "lag_ms": {
            "p50": quantile(lag_ms, 0.50),
            "p99": quantile(lag_ms, 0.99),
            "max": max(lag_ms, default=math.nan),
            "samples": len(lag_ms),
            "worst_at_seconds": worst_at,
            "stalled_share": stalled,
            "p99_while_starting": quantile(lag_start_ms, 0.99),
            "p99_while_waiting": quantile(lag_wait_ms, 0.99),
        },
        "wakeup_s": {
            "p50": quantile(wakeups, 0.50),
            "p99": quantile(wakeups, 0.99),
            "max": max(wakeups, default=math.nan),
            "min": min(wakeups, default=math.nan),
        },
        "rss_mb": {
            "baseline": rss_base,
            "all_started": rss_started,
            "peak": rss_peak,
            "end": rss_end,
            "peak_exact": exact_peak,
        },
        "completed": len(completed),
        "distinct_task_ids": len(task_ids),
        "failures": failures,
        "delivered_once": sum(1 for n in deliveries.values() if n == 1),
        "delivered_more": sum(1 for n in deliveries.values() if n > 1),
        "not_delivered": tasks - len(deliveries),
        "log_problems": log.count,
        "log_samples": log.samples,
        "transport_log_problems": transport_log.count,
        "transport_log_samples": transport_log.samples,
        "timeline": timeline,
    }


# -- the parent: one emulator and one worker per mode ---------------------------------------------


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    emulator = start_emulator(
        "--rate-limit",
        "off",
        "--account-rate-limit",
        "off",
        "--inline-wait",
        f"{args.inline_wait:g}",
        "--balance",
        "1000000000",
        api_key=API_KEY,
    )
    try:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            mode,
            "--base-url",
            emulator.base_url,
            "--tasks",
            str(args.tasks),
            "--duration",
            f"{args.duration:g}",
            "--state-every",
            f"{args.state_every:g}",
            "--emulator-pid",
            str(emulator.process.pid),
        ]
        print(f"[{mode}] {args.tasks:,} tasks of {args.duration:g} s ...", file=sys.stderr)
        emulator_cpu = process_cpu_seconds(emulator.process.pid)
        busy, stolen = machine_cpu_seconds()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = time.process_time()
        wall = time.monotonic()
        process = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
        wall = time.monotonic() - wall
        emulator_cpu = process_cpu_seconds(emulator.process.pid) - emulator_cpu
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        worker_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
        busy_after, stolen_after = machine_cpu_seconds()
        ours = emulator_cpu + worker_cpu + time.process_time() - own
        lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
        if process.returncode != 0 or not lines:
            raise RuntimeError(f"the {mode} worker failed (exit {process.returncode})")
        result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
        result["emulator_cpu_seconds"] = emulator_cpu
        # Load on the machine that is not this benchmark's (another person's runs), and time
        # stolen by the hypervisor, both over the worker's whole life, in CPU seconds.
        result["other_cpu_seconds"] = busy_after - busy - ours
        result["stolen_cpu_seconds"] = stolen_after - stolen
        result["process_seconds"] = wall
        return result
    finally:
        emulator.stop()


def problems(result: dict[str, Any]) -> list[str]:
    """What went wrong in a mode's run (empty: the run is valid)."""
    tasks = result["tasks"]
    found = []
    if result["completed"] != tasks:
        found.append(f"{tasks - result['completed']} tasks not completed {result['failures']}")
    if result["distinct_task_ids"] != result["completed"]:
        found.append("duplicate task ids among the results")
    if result["delivered_once"] != tasks:
        found.append(
            f"delivered once: {result['delivered_once']}, more than once: "
            f"{result['delivered_more']}, never: {result['not_delivered']}"
        )
    if result["live_sessions_after"]:
        found.append(f"{result['live_sessions_after']} live sessions left in the emulator")
    if result["sessions_created"] != tasks or result["tasks_created"] != tasks:
        found.append(
            f"emulator saw {result['sessions_created']} sessions, {result['tasks_created']} tasks"
        )
    if result["log_problems"]:
        found.append(f"{result['log_problems']} warnings/errors logged: {result['log_samples']}")
    if result["transport_log_problems"]:
        found.append(
            f"{result['transport_log_problems']} errors logged by socketio/engineio: "
            f"{result['transport_log_samples']}"
        )
    started, first = result["all_started_seconds"], result["first_completion_seconds"]
    if started is None or first is None or first < started:
        found.append(
            f"a task completed ({first} s) before all had started ({started} s): raise --duration"
        )
    return found


def socket_costs(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Memory per open socket (KB) per socket-using mode, by difference with ``poll``."""
    poll = results.get("poll")
    costs: dict[str, float] = {}
    if poll is None:
        return costs
    for mode, result in results.items():
        sockets = result["sockets_open_when_started"] or 0
        if mode == "poll" or sockets <= 0:
            continue
        grown = result["rss_mb"]["all_started"] - poll["rss_mb"]["all_started"]
        costs[mode] = grown * 1024 / sockets
    return costs


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    costs = socket_costs(results)
    print(
        f"\nFan-out: {args.tasks:,} concurrent tasks of {args.duration:g} s each, one emulator "
        f"(own process, --inline-wait {args.inline_wait:g}), one client process per mode, "
        f"max_connections={MAX_CONNECTIONS}, default max_sockets"
    )
    print(machine_summary())
    any_result = next(iter(results.values()))
    prints = sorted({r["sdk_fingerprint"] for r in results.values()})
    print(f"SDK source fingerprint (sha256 of webrun_async/**/*.py): {', '.join(prints)}")
    print(f"open-file limit in the worker (soft/hard): {any_result['fd_limit']}")
    print(
        f"{'mode':7} {'req/task':>8} {'sockets':>8} {'lag p50':>8} {'p99':>7} {'max':>7} "
        f"{'wake p50':>9} {'p99':>7} {'RSS base':>9} {'started':>8} {'peak':>8} "
        f"{'KB/socket':>9} {'CPU ms/task':>11} {'wall s':>7}"
    )
    for mode, r in results.items():
        lag, wake, rss = r["lag_ms"], r["wakeup_s"], r["rss_mb"]
        cost = f"{costs[mode]:.1f}" if mode in costs else "-"
        print(
            f"{mode:7} {r['requests_per_task']:8.2f} {r['socket_connections']:8,} "
            f"{lag['p50']:6.1f}ms {lag['p99']:5.0f}ms {lag['max']:5.0f}ms "
            f"{wake['p50']:8.3f}s {wake['p99']:6.2f}s {rss['baseline']:7.1f}MB "
            f"{rss['all_started']:6.1f}MB {rss['peak']:6.1f}MB {cost:>9} "
            f"{r['cpu_ms_per_task']:11.2f} {r['wall_seconds']:7.1f}"
        )
    print(
        "(req/task: REST requests per task; sockets: socket.io connections the emulator "
        "accepted; lag: event-loop lateness per 10 ms wake-up; wake: await-return time minus the "
        "server's completedAt; RSS at baseline, when all tasks had started, and peak; KB/socket: "
        "RSS when all started minus poll mode's, per socket open then; CPU: client process)"
    )
    print("\ndetails:")
    for mode, r in results.items():
        routes = ", ".join(
            f"{route} {n / r['tasks']:.2f}"
            for route, n in r["requests_per_route"].items()
            if route not in OWN_ROUTES and n
        )
        lag = r["lag_ms"]
        health = [p[6] for p in r["timeline"] if len(p) > 6]
        print(f"  {mode}: requests per task: {routes}")
        print(
            f"  {mode}: all started at {_seconds(r['all_started_seconds'])} (submit() calls took "
            f"{r['submit_seconds']:.2f} s), first completion at "
            f"{_seconds(r['first_completion_seconds'])}, last result at "
            f"{r['wall_seconds']:.1f} s; sockets open when all started: "
            f"{r['sockets_open_when_started']}, refused: {r['socket_refused']:,}; "
            f"client close {r['close_seconds']:.1f} s"
        )
        print(
            f"  {mode}: lag p99 while starting {lag['p99_while_starting']:.0f} ms, while waiting "
            f"{lag['p99_while_waiting']:.0f} ms; worst {lag['max']:.0f} ms at "
            f"{lag['worst_at_seconds']:.1f} s; {lag['stalled_share'] * 100:.1f}% of the run "
            f"spent more than {LAG_TARGET_MS:.0f} ms late; wake-up max {r['wakeup_s']['max']:.2f} s"
        )
        print(
            f"  {mode}: CPU seconds: client {r['cpu_seconds']:.0f}, emulator "
            f"{r['emulator_cpu_seconds']:.0f}, others on the machine "
            f"{r['other_cpu_seconds']:.0f}, stolen {r['stolen_cpu_seconds']:.0f} (of "
            f"{r['process_seconds'] * (os.cpu_count() or 1):.0f} available); the emulator "
            "answered health checks in "
            f"{statistics.median(health) if health else math.nan:.0f} ms median, "
            f"{max(health, default=math.nan):.0f} ms at worst"
        )
    print("\ntargets and checks:")
    for mode, r in results.items():
        lag = r["lag_ms"]
        overall = verdict(lag["p99"] <= LAG_TARGET_MS)
        starting = verdict(lag["p99_while_starting"] <= LAG_TARGET_MS)
        print(
            f"  {mode}: event-loop lag p99 {lag['p99']:.0f} ms over the run (target <= "
            f"{LAG_TARGET_MS:.0f} ms): {overall}; {lag['p99_while_starting']:.0f} ms while the "
            f"tasks were starting: {starting}"
        )
        found = problems(r)
        for problem in found:
            print(f"  {mode}: FAILED: {problem}")
        if not found:
            print(
                f"  {mode}: all {r['tasks']:,} tasks completed, each result delivered exactly "
                "once, no errors logged, 0 live sessions in the emulator after close"
            )
    propose(results, costs, args)


def propose(
    results: dict[str, dict[str, Any]], costs: dict[str, float], args: argparse.Namespace
) -> None:
    print()
    if "socket" not in costs:
        print(
            "max_sockets: no proposal (memory per socket needs the socket and poll modes in the "
            "same run: --modes socket,poll)"
        )
        return
    per_socket = costs["socket"]
    budget = args.socket_budget_mb
    if per_socket <= 0:
        print(f"max_sockets: no proposal (memory per socket measured {per_socket:.1f} KB)")
        return
    from webrun_async import AsyncWebRun

    default = inspect.signature(AsyncWebRun).parameters["max_sockets"].default
    fit = int(budget * 1024 / per_socket)
    step = 10 ** max(0, len(str(fit)) - 1)
    cap = max(1, fit // step * step)  # rounded down to one significant digit
    sockets = results["socket"]["sockets_open_when_started"]
    print(
        f"max_sockets: propose {cap:,}. Measured {per_socket:.1f} KB of client memory per open "
        f"socket ({sockets:,} sockets, RSS difference with poll mode when all tasks had "
        f"started); a budget of {budget:g} MB for sockets fits {fit:,}, rounded down to {cap:,}. "
        f"(The default now is {default:,}: {default * per_socket / 1024:.1f} MB; the open-file "
        "limit, 1,024 on many systems and shared with the connection pool, may bind first.)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument(
        "--modes", default=",".join(MODES), help="comma-separated: socket,poll,auto"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds each task runs (default: long enough to outlast the start of all of them)",
    )
    parser.add_argument("--inline-wait", type=float, default=1.0, help="the emulator's hold")
    parser.add_argument(
        "--socket-budget-mb",
        type=float,
        default=64.0,
        help="client memory the default socket cap may use (for the proposal)",
    )
    parser.add_argument(
        "--state-every", type=float, default=5.0, help="seconds between the emulator snapshots"
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--emulator-pid", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.duration is None:
        # Each newTask holds a pool connection for --inline-wait: starting N tasks takes at
        # least N * wait / max_connections seconds. Tasks must outlast that by a margin.
        args.duration = min(280.0, max(20.0, 2 * args.tasks * args.inline_wait / MAX_CONNECTIONS))
    if args.worker:
        result = asyncio.run(run_worker(args))
        print("RESULT " + json.dumps(result), flush=True)
        return
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown modes: {unknown}")
    raise_fd_limit()  # the emulator, started from here, inherits it
    results = {mode: run_mode(mode, args) for mode in modes}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    report(results, args)


if __name__ == "__main__":
    main()
