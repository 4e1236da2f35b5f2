"""The examples work: the web app relays a task's live events over real HTTP, and every
example script runs to completion against the built-in emulator, the way a person runs it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import msgspec
import pytest

from tests.support import wait_until
from webrun_async import AsyncWebRun
from webrun_async.emulator import Emulator

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    sys.path.insert(0, str(EXAMPLES))  # the examples import their shared _common module
    try:
        spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(EXAMPLES))


async def read_events(response: aiohttp.ClientResponse) -> list[tuple[str, Any]]:
    """Server-Sent Events of a whole response, parsed the simple way the app writes them."""
    events: list[tuple[str, Any]] = []
    name = None
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((name or "message", msgspec.json.decode(line.removeprefix("data: "))))
    return events


async def test_web_app_relays_live_events(client: AsyncWebRun, emulator: Emulator) -> None:
    web_app = load_example("web_app")
    async with web_app.serving(client, 0) as url, aiohttp.ClientSession() as http:
        async with http.get(url + "/") as page:
            assert page.status == 200
            assert "EventSource" in await page.text()
        task = "Find keyboards [[events=4]] [[duration=0.4]]"
        async with http.get(url + "/tasks/stream", params={"task": task}) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            events = await read_events(response)
    names = [name for name, _ in events]
    assert names[0] == "update"
    assert names.count("thought") + names.count("action") == 4
    assert names[-1] == "result"
    assert "Find keyboards" in events[-1][1]["message"]
    assert events[-1][1]["cost"] > 0
    assert emulator.live_sessions() == []


async def test_web_app_relays_a_failure(client: AsyncWebRun) -> None:
    web_app = load_example("web_app")
    async with web_app.serving(client, 0) as url, aiohttp.ClientSession() as http:
        params = {"task": "Doomed [[fail=PAGE_CRASH]]"}
        async with http.get(url + "/tasks/stream", params=params) as response:
            events = await read_events(response)
    crash = {"error": "Browser page crashed during execution", "code": "PAGE_CRASH"}
    assert events[-1] == ("error", crash)


async def test_web_app_stops_the_task_when_the_browser_leaves(
    client: AsyncWebRun, emulator: Emulator
) -> None:
    web_app = load_example("web_app")
    async with web_app.serving(client, 0) as url, aiohttp.ClientSession() as http:
        params = {"task": "Long [[duration=30]] [[events=2]]"}
        async with http.get(url + "/tasks/stream", params=params) as response:
            first = await response.content.readline()
            assert first.startswith(b"event: ")
            assert emulator.live_sessions()
        # the browser has gone; the app must cancel the task and end its session
        await wait_until(lambda: emulator.live_sessions() == [])


async def test_web_app_rejects_an_empty_task(client: AsyncWebRun) -> None:
    web_app = load_example("web_app")
    async with (
        web_app.serving(client, 0) as url,
        aiohttp.ClientSession() as http,
        http.get(url + "/tasks/stream", params={"task": ""}) as response,
    ):
        assert response.status == 400
        assert "task_details" in await response.text()


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("quickstart.py", "Total cost: $"),
        ("scraping_orchestrator.py", "Done: 72 products from 24 pages (0 failed)"),
        ("agent_futures.py", "answered from the vault"),
        ("stream_chat.py", "finish: stop]"),
    ],
)
def test_example_scripts_run_against_the_emulator(script: str, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WEBRUN_API_KEY"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        cwd=EXAMPLES.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "running against the built-in emulator" in done.stdout
    assert expected in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("argument", ["many", "0", "1.5"])
def test_the_orchestrator_says_what_is_wrong_with_a_bad_argument(argument: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "scraping_orchestrator.py"), argument],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=EXAMPLES.parent,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "argument concurrency: expected" in done.stderr
    assert done.stdout == ""
