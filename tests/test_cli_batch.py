"""``webrun batch``, run as a person runs it: the installed script in a subprocess, against
``webrun emulator`` in another (the ``served`` fixture), or against an in-process emulator
where a test needs what only the ``Emulator`` object tells (the peak of live sessions).

Nothing here sleeps for a fixed time: the tests wait for output lines, the process's exit or
a condition of the emulator, each with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.cli_support import (
    DEADLINE,
    KEY,
    POSIX,
    WEBRUN,
    Lines,
    Served,
    Webrun,
    in_a_terminal,
    one_error_line,
    until,
)
from tests.support import FAST_EMULATOR
from webrun_async.cli._progress import estimate, format_duration
from webrun_async.emulator import Emulator

FIELDS = [
    "id", "status", "message", "output", "files", "question", "error", "cost", "session_id",
    "task_id",
]  # fmt: skip
FAST = ("--rate-limit", "off", "--progress-every", "0")
PRICE_SCHEMA = {"type": "object", "properties": {"price": {"type": "number"}}}


def task_file(path: Path, *lines: dict[str, Any] | str) -> str:
    """Write a task file (dicts become JSON lines, strings are written as they are)."""
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path.name


def outcomes(text: str) -> dict[str, dict[str, Any]]:
    """The outcome lines of ``text`` by id; each line is a whole JSON object of every field."""
    found: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        outcome = json.loads(line)
        assert list(outcome) == FIELDS, outcome
        found[outcome["id"]] = outcome
    return found


def created(served: Served) -> int:
    return int(served.state()["sessionsCreated"])


# -- what it writes -----------------------------------------------------------------------------


def test_one_line_per_outcome(webrun: Webrun, served: Served, tmp_path: Path) -> None:
    name = task_file(
        tmp_path / "tasks.jsonl",
        {"id": "keyboards", "task": "Find keyboards [[duration=0.2]]"},
        {"task": "Doomed [[fail=NAVIGATION_TIMEOUT]]"},
        {"task": "Log in [[guardrail=need a password]] [[duration=0.4]]", "max_duration": 60},
        "",
        {"task": "Prices", "output_schema": PRICE_SCHEMA, "start_url": "https://example.com",
         "max_cost": 1},
    )  # fmt: skip
    done = webrun("batch", name, *FAST)
    assert one_error_line(done) == (
        "webrun: error: 2 of 4 tasks did not complete (1 failed, 1 guardrail)"
    )
    found = outcomes(done.stdout)
    assert sorted(found) == ["2", "3", "5", "keyboards"]  # default ids: the line numbers
    assert {id_: o["status"] for id_, o in found.items()} == {
        "keyboards": "completed", "2": "failed", "3": "guardrail", "5": "completed",
    }  # fmt: skip
    assert found["keyboards"]["message"] == 'Completed the task "Find keyboards" in the emulator.'
    assert found["keyboards"]["error"] is None
    assert found["2"]["error"] == {
        "type": "TaskFailed", "code": "NAVIGATION_TIMEOUT",
        "message": "Navigation timeout after 30 seconds",
    }  # fmt: skip
    assert found["3"]["question"] == "need a password"
    assert found["3"]["error"]["type"] == "GuardrailTriggered"
    assert isinstance(found["5"]["output"]["price"], float)
    for outcome in found.values():
        assert outcome["cost"] > 0
        assert outcome["session_id"] and outcome["task_id"]
    assert served.state()["liveSessions"] == []  # the guardrail's session was ended too


def test_every_task_completed_is_exit_0_and_blank_lines_are_skipped(
    webrun: Webrun, tmp_path: Path
) -> None:
    stdin = "\n".join(json.dumps({"task": f"Page {n}"}) for n in range(3)) + "\n\n  \n"
    done = webrun("batch", "-", *FAST, stdin=stdin)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # --progress-every 0: quiet
    found = outcomes(done.stdout)
    assert sorted(found) == ["1", "2", "3"]
    assert {o["status"] for o in found.values()} == {"completed"}


def test_run_and_batch_take_the_same_options(webrun: Webrun, tmp_path: Path) -> None:
    columns = ["name", "price"]
    ran = webrun(
        "run", "List keyboards", "--output-schema", json.dumps(columns), "--max-cost", "1",
        "--max-duration", "60", "--json",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    name = task_file(
        tmp_path / "t.jsonl",
        {"task": "List keyboards", "output_schema": columns, "max_cost": 1, "max_duration": 60},
    )
    (outcome,) = outcomes(webrun("batch", name, *FAST).stdout).values()
    from_run = json.loads(ran.stdout)["output"]
    assert [list(row) for row in outcome["output"]] == [list(row) for row in from_run]
    assert list(from_run[0]) == columns


# -- malformed files ----------------------------------------------------------------------------

MALFORMED = [
    ('{"task": "x"', r"not valid JSON \(Expecting ',' delimiter at column 13\)"),
    ('["a task"]', r'must be a JSON object such as \{"task": "..."\}'),
    ('{"url": "https://example.com"}', r'has no "task"'),
    ('{"task": ""}', r'"task" must be a non-empty string'),
    ('{"task": "x", "url": "a"}', r'unknown option "url" \(did you mean "start_url"\?\)'),
    ('{"task": "x", "colour": "red"}', r'unknown option "colour" \(known: environment, id, '),
    ('{"task": "x", "max_duration": "9"}', r'"max_duration" must be a number of seconds, got a'),
    ('{"task": "x", "max_duration": 5000}', r'"max_duration" must be between 1 and 300 seconds'),
    ('{"task": "x", "max_cost": -1}', r'"max_cost" must be a positive number of USD'),
    ('{"task": "x", "output_schema": []}', r'"output_schema" needs at least one CSV column'),
    ('{"task": "x", "environment": "../etc"}', r'"environment" must be a non-empty id'),
    ('{"task": "x", "id": true}', r'"id" must be a non-empty string .* or an integer'),
    ('{"task": "x", "id": "first"}', r'id "first" is already used on line 1'),
]  # fmt: skip


def test_a_malformed_line_is_bad_usage_and_nothing_is_sent(
    webrun: Webrun, served: Served, tmp_path: Path
) -> None:
    before = created(served)
    names = []
    for n, (line, _) in enumerate(MALFORMED):
        # The bad line is line 3: the blank line 2 counts.
        names.append(task_file(tmp_path / f"bad{n}.jsonl", {"id": "first", "task": "ok"}, "", line))
    with ThreadPoolExecutor(len(names)) as pool:  # independent: run them side by side
        runs = list(pool.map(lambda name: webrun("batch", name, *FAST), names))
    for name, (line, problem), done in zip(names, MALFORMED, runs, strict=True):
        error = one_error_line(done, code=2)
        assert re.match(rf"webrun: error: {name} line 3: {problem}", error), (line, error)
        assert done.stdout == ""
    assert created(served) == before  # nothing started, not even the good first line


def test_a_missing_file_and_retry_without_out_are_bad_usage(webrun: Webrun) -> None:
    line = one_error_line(webrun("batch", "nowhere.jsonl"), code=2)
    assert line == "webrun: error: nowhere.jsonl: No such file or directory"
    line = one_error_line(webrun("batch", "-", "--retry-failed", stdin=""), code=2)
    assert "--retry-failed needs --out" in line


# -- resuming -----------------------------------------------------------------------------------


def test_resume_skips_recorded_ids(webrun: Webrun, served: Served, tmp_path: Path) -> None:
    lines: list[dict[str, Any] | str] = [
        {"id": "a", "task": "First"},
        {"id": "b", "task": "Second"},
        {"id": "c", "task": "Doomed [[fail=PAGE_CRASH]]"},
    ]
    name = task_file(tmp_path / "tasks.jsonl", *lines)
    out = tmp_path / "out.jsonl"
    before = created(served)
    first = webrun("batch", name, "--out", "out.jsonl", *FAST)
    assert first.stdout == ""  # the lines went to --out
    assert "1 of 3 tasks did not complete (1 failed); --retry-failed" in one_error_line(first)
    assert sorted(outcomes(out.read_text())) == ["a", "b", "c"]
    assert created(served) == before + 3

    # Killed while writing a line: the fragment is not an outcome, and is dropped.
    with out.open("a") as file:
        file.write('{"id": "d", "sta')
    again = webrun("batch", name, "--out", "out.jsonl", *FAST)
    assert again.returncode == 1  # c still failed
    assert created(served) == before + 3  # every id was recorded: nothing ran
    assert len(outcomes(out.read_text())) == 3

    retried = webrun("batch", name, "--out", "out.jsonl", "--retry-failed", *FAST)
    assert retried.returncode == 1
    assert created(served) == before + 4  # c alone ran again
    recorded = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(o["id"], o["status"]) for o in recorded[3:]] == [("c", "failed")]

    task_file(tmp_path / "tasks.jsonl", lines[0], lines[1], {"id": "d", "task": "Fourth"})
    grown = webrun("batch", name, "--out", "out.jsonl", *FAST)
    assert grown.returncode == 0, grown.stderr  # c is not in the file any more
    assert created(served) == before + 5  # d alone
    assert outcomes(out.read_text())["d"]["status"] == "completed"


def test_an_out_file_that_is_not_ours_is_bad_usage(webrun: Webrun, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("dear diary\nmore\n")
    name = task_file(tmp_path / "t.jsonl", {"task": "x"})
    line = one_error_line(webrun("batch", name, "--out", "notes.txt", *FAST), code=2)
    assert line == (
        "webrun: error: --out notes.txt line 1: is not an outcome line of webrun batch "
        "(give another --out file)"
    )
    assert (tmp_path / "notes.txt").read_text() == "dear diary\nmore\n"


# -- what stops a batch -------------------------------------------------------------------------


def test_the_budget_stops_the_batch(webrun: Webrun, served: Served, tmp_path: Path) -> None:
    name = task_file(tmp_path / "t.jsonl", *({"task": f"T{n} [[duration=3]]"} for n in range(3)))
    before = created(served)
    done = webrun("batch", name, "--concurrency", "1", "--budget", "0.0001", *FAST)
    assert one_error_line(done) == (
        "webrun: error: the batch's budget of $0.0001 is spent: 2 tasks were not started "
        "(run again to start them)"
    )
    (outcome,) = outcomes(done.stdout).values()
    assert outcome["status"] == "budget_exceeded"
    assert outcome["error"]["type"] == "BudgetExceeded"
    assert created(served) == before + 1
    assert served.state()["liveSessions"] == []


def test_a_wrong_key_stops_the_batch_and_records_nothing(
    webrun: Webrun, served: Served, tmp_path: Path
) -> None:
    name = task_file(tmp_path / "t.jsonl", *({"task": f"T{n}"} for n in range(5)))
    wrong = {**served.env, "WEBRUN_API_KEY": "wrong-key"}
    done = webrun("batch", name, "--out", "out.jsonl", *FAST, env=wrong)
    assert "401" in one_error_line(done)
    assert "wrong-key" not in done.stderr
    assert (tmp_path / "out.jsonl").read_text() == ""  # a run with the right key does them all


# -- concurrency --------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [2, 3])
async def test_concurrency_bounds_the_live_sessions(tmp_path: Path, concurrency: int) -> None:
    name = task_file(tmp_path / "t.jsonl", *({"task": f"T{n} [[duration=0.4]]"} for n in range(7)))
    async with Emulator(**FAST_EMULATOR) as emu:
        env = {"WEBRUN_API_KEY": emu.api_key, "WEBRUN_BASE_URL": emu.base_url}
        process = await asyncio.create_subprocess_exec(
            WEBRUN, "batch", name, "--concurrency", str(concurrency), *FAST,
            cwd=tmp_path, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), DEADLINE)
        assert process.returncode == 0, stderr
        assert len(outcomes(stdout.decode())) == 7
        assert emu.sessions_created == 7
        assert emu.peak_live_sessions == concurrency  # as many at once, never more
        assert emu.live_sessions() == []


# -- stopping -----------------------------------------------------------------------------------


@POSIX
@pytest.mark.parametrize(
    ("signum", "line", "code"),
    [(signal.SIGINT, "interrupted", 130), (signal.SIGTERM, "terminated", 143)],
    ids=["ctrl-c", "sigterm"],
)
def test_stopping_a_batch_ends_every_session(
    served: Served, tmp_path: Path, signum: int, line: str, code: int
) -> None:
    name = task_file(
        tmp_path / "t.jsonl",
        {"id": "quick", "task": "Quick"},
        *({"task": f"Long {n} [[duration=60]]"} for n in range(4)),
    )
    process = subprocess.Popen(
        [WEBRUN, "batch", name, "--concurrency", "3", *FAST],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env=served.env, cwd=tmp_path,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stderr is not None
    output, errors = Lines(process.stdout), Lines(process.stderr)
    try:
        output.wait_for(r'^\{"id":"quick","status":"completed"')
        until(lambda: len(served.state()["liveSessions"]) == 3, what="three tasks running")
        process.send_signal(signum)
        process.wait(timeout=DEADLINE)
    finally:
        if process.returncode is None:
            process.kill()
            process.wait()
    assert process.returncode == code
    assert errors.finish() == [f"webrun: error: {line}\n"]
    assert len(output.finish()) == 1  # nothing written for the tasks it stopped
    assert served.state()["liveSessions"] == []  # ended before the process exited


# -- progress -----------------------------------------------------------------------------------

PROGRESS = (
    r"\d+/6 done, \d+ failed, \d+ running( \(\d+ rate-limited\))?, \d+ waiting, \$\d+\.\d{4}"
    r"(, ETA \w+|, in \w+)?"
)
FINAL = r"6/6 done, 0 failed, 0 running, 0 waiting, \$\d+\.\d{4}, in \w+"


@POSIX
def test_progress_is_drawn_in_place_on_a_terminal(served: Served, tmp_path: Path) -> None:
    name = task_file(tmp_path / "t.jsonl", *({"task": f"T{n} [[duration=0.3]]"} for n in range(6)))
    # 2 starts a second: four of the six wait for the rate limit at first.
    code, stdout, shown = in_a_terminal(
        served, tmp_path, "batch", name, "--rate-limit", "2/1", "--out", "out.jsonl"
    )
    assert code == 0, shown
    assert stdout == ""
    assert KEY not in shown
    drawn = [part.strip() for part in shown.split("\r") if part.strip()]
    assert drawn, shown
    for part in drawn:
        assert re.fullmatch(PROGRESS, part), part
    assert any("rate-limited" in part for part in drawn), drawn
    assert any(", ETA " in part for part in drawn), drawn
    assert re.fullmatch(FINAL, drawn[-1])
    assert shown.endswith("\n")  # the last state stays on screen
    assert "webrun: batch:" not in shown  # no plain lines on a terminal


def test_plain_progress_lines_through_pipes(webrun: Webrun, tmp_path: Path) -> None:
    name = task_file(tmp_path / "t.jsonl", *({"task": f"T{n} [[duration=0.3]]"} for n in range(6)))
    done = webrun(
        "batch", name, "--concurrency", "2", "--rate-limit", "off", "--progress-every", "0.05"
    )
    assert done.returncode == 0, done.stderr
    assert len(outcomes(done.stdout)) == 6  # stdout: the JSON lines and nothing else
    assert "\r" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) >= 3  # a few while it ran, and the last state
    for line in lines:
        assert re.fullmatch(rf"webrun: batch: {PROGRESS}", line), line
    assert re.fullmatch(f"webrun: batch: {FINAL}", lines[-1])


def test_the_estimate_follows_the_rate_limit() -> None:
    per_minute = 10 / 60
    # Nothing done yet: the tasks left, at the rate the limit allows.
    assert estimate(20, 0, rate=per_minute, slots=10, mean=None) == pytest.approx(120)
    assert estimate(20, 0, rate=None, slots=10, mean=None) is None
    # With a mean duration: the slower of the limit and the slots, then the last ones run.
    assert estimate(20, 5, rate=per_minute, slots=10, mean=30) == pytest.approx(150)
    assert estimate(20, 5, rate=None, slots=10, mean=30) == pytest.approx(90)
    assert estimate(0, 0, rate=per_minute, slots=10, mean=30) == 0
    assert [format_duration(s) for s in (0, 45, 185, 7620)] == ["0s", "45s", "3m05s", "2h07m"]
