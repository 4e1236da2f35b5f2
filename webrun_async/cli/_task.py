"""``webrun run`` (one task: live events, then its result) and ``webrun chat`` (streamed)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable
from typing import Any

import anyio
import msgspec

from webrun_async import AsyncWebRun, TaskHandle, TaskResult
from webrun_async.types import AgentThought, BrowserAction, ResponseUpdate, TaskGuardrail

from ._console import CommandError, Console, is_terminal
from ._options import flag_values

__all__ = ["ask", "chat", "run"]

TICK = 0.2
"""Seconds between two redraws of the running task's status line."""

Show = Callable[[str], None]


async def run(client: AsyncWebRun, args: argparse.Namespace, console: Console) -> None:
    """Run one task: print its events as they arrive, then its result and what it cost.

    With ``--json`` stdout gets one JSON object at the end and nothing else; the events go to
    stderr, and only when it is a terminal. If this is interrupted (Ctrl-C), the task is
    cancelled and its session terminated before the error goes up.
    """
    handle = client.tasks.submit(args.task, **flag_values(args))
    show: Show = console.print
    if args.json:
        show = _to_stderr(console) if console.live else _nowhere
    try:
        await _follow(client, handle, console, show, json_mode=args.json)
        result = await handle
    except BaseException:
        if not handle.final:  # interrupted or failed here: the task must not run on and cost
            with anyio.CancelScope(shield=True):
                await handle.cancel()
        raise
    finally:
        console.clear_status()
    if args.json:
        console.print(msgspec.json.encode(result).decode())
        return
    _print_result(result, console)


def _to_stderr(console: Console) -> Show:
    def show(text: str) -> None:
        console.print(text, err=True)

    return show


def _nowhere(text: str) -> None:
    del text


async def _follow(
    client: AsyncWebRun,
    handle: TaskHandle[Any],
    console: Console,
    show: Show,
    *,
    json_mode: bool,
) -> None:
    """Show the task's progress events until its final state arrives."""
    ticker = asyncio.ensure_future(_tick(handle, console, client)) if console.live else None
    try:
        async for event in handle.events():
            if isinstance(event, ResponseUpdate):
                show(f"update: {event.message}")
            elif isinstance(event, AgentThought):
                show(f"thinking: {event.content}")
            elif isinstance(event, BrowserAction):
                show(" ".join(part for part in ("action:", event.name, event.target) if part))
            elif isinstance(event, TaskGuardrail):
                await _guardrail(handle, event, console, show, json_mode=json_mode)
    finally:
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker


async def _tick(handle: TaskHandle[Any], console: Console, client: AsyncWebRun) -> None:
    """Keep the status line up to date: what the task is doing, for how long, at what cost,
    and how long the client-side rate limit holds it back."""
    started = asyncio.get_running_loop().time()
    while True:
        if handle.status == "guardrail":
            console.clear_status()  # the prompt owns the line while the user types
        else:
            elapsed = asyncio.get_running_loop().time() - started
            reported = handle.usage.cost
            cost = f"${reported:.4f}" if reported else f"at least ${handle.min_cost:.4f}"
            line = f"{handle.status} for {elapsed:.1f}s, {cost} so far"
            stats = client.stats
            if stats.rate_limit_waiting:
                line += f" (rate limit: waiting {stats.rate_limit_wait:.0f}s)"
            console.status(line)
        await asyncio.sleep(TICK)


async def _guardrail(
    handle: TaskHandle[Any], prompt: TaskGuardrail, console: Console, show: Show, *, json_mode: bool
) -> None:
    """The agent asks for input: ask the person at the terminal, or end the task."""
    question = " ".join(prompt.value.split())
    if not is_terminal(sys.stdin):
        show(f"question: {question}")
        await handle.terminate()
        raise CommandError(
            f'the agent asked "{question}" but stdin is not a terminal to answer it on; '
            "the task was ended"
        )
    console.print(f"question: {question}", err=json_mode)
    while True:
        answer = await ask(console, "answer (Enter to send, Ctrl-D to end the task)> ")
        if answer is None:
            await handle.terminate()
            raise CommandError(f'no answer to "{question}"; the task was ended')
        if answer.strip():
            break
    await handle.respond(answer)


async def ask(console: Console, prompt: str) -> str | None:
    """Prompt on stderr and read one line from stdin; ``None`` at end of input.

    The line is read by a daemon thread, so an interrupted prompt never keeps the process
    alive waiting for input.
    """
    console.clear_status()
    console.err.write(prompt)
    console.err.flush()
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[str] = loop.create_future()

    def deliver(line: str) -> None:
        if not answered.done():
            answered.set_result(line)

    def read() -> None:
        try:
            line = sys.stdin.readline()
        except (OSError, ValueError):
            line = ""
        with contextlib.suppress(RuntimeError):  # the loop may be gone if we were interrupted
            loop.call_soon_threadsafe(deliver, line)

    threading.Thread(target=read, name="webrun-stdin", daemon=True).start()
    line = await answered
    if not line:
        console.err.write("\n")  # Ctrl-D left the cursor after the prompt
        return None
    return line.rstrip("\r\n")


def _print_result(result: TaskResult[Any], console: Console) -> None:
    if result.message:
        console.print(result.message.rstrip("\n"))
    for file in result.files:
        console.print(f"file: {file.filename or '-'} {file.download_url}")
    usage = result.usage
    console.print(
        f"cost: ${usage.cost:.4f}  tokens: {usage.total_tokens} "
        f"({usage.prompt_tokens} in, {usage.completion_tokens} out)  "
        f"time: {usage.completion_time:.1f}s"
    )


async def chat(client: AsyncWebRun, args: argparse.Namespace, console: Console) -> None:
    """Ask the OpenAI-compatible endpoint one question and stream the answer to stdout."""
    stream = await client.chat.completions.create(
        model=args.model, messages=[{"role": "user", "content": args.question}], stream=True
    )
    line_open = False
    try:
        async with stream:  # leaving the block, for any reason, closes the response
            async for chunk in stream:
                for choice in chunk.choices:
                    text = choice.delta.content
                    if text:
                        console.write(text)
                        line_open = not text.endswith("\n")
    finally:
        if line_open:  # end the answer's line, even if it was cut short
            console.write("\n")
