"""`python -m webrun_async.emulator`: flags map one-to-one onto `EmulatorConfig` fields."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Any

from .config import EmulatorConfig
from .errors import ConfigError
from .faults import FAULT_KINDS, FaultPlan
from .server import Emulator

__all__ = ["build_parser", "config_from_args", "main"]

CLI_DEFAULT_PORT = 8765
PROG = "python -m webrun_async.emulator"
_MB = 1024 * 1024


def _window(text: str) -> tuple[int, float] | None:
    if text.strip().lower() == "off":
        return None
    count, sep, seconds = text.partition("/")
    try:
        if not sep:
            raise ValueError
        return int(count), float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected COUNT/SECONDS (e.g. 10/60) or 'off', got {text!r}"
        ) from None


def _megabytes(text: str) -> int:
    try:
        return int(float(text) * _MB)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of MB, got {text!r}") from None


def _show_window(value: tuple[int, float] | None) -> str:
    return "off" if value is None else f"{value[0]}/{value[1]:g}"


# EmulatorConfig field -> (flag, metavar, converter, help text).
_FLAGS: dict[str, tuple[str, str | None, Callable[[str], Any] | None, str]] = {
    "host": ("--host", "HOST", str, "bind address"),
    "port": ("--port", "PORT", int, "TCP port, 0 picks a free one"),
    "api_key": ("--api-key", "KEY", str, "the accepted Bearer token"),
    "inline_wait": (
        "--inline-wait",
        "SECONDS",
        float,
        "how long run-task and newTask hold before answering pending",
    ),
    "rate_limit": (
        "--rate-limit",
        "COUNT/SECONDS",
        _window,
        "sliding window per task endpoint (start-session, send-message, run-task, "
        "chat completions, files upload), or 'off'",
    ),
    "account_rate_limit": (
        "--account-rate-limit",
        "COUNT/SECONDS",
        _window,
        "window shared by the profile and environment endpoints, per client IP, or 'off'",
    ),
    "instances": (
        "--instances",
        "N",
        int,
        "browser pool size; each live session holds one instance",
    ),
    "task_duration": (
        "--task-duration",
        "SECONDS",
        float,
        "simulated duration of a task without a [[duration=...]] directive",
    ),
    "session_timeout": (
        "--session-timeout",
        "SECONDS",
        float,
        "inactivity expiry of a session",
    ),
    "balance": ("--balance", "USD", float, "starting account balance"),
    "dialect": ("--dialect", None, None, "answer shapes: canonical or legacy"),
    "strict": ("--strict", None, None, "reject out-of-range values and queueing"),
    "max_upload_bytes": (
        "--max-upload-mb",
        "MB",
        _megabytes,
        "upload cap for task files and profile archives",
    ),
    "signed_url_ttl": (
        "--signed-url-ttl",
        "SECONDS",
        float,
        "validity of profile download URLs",
    ),
    "instance_grace": (
        "--instance-grace",
        "SECONDS",
        float,
        "how long a session survives a lost browser instance before ending (instance_lost)",
    ),
    "sockets": (
        "--no-sockets",
        None,
        None,
        "refuse every socket.io connection (REST, task polling included, still works)",
    ),
    "cors_origins": (
        "--cors-origin",
        "ORIGIN",
        str,
        "let web pages of ORIGIN (e.g. http://localhost:3000, or '*') open socket.io "
        "connections; repeatable (default: same origin only)",
    ),
    "header_timeout": (
        "--header-timeout",
        "SECONDS",
        float,
        "time from a request's first byte to its last header before the connection is closed",
    ),
    "body_timeout": (
        "--body-timeout",
        "SECONDS",
        float,
        "longest pause inside a request body before a 408 and a closed connection",
    ),
    "faults": ("--fault", "KIND=RATE", None, "the fault injection flags below"),
}


def _rate(text: str) -> tuple[str, float]:
    kind, sep, rate = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return kind.strip(), float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected KIND=PROBABILITY (e.g. 503=0.1), got {text!r}"
        ) from None


def _position(text: str) -> tuple[str, int]:
    kind, sep, position = text.partition("@")
    try:
        if not sep:
            raise ValueError
        return kind.strip(), int(position)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected KIND@N (e.g. 503@1: the first API request), got {text!r}"
        ) from None


# FaultPlan field -> (flag, metavar, converter, help text); repeatable flags append.
_FAULT_FLAGS: dict[str, tuple[str, str, Callable[[str], Any], str]] = {
    "rates": (
        "--fault",
        "KIND=RATE",
        _rate,
        f"inject KIND with this probability at each opportunity; repeatable. KIND is one of "
        f"{', '.join(FAULT_KINDS)}",
    ),
    "at": ("--fault-at", "KIND@N", _position, "inject KIND at the Nth opportunity; repeatable"),
    "routes": (
        "--fault-route",
        "'METHOD /path'",
        str,
        "limit HTTP faults to this route (e.g. 'GET /task/{sessionId}/{taskId}'); repeatable",
    ),
    "seed": ("--fault-seed", "N", int, "seed of the fault draws"),
    "retry_after": ("--fault-retry-after", "SECONDS", float, "Retry-After of injected 429s"),
    "storm": ("--fault-storm", "N", int, "429 answers in a row per storm"),
    "slow": ("--fault-slow", "SECONDS", float, "delay of a 'slow' answer"),
    "oversized_bytes": (
        "--fault-oversized-bytes",
        "BYTES",
        int,
        "size of an 'oversized' answer",
    ),
    "instance_gap": (
        "--fault-instance-gap",
        "SECONDS",
        float,
        "how long an 'instance_reconnect' instance stays away",
    ),
}
_REPEATED = ("rates", "at", "routes")


def _default_text(name: str, value: Any) -> str:
    if name == "port":
        return str(CLI_DEFAULT_PORT)
    if name in ("rate_limit", "account_rate_limit"):
        return _show_window(value)
    if name == "max_upload_bytes":
        return f"{value / _MB:g}"
    if value is None:
        return "generated" if name == "api_key" else "unlimited"
    return str(value)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The argument parser; every `EmulatorConfig` field has exactly one flag.

    `prog` names the command in help and errors (`webrun emulator` shares this parser).
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a local emulator of the WebRun API until Ctrl-C or SIGTERM.",
    )
    defaults = EmulatorConfig()
    for field in dataclasses.fields(EmulatorConfig):
        flag, metavar, convert, text = _FLAGS[field.name]
        shown = _default_text(field.name, getattr(defaults, field.name))
        # SUPPRESS: only flags actually given override the dataclass defaults.
        common: dict[str, Any] = {"dest": field.name, "default": argparse.SUPPRESS}
        if field.name == "strict":
            parser.add_argument(flag, action="store_true", help=text, **common)
        elif field.name == "sockets":
            parser.add_argument(flag, action="store_false", help=text, **common)
        elif field.name == "cors_origins":
            parser.add_argument(flag, metavar=metavar, action="append", help=text, **common)
        elif field.name == "dialect":
            parser.add_argument(
                flag, choices=("canonical", "legacy"), help=f"{text} (default: {shown})", **common
            )
        elif convert is not None:
            parser.add_argument(
                flag, metavar=metavar, type=convert, help=f"{text} (default: {shown})", **common
            )
    faults = parser.add_argument_group(
        "fault injection", "make the emulator misbehave on purpose (see FaultPlan)"
    )
    plan = FaultPlan()
    for name, (flag, metavar, convert, text) in _FAULT_FLAGS.items():
        dest = f"fault_{name}"
        if name in _REPEATED:
            faults.add_argument(
                flag, metavar=metavar, type=convert, action="append", dest=dest, help=text
            )
        else:
            shown = getattr(plan, name)
            faults.add_argument(
                flag, metavar=metavar, type=convert, dest=dest, help=f"{text} (default: {shown})"
            )
    return parser


def _fault_plan(values: dict[str, Any]) -> FaultPlan | None:
    """The `FaultPlan` of the fault flags given (popped from `values`), or `None`."""
    given = {name: values.pop(f"fault_{name}") for name in _FAULT_FLAGS}
    given = {name: value for name, value in given.items() if value is not None}
    if not given:
        return None
    options: dict[str, Any] = {}
    for name, value in given.items():
        if name == "rates":
            options[name] = dict(value)
        elif name == "at":
            positions: dict[str, list[int]] = {}
            for kind, position in value:
                positions.setdefault(kind, []).append(position)
            options[name] = positions
        elif name == "routes":
            options[name] = tuple(value)
        else:
            options[name] = value
    return FaultPlan(**options)


def config_from_args(argv: Sequence[str] | None = None, *, prog: str = PROG) -> EmulatorConfig:
    """Parse CLI flags into an `EmulatorConfig`; bad values exit with an error naming the flag."""
    parser = build_parser(prog)
    values = vars(parser.parse_args(argv))
    values.setdefault("port", CLI_DEFAULT_PORT)
    try:
        plan = _fault_plan(values)
        if plan is not None:
            values["faults"] = plan
        return EmulatorConfig(**values)
    except ConfigError as exc:
        if exc.field.startswith("faults."):
            flag = _FAULT_FLAGS[exc.field.removeprefix("faults.")][0]
        else:
            flag = _FLAGS[exc.field][0]
        parser.error(f"argument {flag}: {exc.problem}")


async def _serve(config: EmulatorConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with Emulator(config=config) as emulator:
        line = f"WebRun emulator listening on {emulator.base_url}"
        if config.api_key is None:
            # The generated key is the emulator's own, so showing it leaks nothing.
            line += f" (API key: {emulator.api_key})"
        print(line, flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """Entry point of `python -m webrun_async.emulator` (and of `webrun emulator`)."""
    config = config_from_args(argv, prog=prog)
    # This is a program, not a library: its warnings (a non-loopback bind...) go to stderr.
    logging.basicConfig(level=logging.WARNING, format=f"{prog}: %(levelname)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(config))
    return 0
