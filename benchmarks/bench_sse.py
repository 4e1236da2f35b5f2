"""Streamed chat completions: this SDK against the raw floor and the clients people use today.

A local server (``local_server.py``, a process of its own) streams ``--chunks`` chat completion
chunks as Server-Sent Events; every contender reads the same stream into typed objects, in the
same run, in rotating order, ``--rounds`` times:

* ``webrun_async``: ``client.chat.completions.create(..., stream=True)``;
* ``floor``: raw aiohttp reading whole chunks, a naive split on blank lines, a typed msgspec
  decoder (it assumes LF endings and data-only events: the SDK's decoder handles the full rules);
* ``httpx + httpx-sse + pydantic``: ``aconnect_sse`` and ``model_validate_json``;
* ``openai``: the ``openai`` package's ``AsyncOpenAI`` streaming, as shipped.

The main figure is client CPU per event (``time.process_time``: the server shares the cores);
events per second of wall time is reported too. Medians over the rounds.

    pip install -e '.[bench]' && python benchmarks/bench_sse.py [--chunks 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import msgspec
import pydantic
from bench_common import machine_summary, start_server, verdict
from httpx_sse import aconnect_sse
from openai import AsyncOpenAI

from webrun_async import AsyncWebRun

HERE = Path(__file__).resolve().parent
MESSAGES = [{"role": "user", "content": "Find the cheapest wireless keyboard"}]
REQUEST = {"model": "enigma-browser-1", "messages": MESSAGES, "stream": True}


class Delta(msgspec.Struct):
    role: str | None = None
    content: str | None = None


class ChunkChoice(msgspec.Struct):
    index: int = 0
    delta: Delta = msgspec.field(default_factory=Delta)
    finish_reason: str | None = None


class Chunk(msgspec.Struct):
    id: str = ""
    object: str = ""
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice] = msgspec.field(default_factory=list)


async def run_webrun_async(base: str) -> int:
    async with AsyncWebRun("bench", base_url=base, rate_limit=None) as client:
        stream = await client.chat.completions.create(
            model="enigma-browser-1", messages=MESSAGES, stream=True
        )
        count = 0
        async with stream:
            async for _ in stream:
                count += 1
        return count


async def run_floor(base: str) -> int:
    decode = msgspec.json.Decoder(Chunk).decode
    count = 0
    async with (
        aiohttp.ClientSession() as session,
        session.post(base + "/v1/chat/completions", json=REQUEST) as response,
    ):
        buffer = b""
        async for data in response.content.iter_any():
            buffer += data
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                payload = event[6:]  # b"data: "
                if payload == b"[DONE]":
                    return count
                decode(payload)
                count += 1
    return count


class PDelta(pydantic.BaseModel):
    role: str | None = None
    content: str | None = None


class PChoice(pydantic.BaseModel):
    index: int = 0
    delta: PDelta
    finish_reason: str | None = None


class PChunk(pydantic.BaseModel):
    id: str
    object: str
    created: int
    model: str
    choices: list[PChoice]


async def run_httpx_sse_pydantic(base: str) -> int:
    count = 0
    async with httpx.AsyncClient(timeout=None) as client:
        url = base + "/v1/chat/completions"
        async with aconnect_sse(client, "POST", url, json=REQUEST) as source:
            async for sse in source.aiter_sse():
                if sse.data == "[DONE]":
                    break
                PChunk.model_validate_json(sse.data)
                count += 1
    return count


async def run_openai(base: str) -> int:
    client = AsyncOpenAI(base_url=base + "/v1", api_key="bench", max_retries=0)
    count = 0
    try:
        stream = await client.chat.completions.create(
            model="enigma-browser-1",
            messages=MESSAGES,
            stream=True,  # type: ignore[arg-type]
        )
        async for _ in stream:
            count += 1
    finally:
        await client.close()
    return count


CONTENDERS: dict[str, Callable[[str], Awaitable[int]]] = {
    "webrun_async": run_webrun_async,
    "floor (aiohttp + split + msgspec)": run_floor,
    "httpx + httpx-sse + pydantic": run_httpx_sse_pydantic,
    "openai AsyncOpenAI": run_openai,
}


async def measure(name: str, base: str, chunks: int) -> tuple[float, float]:
    """(events per wall second, client CPU microseconds per event) of one run."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    count = await CONTENDERS[name](base)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if count != chunks:
        raise RuntimeError(f"{name} read {count} events, expected {chunks}")
    return count / wall, cpu / count * 1e6


async def run(chunks: int, rounds: int, only: list[str]) -> dict[str, tuple[float, float]]:
    server = start_server(HERE / "local_server.py", "--chunks", str(chunks))
    try:
        base = server.base_url
        names = [n for n in CONTENDERS if not only or any(o in n for o in only)]
        samples: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
        for name in names:  # warm-up, not counted: first connections, lazy imports, caches
            await CONTENDERS[name](base)
        for round_ in range(rounds):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order:
                samples[name].append(await measure(name, base, chunks))
                rate = samples[name][-1][0]
                print(f"  round {round_ + 1}: {name}: {rate:,.0f} ev/s", file=sys.stderr)
        return {
            name: (statistics.median(s[0] for s in runs), statistics.median(s[1] for s in runs))
            for name, runs in samples.items()
        }
    finally:
        server.stop()


def report(results: dict[str, tuple[float, float]], chunks: int, rounds: int) -> None:
    floor = results.get("floor (aiohttp + split + msgspec)")
    print(f"\nSSE chat streaming: {chunks:,} chunks, median of {rounds} rounds")
    print(machine_summary())
    print(f"{'contender':38} {'events/s':>12} {'client µs/event':>16} {'vs floor (CPU)':>15}")
    for name, (rate, cpu) in results.items():
        ratio = f"{floor[1] / cpu:.2f}x" if floor else "-"
        print(f"{name:38} {rate:>12,.0f} {cpu:>16.2f} {ratio:>15}")
    sdk = results.get("webrun_async")
    if sdk is None:
        return
    print("\ntargets (client CPU per event; wall throughput in brackets):")
    checks = [
        ("floor (aiohttp + split + msgspec)", 0.6, "at least 0.6x the floor"),
        ("httpx + httpx-sse + pydantic", 2.0, "at least 2x httpx-sse + pydantic"),
        ("openai AsyncOpenAI", 20.0, "at least 20x the openai package"),
    ]
    for name, target, label in checks:
        other = results.get(name)
        if other is None:
            continue
        ratio, wall_ratio = other[1] / sdk[1], sdk[0] / other[0]
        print(f"  {label:36} {ratio:6.2f}x ({wall_ratio:.2f}x)  {verdict(ratio >= target)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", action="append", default=[], help="run contenders matching this")
    args = parser.parse_args()
    results = asyncio.run(run(args.chunks, args.rounds, args.only))
    report(results, args.chunks, args.rounds)


if __name__ == "__main__":
    main()
