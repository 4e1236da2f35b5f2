"""``main()``: parse, run the command in one client, and turn every failure into one line.

Exit codes: 0 success; 1 an error (``webrun: error: <message>`` on stderr, never a traceback
unless ``--debug``), or a batch with a task that did not complete; 2 bad usage (argparse's
errors, any value the SDK refuses before sending, a malformed batch file); 130 interrupted
(Ctrl-C); 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import Any, TextIO

from webrun_async import (
    AsyncWebRun,
    AuthenticationError,
    ConfigurationError,
    GuardrailTriggered,
    InvalidParameterError,
    TaskFailed,
    WebRunError,
)

from ._console import CommandError, Console
from ._options import OPTIONS
from ._parser import EMULATOR, build_parser

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "main",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM

# The status line of `webrun run` shows the cost so far, which only polls report: poll every
# few seconds even while the socket is healthy (task polls are not rate limited).
SAFETY_POLL_INTERVAL = 5.0
# `webrun health` needs no key (the endpoint takes none; the client sends none for it).
NO_KEY_NEEDED = frozenset({"health"})


class Terminated(Exception):
    """The process was asked to stop (SIGTERM); like Ctrl-C, the task was cleaned up first."""


MISSING_KEY = (
    "no API key: set WEBRUN_API_KEY (or pass --api-key KEY); to try WebRun locally, run "
    "'webrun emulator --api-key KEY' and set WEBRUN_BASE_URL to the URL it prints"
)

# The SDK names the parameters it rejects; say which flag they came from instead.
FLAGS = {
    **{option.parameter: option.flag for option in OPTIONS},
    "files": "--file",
    "model": "--model",
    "description": "--description",
    "name": "NAME",
    "task_details": "TASK",
    "messages": "QUESTION",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``webrun`` with ``argv`` (the process's arguments by default); returns the exit code."""
    console = Console()
    debug = False
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        debug = args.debug
        _configure_output(console, debug)
        if args.command == EMULATOR:
            # Imported here: the emulator's server stack is not needed by the other commands.
            from webrun_async.emulator.cli import main as emulator_main

            # Everything after 'emulator' belongs to the emulator's own parser.
            return emulator_main(extra, prog=f"{parser.prog} {EMULATOR}")
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return asyncio.run(_run(args, console))
    except SystemExit as exc:  # argparse: --help, --version and usage errors
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or EXIT_OK
        return EXIT_ERROR
    except BaseException as exc:  # every failure ends as one line
        return _report(console, exc, debug)


async def _run(args: argparse.Namespace, console: Console) -> int:
    # A command may read and check its input first, before anything starts, and choose the
    # client's options (`webrun batch`: its file, its concurrency and rate limit).
    prepare = getattr(args, "prepare", None)
    options: dict[str, Any] = prepare(args) if prepare is not None else {}
    key = args.api_key if args.api_key is not None else os.environ.get("WEBRUN_API_KEY")
    if not key or not key.strip():
        if args.command not in NO_KEY_NEEDED:
            raise CommandError(MISSING_KEY)
        key = "unused"  # never sent: the command's endpoint takes no key
    terminated = _cancel_on_sigterm()
    try:
        async with AsyncWebRun(
            key, base_url=args.base_url, safety_poll_interval=SAFETY_POLL_INTERVAL, **options
        ) as client:
            await args.handler(client, args, console)
    except asyncio.CancelledError:
        if terminated.is_set():  # the command cleaned up on its way out: a task is ended
            raise Terminated("terminated") from None
        raise
    return EXIT_OK


def _cancel_on_sigterm() -> asyncio.Event:
    """Make SIGTERM cancel the command like Ctrl-C does, so a running task is ended first."""
    terminated = asyncio.Event()
    task = asyncio.current_task()

    def stop() -> None:
        terminated.set()
        if task is not None:
            task.cancel()

    # Not on Windows, where the loop has no signal handlers: SIGTERM ends it at once there.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop)
    return terminated


def _configure_output(console: Console, debug: bool) -> None:
    """Debug logging with ``--debug``. Otherwise the SDK's warnings (retries, rate-limit holds)
    show on the transient status line of a terminal, and its errors as lasting lines."""
    if debug:
        logging.basicConfig(
            level=logging.DEBUG,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        return
    sdk = logging.getLogger("webrun_async")
    for handler in [h for h in sdk.handlers if isinstance(h, _ConsoleHandler)]:
        sdk.removeHandler(handler)  # main() run again in one process: one handler only
    sdk.addHandler(_ConsoleHandler(console))
    sdk.setLevel(logging.WARNING)
    sdk.propagate = False

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        console.print(f"webrun: warning: {_one_line(str(message))}", err=True)

    warnings.showwarning = show


class _ConsoleHandler(logging.Handler):
    """Log records as ``webrun: <level>: <message>``: warnings pass by, errors stay."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.WARNING)
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"webrun: {record.levelname.lower()}: {_one_line(record.getMessage())}"
            if record.levelno >= logging.ERROR:
                self._console.print(text, err=True)
            else:
                self._console.status(text)
        except Exception:  # logging must never break the command
            self.handleError(record)


def _report(console: Console, exc: BaseException, debug: bool) -> int:
    """Say what went wrong in one line on stderr; returns the exit code."""
    exc = _unwrap(exc)
    if isinstance(exc, BrokenPipeError):
        # Whoever read stdout stopped (``webrun models | head -1``): not worth a message.
        _silence_stdout()
        return EXIT_ERROR
    code, message = _describe(exc)
    console.clear_status()
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    try:
        console.print(f"webrun: error: {_one_line(message)}", err=True)
    except OSError:  # stderr itself is gone: the exit code still tells
        pass
    return code


def _silence_stdout() -> None:
    """Point stdout at the null device, so that the final flush at exit cannot fail again."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _unwrap(exc: BaseException) -> BaseException:
    """The error inside task-group wrappers that hold just one."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(exc, Terminated):
        return EXIT_TERMINATED, "terminated"
    if isinstance(exc, CommandError):
        return exc.exit_code, str(exc)
    if isinstance(exc, TaskFailed):
        return EXIT_ERROR, f"the task failed: {exc}"
    if isinstance(exc, GuardrailTriggered):
        return EXIT_ERROR, f"the agent asked for input nobody could give: {exc.value}"
    if isinstance(exc, InvalidParameterError):  # refused before anything was sent
        where = FLAGS.get(exc.parameter)
        return EXIT_USAGE, f"{where}: {exc.problem}" if where else str(exc)
    if isinstance(exc, ConfigurationError):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, AuthenticationError):
        return EXIT_ERROR, f"{exc} (check WEBRUN_API_KEY or --api-key)"
    if isinstance(exc, WebRunError):
        return EXIT_ERROR, str(exc) or type(exc).__name__
    if isinstance(exc, OSError):
        return EXIT_ERROR, _os_error(exc)
    return EXIT_ERROR, f"unexpected {type(exc).__name__}: {exc} (run with --debug for details)"


def _os_error(exc: OSError) -> str:
    if exc.strerror and exc.filename is not None:
        return f"{exc.strerror}: {exc.filename}"
    return exc.strerror or str(exc) or type(exc).__name__


def _one_line(text: str) -> str:
    return " ".join(text.split())
