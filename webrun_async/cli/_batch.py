"""``webrun batch FILE``: many tasks, a few at a time, one JSON line per outcome.

The file has one task a line, ``{"task": "...", "id": "...", ...options}`` (the options of
``webrun run``, named after its flags; see :mod:`webrun_async.cli._options`), and is checked
whole before anything starts. The tasks run through one client: ``--concurrency`` at a time
(the client's ``max_sessions`` too, so no more sessions are ever live), their starts paced by
the client's rate limiter. Each outcome is one JSON line, written whole and flushed, in the
order the tasks end::

    {"id": "3", "status": "completed", "message": "...", "output": null, "files": [],
     "question": null, "error": null, "cost": 0.0121, "session_id": "...", "task_id": "..."}

``status`` is ``completed``, ``failed``, ``guardrail`` (the agent asked a question: nobody is
there to answer, so the task's session is ended and the question recorded), ``terminated``,
``timed_out``, ``budget_exceeded``, ``invalid_output`` or ``error``; ``error`` is
``{"type", "code", "message"}`` for all but ``completed``.

With ``--out FILE`` the lines are appended to FILE, and the ids it records already are
skipped: run the same command again to resume. ``--retry-failed`` runs the ids whose latest
outcome there is not ``completed`` again. Exit 0 when every task of the file has completed
(now or in an earlier run), 1 otherwise, 2 for a bad file.

An error about the account (401, 402, 403) stops the batch: nothing new starts, and no line
is written for it, so a run after the fix does those tasks. ``--budget`` once spent stops it
too (the tasks it stopped are recorded as ``budget_exceeded``; those it kept from starting are
not). Ctrl-C and SIGTERM cancel the running tasks, ending their sessions, and write nothing
for them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
from collections import Counter, deque
from collections.abc import Callable, Iterator
from typing import Any, TextIO, TypeVar

import anyio
import msgspec

from webrun_async import (
    AsyncWebRun,
    AuthenticationError,
    BudgetExceeded,
    GuardrailTriggered,
    InsufficientBalanceError,
    OutputValidationError,
    PermissionDeniedError,
    RateLimit,
    RateLimits,
    SessionTerminated,
    TaskError,
    TaskFailed,
    TaskHandle,
    TaskResult,
    TaskTimeoutError,
    WebRunError,
)

from ._console import CommandError, Console
from ._jobs import Job, read_jobs, read_recorded
from ._options import OPTIONS
from ._progress import BatchProgress, Tally

_N = TypeVar("_N", int, float)

__all__ = ["COMPLETED", "add_batch", "batch", "client_options", "rate_limit"]

COMPLETED = "completed"
DEFAULT_CONCURRENCY = 10
"""Tasks at a time by default: as many as the service's rate limit lets start in a minute."""
DEFAULT_RATE = "10/60"
DEFAULT_PROGRESS_EVERY = 10.0

# Errors about the account, not the task: every other task would meet them too. They stop
# the batch (nothing new starts) and are not recorded, so that a run after the fix does them.
ACCOUNT_ERRORS = (AuthenticationError, PermissionDeniedError, InsufficientBalanceError)

Outcome = dict[str, Any]


def rate_limit(text: str) -> RateLimit | None:
    """A ``--rate-limit`` value: ``COUNT/SECONDS`` or ``off``."""
    if text.strip().lower() == "off":
        return None
    count, slash, seconds = text.partition("/")
    try:
        limit = RateLimit(int(count), float(seconds)) if slash else None
    except (ValueError, WebRunError):
        limit = None
    if limit is None:
        raise argparse.ArgumentTypeError(f"must be COUNT/SECONDS (such as 10/60) or off: {text!r}")
    return limit


def _checked(
    convert: Callable[[str], _N], accept: Callable[[_N], bool], wanted: str
) -> Callable[[str], _N]:
    """An argparse type: ``convert`` the text and require ``accept`` of the value."""

    def parse(text: str) -> _N:
        try:
            value: _N | None = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}: {text!r}")
        return value

    return parse


_positive_int = _checked(int, lambda value: value >= 1, "a whole number of 1 or more")
_seconds = _checked(float, lambda value: value >= 0, "a number of seconds (0 or more)")
_usd = _checked(float, lambda value: 0 < value < math.inf, "a positive number of USD")


def add_batch(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``webrun batch``."""
    options = ", ".join(f'"{option.key}"' for option in OPTIONS)
    parser.epilog = (
        'Each line is a JSON object: {"task": "...", "id": "..."} plus any of ' + options
        + " (the options of 'webrun run'). One JSON line per outcome goes to stdout or --out. "
        "Exit 0 when every task completed, 1 otherwise, 2 for a bad file."
    )  # fmt: skip
    parser.add_argument("file", metavar="FILE", help="one JSON task a line ('-': stdin)")
    parser.add_argument(
        "--out", metavar="PATH", help="append the outcome lines here (default: stdout); "
        "ids it records already are skipped, so running again resumes",
    )  # fmt: skip
    parser.add_argument(
        "--retry-failed", action="store_true",
        help="with --out: run again the ids whose recorded outcome is not completed",
    )  # fmt: skip
    parser.add_argument(
        "--concurrency", metavar="N", type=_positive_int, default=DEFAULT_CONCURRENCY,
        help=f"tasks (and sessions) at once (default: {DEFAULT_CONCURRENCY})",
    )  # fmt: skip
    parser.add_argument(
        "--rate-limit", metavar="COUNT/SECONDS", type=rate_limit, default=rate_limit(DEFAULT_RATE),
        help=f"task starts allowed per period, or off (default: {DEFAULT_RATE}, the service's)",
    )  # fmt: skip
    parser.add_argument(
        "--budget", metavar="USD", type=_usd,
        help="stop all work once the batch has cost this much",
    )  # fmt: skip
    parser.add_argument(
        "--progress-every", metavar="SECONDS", type=_seconds, default=DEFAULT_PROGRESS_EVERY,
        help="when stderr is not a terminal, a progress line this often (0: none; "
        f"default: {DEFAULT_PROGRESS_EVERY:g})",
    )  # fmt: skip
    parser.set_defaults(handler=batch, prepare=client_options)


def client_options(args: argparse.Namespace) -> dict[str, Any]:
    """Read and check the task file (and the ``--out`` file) before anything starts; the
    options of the client that will run the batch."""
    if args.retry_failed and args.out is None:
        raise CommandError(
            "--retry-failed needs --out (the file that records the outcomes)", exit_code=2
        )
    args.jobs = read_jobs(args.file)
    args.recorded = read_recorded(args.out) if args.out is not None else {}
    return {
        "max_sessions": args.concurrency,
        "rate_limit": RateLimits(task=args.rate_limit),
        "max_cost": args.budget,
    }


async def batch(client: AsyncWebRun, args: argparse.Namespace, console: Console) -> None:
    """Run the checked jobs of ``args`` (see the module's docstring)."""
    jobs: list[Job] = args.jobs
    recorded: dict[str, str] = args.recorded
    todo = [job for job in jobs if _due(recorded.get(job.id), args.retry_failed)]
    tally = Tally(total=len(todo), skipped=len(jobs) - len(todo))
    limit: RateLimit | None = args.rate_limit
    progress = BatchProgress(
        console,
        client,
        tally,
        rate=limit.requests / limit.period if limit is not None else None,
        slots=args.concurrency,
        every=args.progress_every,
    )
    statuses = dict(recorded)
    with _outcome_stream(args.out, console) as write:
        runner = _Runner(client, todo, tally, write, statuses)
        drawing = asyncio.ensure_future(progress.run())
        try:
            await runner.run(args.concurrency)
        finally:
            drawing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drawing
            progress.finish()
    if runner.stopped_by is not None:
        raise runner.stopped_by
    _verdict(jobs, statuses, args, runner)


def _due(status: str | None, retry_failed: bool) -> bool:
    return status is None or (retry_failed and status != COMPLETED)


def _verdict(
    jobs: list[Job], statuses: dict[str, str], args: argparse.Namespace, runner: _Runner
) -> None:
    """Raise the one-line error the exit code goes with, unless every task completed."""
    if runner.unstarted:
        raise CommandError(
            f"the batch's budget of ${args.budget:g} is spent: {runner.unstarted} tasks were "
            "not started (run again to start them)"
        )
    missing = Counter(statuses.get(job.id, "not run") for job in jobs)
    missing.pop(COMPLETED, None)
    if not missing:
        return
    count = sum(missing.values())
    kinds = ", ".join(f"{n} {status}" for status, n in sorted(missing.items()))
    advice = ""
    if args.out is not None and not args.retry_failed:
        advice = "; --retry-failed runs them again"
    raise CommandError(f"{count} of {len(jobs)} tasks did not complete ({kinds}){advice}")


@contextlib.contextmanager
def _outcome_stream(path: str | None, console: Console) -> Iterator[Callable[[str], None]]:
    """A function writing one outcome line, whole and flushed, to ``path`` or stdout."""
    if path is None:
        yield console.print
        return
    with open(path, "a", encoding="utf-8") as file:
        yield _line_writer(file)


def _line_writer(file: TextIO) -> Callable[[str], None]:
    def write(line: str) -> None:
        file.write(line + "\n")
        file.flush()

    return write


class _Runner:
    """Workers taking jobs in file order, ``concurrency`` at a time, and writing outcomes."""

    def __init__(
        self,
        client: AsyncWebRun,
        jobs: list[Job],
        tally: Tally,
        write: Callable[[str], None],
        statuses: dict[str, str],
    ) -> None:
        self._client = client
        self._queue = deque(jobs)
        self._tally = tally
        self._write = write
        self._statuses = statuses
        self.stopped_by: BaseException | None = None
        self.unstarted = 0

    async def run(self, concurrency: int) -> None:
        async with anyio.create_task_group() as group:
            for _ in range(min(concurrency, len(self._queue))):
                group.start_soon(self._work)

    async def _work(self) -> None:
        while self._queue and self.stopped_by is None and not self.unstarted:
            job = self._queue.popleft()
            try:
                handle = self._client.tasks.submit(job.task, **job.kwargs)
            except BudgetExceeded:  # the client's --budget is spent: nothing more starts
                self.unstarted = len(self._queue) + 1
                return
            outcome = await self._follow(job, handle)
            if outcome is not None:
                self._record(job, outcome)

    async def _follow(self, job: Job, handle: TaskHandle[Any]) -> Outcome | None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._tally.running[job.id] = handle
        try:
            outcome = await _settle(handle, job)
            self._tally.durations += loop.time() - started
            return outcome
        except ACCOUNT_ERRORS as exc:
            if self.stopped_by is None:
                self.stopped_by = exc
            return None
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM): stop the task so that its session ends and costs
            # nothing more; no line is written for it, so a resumed run does it again.
            if not handle.final:
                with anyio.CancelScope(shield=True):
                    await handle.cancel()
            raise
        finally:
            del self._tally.running[job.id]

    def _record(self, job: Job, outcome: Outcome) -> None:
        self._write(msgspec.json.encode(outcome).decode())
        self._statuses[job.id] = outcome["status"]
        self._tally.done += 1
        self._tally.cost += outcome["cost"]
        if outcome["status"] != COMPLETED:
            self._tally.failed += 1


async def _settle(handle: TaskHandle[Any], job: Job) -> Outcome:
    """Wait for the task's outcome; a question from the agent ends its session."""
    try:
        return _completed(job, await handle)
    except GuardrailTriggered as exc:
        await handle.terminate()  # nobody to answer: the task must not wait, and cost, on
        return _failed(job, handle, "guardrail", exc, question=exc.value)
    except TaskFailed as exc:
        return _failed(job, handle, "failed", exc, code=exc.code)
    except BudgetExceeded as exc:
        outcome = _failed(job, handle, "budget_exceeded", exc)
        if exc.limit == job.kwargs.get("max_cost"):  # its own limit: what it spent is its own
            outcome["cost"] = max(outcome["cost"], exc.spent)
        if exc.result is not None:  # it completed over its limit, inside the hold
            outcome.update(_result_fields(exc.result))
        return outcome
    except TaskTimeoutError as exc:
        return _failed(job, handle, "timed_out", exc)
    except OutputValidationError as exc:
        outcome = _failed(job, handle, "invalid_output", exc)
        outcome["message"] = exc.result.message
        return outcome
    except SessionTerminated as exc:
        return _failed(job, handle, "terminated", exc)
    except ACCOUNT_ERRORS:
        raise
    except WebRunError as exc:
        return _failed(job, handle, "error", exc, code=getattr(exc, "code", None))


def _blank(job: Job, status: str, handle: TaskHandle[Any] | None = None) -> Outcome:
    """An outcome line with every key, as far as ``handle`` knows it."""
    return {
        "id": job.id,
        "status": status,
        "message": None,
        "output": None,
        "files": [],
        "question": None,
        "error": None,
        "cost": max(handle.usage.cost, handle.min_cost) if handle is not None else 0.0,
        "session_id": handle.session_id if handle is not None else None,
        "task_id": handle.task_id if handle is not None else None,
    }


def _result_fields(result: TaskResult[Any]) -> Outcome:
    return {
        "message": result.message,
        "output": result.output,
        "files": [{"filename": f.filename, "download_url": f.download_url} for f in result.files],
        "cost": result.usage.cost,
        "session_id": result.session_id,
        "task_id": result.task_id,
    }


def _completed(job: Job, result: TaskResult[Any]) -> Outcome:
    return {**_blank(job, COMPLETED), **_result_fields(result)}


def _failed(
    job: Job,
    handle: TaskHandle[Any],
    status: str,
    exc: WebRunError,
    *,
    code: object = None,
    question: str | None = None,
) -> Outcome:
    outcome = _blank(job, status, handle)
    usage = exc.usage if isinstance(exc, TaskError) else None
    if usage is not None and usage.cost > outcome["cost"]:
        outcome["cost"] = usage.cost
    message = exc.message if isinstance(exc, TaskError) else str(exc)
    outcome["error"] = {"type": type(exc).__name__, "code": code, "message": message}
    outcome["question"] = question
    return outcome
