"""The soak test: thousands of tasks through a misbehaving emulator; nothing may be lost.

Not part of the default run (it takes a minute or more). Run it with::

    pytest -m soak -s tests/test_soak.py

``WEBRUN_SOAK_TASKS`` (default 10000), ``WEBRUN_SOAK_CONCURRENCY`` (200) and
``WEBRUN_SOAK_SECONDS`` (a hard limit, default 240) tune it. The emulator runs in a process of
its own, started with the ``--fault`` flags, on 127.0.0.1. The test prints what it pushed
through and what it lost, and fails if anything was lost: a task with no outcome, an outcome
delivered twice, a wrong result, an untyped error, a session left running, or more sessions
than tasks.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aiohttp
import anyio
import pytest

from webrun_async import AsyncWebRun, RetryPolicy, TaskHandle, TaskResult, WebRunError

pytestmark = pytest.mark.soak

TASKS = int(os.environ.get("WEBRUN_SOAK_TASKS", "10000"))
CONCURRENCY = int(os.environ.get("WEBRUN_SOAK_CONCURRENCY", "200"))
LIMIT = float(os.environ.get("WEBRUN_SOAK_SECONDS", "240"))
API_KEY = "soak-key"
FAULTS = [
    *("--fault", "500=0.01", "--fault", "502=0.01", "--fault", "503=0.02"),
    *("--fault", "504=0.01", "--fault", "429=0.01", "--fault", "slow=0.01"),
    *("--fault", "reset_before=0.01", "--fault", "reset_after=0.01"),
    *("--fault", "malformed=0.01", "--fault", "oversized=0.005"),
    *("--fault", "drop_socket=0.02", "--fault", "duplicate=0.05", "--fault", "reorder=0.05"),
    *("--fault", "instance_reconnect=0.05", "--fault-instance-gap", "0.2"),
    *("--fault-route", "GET /task/{sessionId}/{taskId}"),
    *("--fault-route", "POST /start/send-message"),
    *("--fault-retry-after", "0.05", "--fault-slow", "2", "--fault-oversized-bytes", "2000000"),
    *("--fault-seed", "2026"),
]


@pytest.fixture
def emulator_url() -> Iterator[str]:
    command = [
        sys.executable,
        "-m",
        "webrun_async.emulator",
        *("--port", "0", "--api-key", API_KEY, "--inline-wait", "0.5"),
        *("--rate-limit", "off", "--account-rate-limit", "off", "--balance", "1000000"),
        *FAULTS,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        found = re.search(r"http://127\.0\.0\.1:\d+", process.stdout.readline())
        assert found, "the emulator did not start"
        yield found.group(0)
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


async def emulator_state(url: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.get(url + "/_emulator/state") as reply,
    ):
        state: dict[str, Any] = await reply.json()
        return state


async def test_soak_under_mixed_faults_loses_nothing(emulator_url: str) -> None:
    texts = [f"soak task {i}" for i in range(TASKS)]
    settled = [0] * TASKS
    outcomes: list[Any] = [None] * TASKS
    gate = anyio.Semaphore(CONCURRENCY)
    started = time.monotonic()

    async def run_one(client: AsyncWebRun, index: int) -> None:
        async with gate:
            handle: TaskHandle[Any] = client.tasks.submit(
                f"{texts[index]} [[duration=0.3]] [[events=3]]"
            )

            def count(_: TaskHandle[Any]) -> None:
                settled[index] += 1

            handle.add_done_callback(count)
            try:
                outcomes[index] = await handle
            except WebRunError as exc:
                outcomes[index] = exc
            except BaseException as exc:  # an untyped error: reported as lost below
                outcomes[index] = exc

    client = AsyncWebRun(
        API_KEY,
        base_url=emulator_url,
        rate_limit=None,
        retry=RetryPolicy(max_retries=3, initial_backoff=0.05, max_backoff=0.5),
        max_response_size=1_000_000,
        poll_interval=0.5,
    )
    with anyio.fail_after(LIMIT):
        async with client, anyio.create_task_group() as tg:
            for index in range(TASKS):
                tg.start_soon(run_one, client, index)
    elapsed = time.monotonic() - started
    state = await emulator_state(emulator_url)

    completed = wrong = untyped = 0
    errors: Counter[str] = Counter()
    for text, outcome in zip(texts, outcomes, strict=True):
        if isinstance(outcome, TaskResult):
            completed += 1
            wrong += outcome.message != f'Completed the task "{text}" in the emulator.'
        elif isinstance(outcome, WebRunError):
            errors[type(outcome).__name__] += 1
        else:
            untyped += 1
    no_outcome = sum(1 for n in settled if n == 0)
    twice = sum(1 for n in settled if n > 1)
    lost = no_outcome + twice + wrong + untyped + len(state["liveSessions"])
    print(
        f"\nsoak: {TASKS} tasks, {CONCURRENCY} at a time, in {elapsed:.1f} s "
        f"({TASKS / elapsed:.0f} tasks/s)\n"
        f"  completed {completed}, typed errors {sum(errors.values())} {dict(errors)}\n"
        f"  faults injected {state['faultsInjected']}\n"
        f"  sessions created {state['sessionsCreated']}, live after close "
        f"{len(state['liveSessions'])}\n"
        f"  lost: {no_outcome} without an outcome, {twice} settled twice, {wrong} wrong "
        f"results, {untyped} untyped errors -> {lost} in all"
    )
    assert lost == 0
    assert state["sessionsCreated"] <= TASKS
    assert completed > TASKS * 0.8
    assert sum(state["faultsInjected"].values()) > 0
