"""What the benchmark scripts share: the local server process and the machine's description."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

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


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_summary() -> str:
    """One line about the machine and the versions measured."""
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return (
        f"machine: {os.cpu_count()} CPUs ({_cpu_model()}), {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; " + ", ".join(versions)
    )
