"""The simulation of one task: timed events, guardrail stop, and the final result."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .bodies import guardrail_event
from .directives import failure_message
from .host import SimHost
from .ids import new_hex_id, new_short_id, now_ms
from .output import result_message
from .session import EmulatedTaskStatus, Task
from .store import EmulatedTaskFile

__all__ = ["result_data", "run_script"]

logger = logging.getLogger("webrun_async.emulator")

_THOUGHTS = (
    "Reading the task and planning the first step.",
    "The page has loaded; looking for the relevant section.",
    "Found what looks like the right element; interacting with it.",
    "Checking the page to confirm the step worked.",
)
_ACTIONS = (
    ("navigateUrl", None),
    ("CLICK", "search box"),
    ("TYPE", "search query"),
    ("SCROLL", "results list"),
    ("KEY_PRESS", "Enter"),
    ("captureScreenshot", "visible page"),
)
DEFAULT_URL = "https://example.com"


async def run_script(engine: SimHost, task: Task) -> None:
    """Drive `task` from running to completed or failed (the engine handles stop/terminate)."""
    try:
        await _script(engine, task)
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("simulation of task %s crashed", task.task_id)
        if not task.finished:
            engine.conclude(
                task, EmulatedTaskStatus.FAILED, ("INTERNAL_ERROR", "Internal server error")
            )
            engine.advance(task)


async def _script(engine: SimHost, task: Task) -> None:
    directives = task.directives
    duration = directives.duration
    if duration is None:
        duration = engine.config.task_duration
    limit = task.spec.max_duration_ms / 1000
    end = min(duration, limit)
    count = directives.events
    marks = [duration * (index + 1) / (count + 1) for index in range(count)]
    guard_at = duration / 2 if directives.guardrail is not None else None
    for index, at in enumerate(marks):
        if at > end:
            break
        if guard_at is not None and guard_at <= at:
            await _guardrail(engine, task, guard_at)
            guard_at = None
        await _clock_until(engine, task, at)
        task.session.publish("message", _step_event(task, index))
    if guard_at is not None and guard_at <= end:
        await _guardrail(engine, task, guard_at)
    await _clock_until(engine, task, end)
    if duration > limit:
        code: str | None = "TASK_TIMEOUT"
    else:
        code = directives.fail
    if code is None:
        engine.conclude(task, EmulatedTaskStatus.COMPLETED, ran_for=end)
    else:
        engine.conclude(
            task,
            EmulatedTaskStatus.FAILED,
            (code, failure_message(code, task.spec.max_duration_ms)),
            ran_for=end,
        )
    engine.advance(task)


async def _clock_until(engine: SimHost, task: Task, target: float) -> None:
    """Wait until the task's unpaused time reaches `target` seconds."""
    while True:
        change = task.change_event()
        if not task.clock.running:
            await change.wait()
            continue
        remaining = target - task.clock.elapsed(engine.now())
        if remaining <= 0:
            return
        try:
            async with asyncio.timeout(remaining):
                await change.wait()
        except TimeoutError:
            pass


async def _guardrail(engine: SimHost, task: Task, at: float) -> None:
    """Stop in guardrail state at `at` until a reply resumes the task (or stop cancels us)."""
    await _clock_until(engine, task, at)
    task.guardrail_value = task.directives.guardrail
    task.set_status(EmulatedTaskStatus.GUARDRAIL, engine.now())
    task.session.publish("message", guardrail_event(task))
    while task.status is EmulatedTaskStatus.GUARDRAIL:
        await task.change_event().wait()


def _step_event(task: Task, index: int) -> dict[str, Any]:
    """Agent thoughts and browser actions, alternating."""
    if index % 2 == 0:
        return {"type": "agent", "content": _THOUGHTS[(index // 2) % len(_THOUGHTS)]}
    name, target = _ACTIONS[(index // 2) % len(_ACTIONS)]
    return {
        "type": "action",
        "data": {"name": name, "target": target or task.spec.starting_url or DEFAULT_URL},
    }


def result_data(engine: SimHost, task: Task) -> dict[str, Any]:
    """The `data` of a completed task: message, generated files and captured network."""
    spec = task.spec
    now = time.time()
    files = []
    for index in range(1, task.directives.files + 1):
        filename = f"file-{index}.txt"
        record = EmulatedTaskFile(new_hex_id(), filename, task.directives.file_size)
        engine.store.task_files[record.file_id] = record
        files.append(
            {
                "source": f"https://example.com/files/{filename}",
                "downloadUrl": f"{engine.base_url}/_emulator/files/{record.file_id}/{filename}",
                "filename": filename,
                "timestamp": now_ms(now),
            }
        )
    network = [
        {
            "id": new_short_id(5),
            "taskId": task.task_id,
            "urls": [{"url": spec.starting_url or DEFAULT_URL, "timestamp": now * 1000}],
        }
    ]
    message = result_message(spec.text, spec.output_type, spec.output_schema)
    return {"message": message, "files": files, "network": network}
