"""What the benchmark scripts share: server processes, worker processes, memory figures,
verdicts and the machine's description."""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from aiohttp import web

HERE = Path(__file__).resolve().parent
PACKAGES = ("webrun-async", "aiohttp", "msgspec", "httpx", "httpx-sse", "pydantic", "openai")


@dataclass
class Server:
    """A benchmark server running in a process of its own."""

    process: subprocess.Popen[str]
    base_url: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(script: Path, *args: str) -> Server:
    """Start ``script`` with ``args``; it prints ``PORT <n>`` once it listens on 127.0.0.1."""
    process = subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=script.parent,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"{script.name} did not start: {line!r}")
    return Server(process, f"http://127.0.0.1:{int(line.split()[1])}")


def start_emulator(*flags: str, api_key: str = "bench-key") -> Server:
    """Start the built-in emulator in a process of its own (its memory is not the client's)."""
    command = [sys.executable, "-m", "webrun_async.emulator", "--port", "0", "--api-key", api_key]
    process = subprocess.Popen([*command, *flags], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:\d+", line)
    if found is None:
        process.kill()
        raise RuntimeError(f"the emulator did not start: {line!r}")
    return Server(process, found.group(0))


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used so far (Linux; ``nan`` elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine so far, all CPUs (Linux; ``nan``
    elsewhere). Busy time that is not the benchmark's own is someone else's load."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan"), float("nan")
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / tick, steal / tick


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_summary(extra: tuple[str, ...] = ()) -> str:
    """One line about the machine and the versions measured (``extra``: more packages)."""
    versions = []
    for name in (*PACKAGES, *extra):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return (
        f"machine: {os.cpu_count()} CPUs ({_cpu_model()}), {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; " + ", ".join(versions)
    )


def serve_forever(app: web.Application, port: int) -> None:
    """Serve ``app`` on 127.0.0.1 and print ``PORT <n>`` once listening (``start_server``
    waits for that line), until the process is stopped."""

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print(f"PORT {runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


def run_worker(script: str, arguments: Sequence[str]) -> dict[str, Any]:
    """Run ``script`` in a fresh Python process; its last line of output is a JSON object."""
    command = [sys.executable, script, *arguments]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=HERE)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def interleaved_rounds(
    script: str,
    names: Sequence[str],
    base: str,
    rounds: int,
    arguments: Sequence[str],
    describe: Callable[[dict[str, Any]], str],
) -> dict[str, list[dict[str, Any]]]:
    """Run every contender ``rounds`` times, each time in a fresh process
    (``script --worker NAME --base BASE *arguments``) and in rotating order; each run's
    ``describe`` goes to stderr as it finishes."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in [*names[shift:], *names[:shift]]:
            results[name].append(run_worker(script, ["--worker", name, "--base", base, *arguments]))
            print(f"  round {round_ + 1}: {name}: {describe(results[name][-1])}", file=sys.stderr)
    return results


def medians(results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """The median of every figure of every contender over its runs."""
    return {
        name: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        for name, runs in results.items()
    }


def install_uvloop(wanted: bool) -> None:
    """Make uvloop the event loop of this process (the ``uvloop`` extra), if ``wanted``."""
    if wanted:
        import uvloop

        uvloop.install()


def status_mb(field: str) -> float:
    """A memory figure of this process from ``/proc/self/status`` (``VmRSS``, ``VmHWM``), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> bool:
    """Reset the process's peak RSS (Linux); ``False`` where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def quantile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (``nan`` for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def verdict(met: bool) -> str:
    """How a target is reported."""
    return "met" if met else "MISSED"
