"""Memory while streaming a large profile archive up to the service and back down.

A ``--size-mb`` (300) ``.tar.gz`` is built on disk (random content, so gzip cannot shrink it),
uploaded with ``client.environments.upload`` and downloaded with ``client.profiles.download``,
against the built-in emulator running in a process of its own. For each direction the script
prints the client process's resident memory before, its peak during the transfer (Linux's
high-water mark, reset before each phase), the growth, and the target (at most 50 MB).

    python benchmarks/bench_transfer.py [--size-mb 300] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench_common import machine_summary, reset_peak, start_emulator, status_mb, verdict

from webrun_async import AsyncWebRun

TARGET_GROWTH_MB = 50.0


class _RandomReader:
    """A file-like object of ``size`` random bytes, produced as read (nothing held)."""

    def __init__(self, size: int) -> None:
        self._left = size

    def read(self, count: int = -1) -> bytes:
        count = self._left if count < 0 else min(count, self._left)
        self._left -= count
        return os.urandom(count)


def build_archive(path: Path, size: int) -> None:
    info = tarfile.TarInfo("Default/Web Data")
    info.size = size
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        archive.addfile(info, _RandomReader(size))  # type: ignore[arg-type]


async def measure(
    label: str, work: Callable[[], Awaitable[object]], size: int
) -> tuple[str, float, float, float, float]:
    before = status_mb("VmRSS")
    exact = reset_peak()
    started = time.perf_counter()
    await work()
    elapsed = time.perf_counter() - started
    peak = status_mb("VmHWM") if exact else max(before, status_mb("VmRSS"))
    return label, before, peak, elapsed, size / elapsed / 2**20


async def main(size_mb: int, keep: bool) -> None:
    size = size_mb * 2**20
    workdir = Path(tempfile.mkdtemp(prefix="webrun-bench-"))
    archive = workdir / "profile.tar.gz"
    print(f"building a {size_mb} MB archive in {workdir} ...", flush=True)
    build_archive(archive, size)
    on_disk = archive.stat().st_size
    emulator = start_emulator("--rate-limit", "off", "--account-rate-limit", "off")
    try:
        async with AsyncWebRun("bench-key", base_url=emulator.base_url, rate_limit=None) as client:
            environment = await client.environments.create("bench")
            await client.health()  # the pool and imports are warm before measuring
            rows = [
                await measure(
                    "upload", lambda: client.environments.upload(environment.id, archive), on_disk
                ),
                await measure(
                    "download",
                    lambda: client.profiles.download(environment.id, workdir / "back.tar.gz"),
                    on_disk,
                ),
                # The control: the same upload from the whole file read into memory first. It
                # shows that the measurement sees the growth the streamed paths avoid.
                await measure(
                    "control",
                    lambda: client.environments.upload(environment.id, archive.read_bytes()),
                    on_disk,
                ),
            ]
        same = (workdir / "back.tar.gz").stat().st_size == on_disk
    finally:
        emulator.stop()
        if not keep:
            for path in workdir.iterdir():
                path.unlink()
            workdir.rmdir()
    print(f"\nStreaming a {on_disk / 2**20:.0f} MB archive up and down")
    print(machine_summary())
    header = f"{'phase':10} {'MB/s':>8} {'RSS before':>11} {'peak':>8} {'growth':>8}"
    print(header + "  target ≤ 50 MB")
    for label, before, peak, _elapsed, rate in rows:
        growth = peak - before
        outcome = verdict(growth <= TARGET_GROWTH_MB)
        if label == "control":
            outcome = "(control: reads the file into memory, expected to miss)"
        print(f"{label:10} {rate:8.0f} {before:9.1f}MB {peak:6.1f}MB {growth:6.1f}MB  {outcome}")
    print(f"downloaded archive identical in size: {same}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the files in the temp directory")
    args = parser.parse_args()
    asyncio.run(main(args.size_mb, args.keep))
