"""What ``webrun batch`` reads: the task file (one JSON object a line) and, to resume, the
outcome lines an earlier run wrote.

Everything is checked before anything starts: a line that is not a task is a usage error
naming the line and the problem (exit 2), and no task is sent.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from webrun_async import InvalidParameterError

from ._console import CommandError
from ._options import TASK_KEY, check_task, describe_refusal, json_value, unknown_key

__all__ = ["EXIT_USAGE", "Job", "parse_jobs", "read_jobs", "read_recorded"]

EXIT_USAGE = 2
ID_KEY = "id"
MAX_ID_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Job:
    """One line of the task file.

    Attributes:
        id: The line's ``id`` (its 1-based line number when it gave none), as a string.
        line: Its line number.
        task: What the agent should do.
        kwargs: The keyword arguments of ``client.tasks.submit``.
        named: Whether the line gave its ``id``.
    """

    id: str
    line: int
    task: str
    kwargs: dict[str, Any]
    named: bool = True


def _usage(where: str, problem: str) -> CommandError:
    return CommandError(f"{where}: {problem}", exit_code=EXIT_USAGE)


def read_jobs(path: str) -> list[Job]:
    """Read and check the task file at ``path`` (``-``: stdin)."""
    name = "stdin" if path == "-" else path
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8-sig") as file:
                text = file.read()
    except UnicodeDecodeError as exc:
        raise _usage(name, f"is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise _usage(name, exc.strerror or str(exc)) from None
    return parse_jobs(name, text.splitlines())


def parse_jobs(name: str, lines: Iterable[str]) -> list[Job]:
    """The jobs of a task file's ``lines``; blank lines are skipped.

    Raises:
        CommandError: (exit 2) the first line that is not a task, and what is wrong with it.
    """
    jobs: list[Job] = []
    used: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        where = f"{name} line {number}"
        job = _parse_line(where, number, text)
        if job.id in used:
            whose = "" if job.named else " (its line number: give the line an id)"
            raise _usage(where, f'id "{job.id}"{whose} is already used on line {used[job.id]}')
        used[job.id] = number
        jobs.append(job)
    return jobs


def _parse_line(where: str, number: int, text: str) -> Job:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _usage(where, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise _usage(where, "not valid JSON (nested too deeply)") from None
    if not isinstance(value, dict):
        raise _usage(where, 'must be a JSON object such as {"task": "..."}')
    task = value.get(TASK_KEY)
    if task is None:
        raise _usage(where, f'has no "{TASK_KEY}" (what the agent should do)')
    if not isinstance(task, str) or not task.strip():
        raise _usage(where, f'"{TASK_KEY}" must be a non-empty string')
    job_id = _job_id(where, value.get(ID_KEY, number))
    options: dict[str, Any] = {}
    for key, item in value.items():
        if key in (TASK_KEY, ID_KEY):
            continue
        problem = unknown_key(key) or json_value(key, item)
        if problem is not None:
            raise _usage(where, problem)
        options[key] = item
    try:
        kwargs = check_task(task, options)
    except InvalidParameterError as exc:
        raise _usage(where, describe_refusal(exc)) from None
    return Job(id=job_id, line=number, task=task, kwargs=kwargs, named=ID_KEY in value)


def _job_id(where: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip() and len(value) <= MAX_ID_LENGTH:
        return value
    raise _usage(
        where, f'"{ID_KEY}" must be a non-empty string (at most {MAX_ID_LENGTH}) or an integer'
    )


def read_recorded(path: str) -> dict[str, str]:
    """The outcomes an earlier run wrote to ``path``: id -> its latest status.

    A last line cut short (the process was killed while writing it) is removed from the file,
    so that appending starts on a fresh line; that task counts as not recorded. A missing file
    records nothing.

    Raises:
        CommandError: (exit 2) a line that is not an outcome line of ``webrun batch``.
    """
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise _usage(f"--out {path}", exc.strerror or str(exc)) from None
    complete, newline, tail = data.rpartition(b"\n")
    whole_tail = bool(tail.strip()) and _outcome(tail) is not None
    if whole_tail:
        complete += newline + tail  # a whole line, only its newline missing
    recorded: dict[str, str] = {}
    for number, line in enumerate(complete.split(b"\n"), start=1):
        if not line.strip():
            continue
        outcome = _outcome(line)
        if outcome is None:
            raise _usage(
                f"--out {path} line {number}",
                "is not an outcome line of webrun batch (give another --out file)",
            )
        recorded[outcome[0]] = outcome[1]
    if whole_tail:
        _repair(path, lambda file: file.write(b"\n"))
    elif tail:
        _repair(path, lambda file: file.truncate(len(complete) + len(newline)))
    return recorded


def _outcome(line: bytes) -> tuple[str, str] | None:
    try:
        value = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    job_id, status = value.get(ID_KEY), value.get("status")
    if not isinstance(job_id, str) or not isinstance(status, str):
        return None
    return job_id, status


def _repair(path: str, fix: Callable[[BinaryIO], object]) -> None:
    try:
        with open(path, "r+b") as file:
            file.seek(0, os.SEEK_END)
            fix(file)
    except OSError as exc:
        raise _usage(f"--out {path}", exc.strerror or str(exc)) from None
