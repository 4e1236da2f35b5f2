"""``webrun run`` (one task: live events, then its result) and ``webrun chat`` (streamed)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec

from webrun_async import AsyncWebRun, TaskHandle, TaskResult, WebRunError
from webrun_async.types import AgentThought, BrowserAction, ResponseUpdate, TaskGuardrail

from ._console import CommandError, Console, is_terminal
from ._options import flag_values

__all__ = ["ask", "chat", "run"]

TICK = 0.2
"""Seconds between two redraws of the running task's status line."""

Show = Callable[[str], None]


async def run(client: AsyncWebRun, args: argparse.Namespace, console: Console) -> None:
    """Run one task: print its events as they arrive, then its result and what it cost.

    With ``--json`` stdout gets one JSON object at the end and nothing else, the outcome
    whether the task completed or not; the events go to stderr, and only when it is a
    terminal. If this is interrupted (Ctrl-C), the task is cancelled and its session
    terminated before the error goes up.
    """
    kwargs = flag_values(args)
    if args.files:
        kwargs["files"] = await client.files.upload(*(Path(path) for path in args.files))
    handle = client.tasks.submit(args.task, **kwargs)
    show: Show = console.print
    if args.json:
        show = _to_stderr(console) if console.live else _nowhere
    try:
        await _follow(client, handle, console, show, args)
        result = await handle
    except BaseException as exc:
        if not handle.final:  # interrupted or failed here: the task must not run on and cost
            with anyio.CancelScope(shield=True):
                await handle.cancel()
        if args.json and isinstance(exc, WebRunError):
            console.print(msgspec.json.encode(_failure(handle, exc)).decode())
        raise
    finally:
        console.clear_status()
    if args.json:
        console.print(msgspec.json.encode(result).decode())
        return
    _print_result(result, console)


def _failure(handle: TaskHandle[Any], exc: WebRunError) -> dict[str, Any]:
    """The ``--json`` object of a task that did not complete."""
    return {
        "status": handle.status,
        "error": {
            "type": type(exc).__name__,
            "message": str(exc),
            "code": getattr(exc, "code", None),
        },
        "session_id": handle.session_id,
        "task_id": handle.task_id,
        "usage": msgspec.to_builtins(handle.usage),
    }


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
    args: argparse.Namespace,
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
                await _guardrail(handle, event, console, show, args)
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


# Questions whose answer is likely a secret: the answer is then read without echo.
_SECRET_QUESTION = re.compile(
    r"pass(word|code|phrase)|\bpin\b|\botp\b|one[- ]time|\bcode\b|secret|token|\b2fa\b|"
    r"\bmfa\b|verification|credential|security (question|answer)",
    re.IGNORECASE,
)


async def _guardrail(
    handle: TaskHandle[Any],
    prompt: TaskGuardrail,
    console: Console,
    show: Show,
    args: argparse.Namespace,
) -> None:
    """The agent asks for input: ask the person at the terminal, or read a line from stdin.

    Through a pipe each question takes the next non-empty line; at the end of input the task
    is ended. On a terminal an answer is not echoed when the question looks like it asks for
    a secret, or always with ``--hide-answers``.
    """
    question = " ".join(prompt.value.split())
    terminal = is_terminal(sys.stdin)
    if terminal:
        console.print(f"question: {question}", err=args.json)
    else:
        show(f"question: {question}")
    hidden = terminal and (args.hide_answers or bool(_SECRET_QUESTION.search(question)))
    label = "answer, not shown" if hidden else "answer"
    while True:
        answer = await ask(
            console,
            f"{label} (Enter to send, Ctrl-D to end the task)> " if terminal else "",
            hidden=hidden,
        )
        if answer is None:
            await handle.terminate()
            raise CommandError(f'no answer to "{question}"; the task was ended')
        if answer.strip():
            break
    await handle.respond(answer)


async def ask(console: Console, prompt: str, *, hidden: bool = False) -> str | None:
    """Prompt on stderr and read one line from stdin; ``None`` at end of input.

    The line is read by a daemon thread, so an interrupted prompt never keeps the process
    alive waiting for input. With `hidden` (a terminal only) typing is not echoed; the
    terminal's settings are restored here, however the wait ends.
    """
    console.clear_status()
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

    with _echo_off(hidden):  # before the prompt: what is typed after it never shows
        if prompt:
            console.err.write(prompt)
            console.err.flush()
        threading.Thread(target=read, name="webrun-stdin", daemon=True).start()
        line = await answered
    if prompt and (hidden or not line):
        console.err.write("\n")  # the Enter (or Ctrl-D) was not echoed
    return line.rstrip("\r\n") if line else None


@contextlib.contextmanager
def _echo_off(hidden: bool) -> Iterator[None]:
    """Turn the terminal's echo off for the block (a no-op unless `hidden`)."""
    if not hidden:
        yield
        return
    try:
        import termios

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
    except (ImportError, OSError, ValueError):  # not a POSIX terminal: nothing to hide
        yield
        return
    quiet = list(saved)
    quiet[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSADRAIN, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


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
