"""Decoding a 3.5 KB task result: this SDK against the raw floor and pydantic.

Each contender turns the same bytes (``payloads.task_completed``: 4 files, 4 network captures of
4 URLs, 6 steps, usage) into typed objects, in rotating order, ``--rounds`` times of
``--iterations`` decodes each; the table shows the median CPU time per decode.

* ``webrun_async``: ``decode_task_status(body)``, the SDK's own path for every held answer and
  poll (a permissive wire Struct read once, then normalised into ``TaskResult``);
* ``floor``: ``msgspec.json.Decoder`` into plain Structs shaped exactly like this payload;
* ``pydantic``: ``model_validate_json`` into the same shape;
* ``openai construct_type`` (for scale, no target): the ``openai`` package's default way of
  building responses, on the ``json.loads`` of the body.

    python benchmarks/bench_decode.py [--rounds 5] [--iterations 20000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import msgspec
import pydantic
from bench_common import machine_summary, verdict
from openai import BaseModel as OpenAIModel
from openai._models import construct_type
from payloads import task_completed

from webrun_async._core.results import decode_task_status
from webrun_async.types import TaskResult

BODY = msgspec.json.encode(task_completed())


class File(msgspec.Struct):
    source: str
    downloadUrl: str
    filename: str
    timestamp: float


class URL(msgspec.Struct):
    url: str
    timestamp: float


class Network(msgspec.Struct):
    id: str
    taskId: str
    urls: list[URL]


class Data(msgspec.Struct):
    message: str
    files: list[File]
    network: list[Network]


class Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    completion_time: float
    cost: float


class Completed(msgspec.Struct):
    success: bool
    sessionId: str
    taskId: str
    type: str
    data: Data
    usage: Usage
    completedAt: str


class PFile(pydantic.BaseModel):
    source: str
    downloadUrl: str
    filename: str
    timestamp: float


class PURL(pydantic.BaseModel):
    url: str
    timestamp: float


class PNetwork(pydantic.BaseModel):
    id: str
    taskId: str
    urls: list[PURL]


class PData(pydantic.BaseModel):
    message: str
    files: list[PFile]
    network: list[PNetwork]


class PUsage(pydantic.BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    completion_time: float
    cost: float


class PCompleted(pydantic.BaseModel):
    success: bool
    sessionId: str
    taskId: str
    type: str
    data: PData
    usage: PUsage
    completedAt: str


class OFile(OpenAIModel):
    source: str
    downloadUrl: str
    filename: str
    timestamp: float


class OURL(OpenAIModel):
    url: str
    timestamp: float


class ONetwork(OpenAIModel):
    id: str
    taskId: str
    urls: list[OURL]


class OData(OpenAIModel):
    message: str
    files: list[OFile]
    network: list[ONetwork]


class OUsage(OpenAIModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    completion_time: float
    cost: float


class OCompleted(OpenAIModel):
    success: bool
    sessionId: str
    taskId: str
    type: str
    data: OData
    usage: OUsage
    completedAt: str


class Running(msgspec.Struct):
    """A poll of a task still running (``payloads.task_running``), for the polling benchmarks."""

    success: bool
    sessionId: str
    taskId: str
    status: str
    pending: bool
    usage: Usage


class PRunning(pydantic.BaseModel):
    success: bool
    sessionId: str
    taskId: str
    status: str
    pending: bool
    usage: PUsage


class ORunning(OpenAIModel):
    success: bool
    sessionId: str
    taskId: str
    status: str
    pending: bool
    usage: OUsage


_floor = msgspec.json.Decoder(Completed).decode


def _openai(body: bytes) -> Any:
    return construct_type(type_=OCompleted, value=json.loads(body))


CONTENDERS: dict[str, Callable[[bytes], Any]] = {
    "webrun_async decode_task_status": decode_task_status,
    "floor (msgspec Struct)": _floor,
    "pydantic model_validate_json": PCompleted.model_validate_json,
    "openai construct_type (no target)": _openai,
}


def per_decode(decode: Callable[[bytes], Any], iterations: int) -> float:
    """CPU microseconds per decode over ``iterations`` decodes."""
    body = BODY
    start = time.process_time()
    for _ in range(iterations):
        decode(body)
    return (time.process_time() - start) / iterations * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=20_000)
    args = parser.parse_args()
    result = decode_task_status(BODY)
    assert isinstance(result, TaskResult)
    assert len(result.network[3].urls) == 4
    names = list(CONTENDERS)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for name in names:
        per_decode(CONTENDERS[name], 200)  # warm-up
    for round_ in range(args.rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            iterations = args.iterations // 20 if name.startswith("openai") else args.iterations
            samples[name].append(per_decode(CONTENDERS[name], iterations))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    sdk, floor = medians["webrun_async decode_task_status"], medians["floor (msgspec Struct)"]
    pyd = medians["pydantic model_validate_json"]
    print(f"Decoding a {len(BODY):,}-byte task result, median of {args.rounds} rounds")
    print(machine_summary())
    print(f"{'contender':36} {'µs/decode':>10} {'vs floor':>9}")
    for name, value in medians.items():
        print(f"{name:36} {value:>10.2f} {value / floor:>8.2f}x")
    print("\ntargets:")
    ratio = sdk / floor
    print(f"  at most 1.25x the floor's time    {ratio:5.2f}x  {verdict(ratio <= 1.25)}")
    print(f"  at least 3x faster than pydantic  {pyd / sdk:5.2f}x  {verdict(pyd / sdk >= 3)}")


if __name__ == "__main__":
    main()
