"""The ``webrun`` command, run as a person runs it: the installed script in a subprocess,
against ``webrun emulator`` running in another subprocess.

Nothing here sleeps for a fixed time: the tests wait for output lines or conditions, each
with a deadline. The helpers and fixtures are shared with ``tests/test_cli_batch.py``
(``tests/cli_support.py``, ``tests/conftest.py``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.archives import archive_names, fake_tar_gz, make_profile, tar_gz
from tests.cli_support import (
    DEADLINE,
    POSIX,
    WEBRUN,
    Lines,
    Served,
    Webrun,
    in_a_terminal,
    ok,
    one_error_line,
)
from webrun_async.cli._console import Console, TransferProgress, format_size

# -- run ----------------------------------------------------------------------------------------


def test_run_prints_events_then_result_and_cost(webrun: Webrun, served: Served) -> None:
    lines = ok(webrun("run", "Find keyboards [[events=3]] [[duration=0.8]]"))
    assert lines[0].startswith("update: ")
    progress = [line for line in lines if line.startswith(("thinking: ", "action: "))]
    assert len(progress) == 3
    assert lines[-2] == 'Completed the task "Find keyboards" in the emulator.'
    assert re.fullmatch(
        r"cost: \$\d+\.\d{4}  tokens: \d+ \(\d+ in, \d+ out\)  time: .*s", lines[-1]
    )
    assert served.state()["liveSessions"] == []


def test_run_json_prints_one_object(webrun: Webrun) -> None:
    lines = ok(webrun("run", "Find mice [[events=2]]", "--json", "--max-duration", "60"))
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["message"] == 'Completed the task "Find mice" in the emulator.'
    assert result["usage"]["cost"] > 0
    assert result["usage"]["total_tokens"] > 0
    assert result["taskId"]


def test_failed_task_is_one_line(webrun: Webrun) -> None:
    done = webrun("run", "Doomed [[fail=PAGE_CRASH]]")
    line = one_error_line(done)
    assert "PAGE_CRASH" in line
    assert line.startswith("webrun: error: the task failed: Browser page crashed")


def test_debug_shows_the_traceback(webrun: Webrun) -> None:
    done = webrun("--debug", "run", "Doomed [[fail=PAGE_CRASH]]")
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert "TaskFailed" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("webrun: error: the task failed")
    assert "Traceback" not in done.stdout


def test_run_json_prints_the_failure_too(webrun: Webrun, served: Served) -> None:
    done = webrun("run", "Doomed [[fail=PAGE_CRASH]]", "--json")
    assert "PAGE_CRASH" in one_error_line(done)
    [line] = done.stdout.splitlines()
    outcome = json.loads(line)
    assert outcome["status"] == "failed"
    assert outcome["error"]["type"] == "TaskFailed"
    assert outcome["error"]["code"] == "PAGE_CRASH"
    assert outcome["session_id"] and "usage" in outcome
    assert served.state()["liveSessions"] == []


def test_guardrail_answers_come_through_a_pipe(webrun: Webrun, served: Served) -> None:
    done = webrun("run", "Log in [[guardrail=Which account?]] [[duration=0.4]]", stdin="\nwork\n")
    lines = ok(done)
    assert "question: Which account?" in lines
    assert lines[-2] == 'Completed the task "Log in" in the emulator.'
    assert "work" not in lines  # the answer is sent, not printed
    assert served.state()["liveSessions"] == []


def test_guardrail_with_no_input_left_ends_the_task(webrun: Webrun, served: Served) -> None:
    done = webrun("run", "Log in [[guardrail=I need a password]] [[duration=0.4]]")
    line = one_error_line(done)
    assert 'no answer to "I need a password"; the task was ended' in line
    assert done.stdout.splitlines()[-1] == "question: I need a password"
    assert served.state()["liveSessions"] == []


def test_run_takes_a_budget(webrun: Webrun, served: Served) -> None:
    done = webrun("run", "Slow and dear [[duration=30]]", "--max-cost", "0.0002")
    line = one_error_line(done)
    assert "0.0002" in line
    assert served.state()["liveSessions"] == []


def test_run_takes_an_output_schema_inline_or_from_a_file(webrun: Webrun, tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    inline = ok(webrun("run", "Get the title", "--json", "--output-schema", json.dumps(schema)))
    assert isinstance(json.loads(inline[0])["output"]["title"], str)
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    from_file = ok(webrun("run", "Get the title", "--json", "--output-schema", "schema.json"))
    assert json.loads(from_file[0])["output"].keys() == {"title"}
    columns = ok(webrun("run", "Get rows", "--json", "--output-schema", '["name", "price"]'))
    assert json.loads(columns[0])["output"][0].keys() == {"name", "price"}


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (("--output-schema", '{"type": "bogus"}'), "--output-schema: unknown type 'bogus'"),
        (("--max-duration", "0.5"), "--max-duration:"),
        (("--max-cost", "-1"), "--max-cost:"),
        (("--file", "nowhere.txt"), "nowhere.txt"),
    ],
)
def test_bad_run_values_exit_2_before_anything_starts(
    webrun: Webrun, served: Served, flags: tuple[str, ...], problem: str
) -> None:
    before = served.state()["sessionsCreated"]
    line = one_error_line(webrun("run", "x", *flags), code=2)
    assert problem in line
    assert served.state()["sessionsCreated"] == before


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("{not json", "argument --output-schema: not valid JSON: "),
        ("missing.json", "argument --output-schema: cannot read missing.json: No such file"),
        ("bad.json", "argument --output-schema: not valid JSON in bad.json: "),
    ],
)
def test_an_unreadable_output_schema_is_bad_usage(
    webrun: Webrun, tmp_path: Path, value: str, problem: str
) -> None:
    (tmp_path / "bad.json").write_text("{oops")
    done = webrun("run", "x", "--output-schema", value)
    assert done.returncode == 2
    assert problem in done.stderr.splitlines()[-1]
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_run_uploads_and_attaches_files(webrun: Webrun, served: Served, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("remember the milk")
    uploads = served.state()["requestCounts"].get("POST /files/upload", 0)
    lines = ok(webrun("run", "Use my notes", "--file", "notes.txt", "--json"))
    assert json.loads(lines[0])["message"]
    assert served.state()["requestCounts"]["POST /files/upload"] == uploads + 1


@POSIX
@pytest.mark.parametrize(
    ("signum", "line", "code"),
    [(signal.SIGINT, "interrupted", 130), (signal.SIGTERM, "terminated", 143)],
    ids=["ctrl-c", "sigterm"],
)
def test_stopping_the_command_cancels_the_task(
    served: Served, tmp_path: Path, signum: int, line: str, code: int
) -> None:
    process = subprocess.Popen(
        [WEBRUN, "run", "A long one [[duration=60]]"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=served.env,
        cwd=tmp_path,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    errors = Lines(process.stderr)
    try:
        Lines(process.stdout).wait_for(r"^update: ")  # the task is running
        assert served.state()["liveSessions"]
        process.send_signal(signum)
        errors.wait_for(rf"^webrun: error: {line}$")
        process.wait(timeout=DEADLINE)
    finally:
        if process.returncode is None:
            process.kill()
            process.wait()
    assert process.returncode == code
    assert errors.finish() == [f"webrun: error: {line}\n"]  # one line, nothing else
    assert served.state()["liveSessions"] == []  # terminated before the process ended


# -- terminals ----------------------------------------------------------------------------------


@POSIX
def test_guardrail_at_a_terminal_asks_and_goes_on(served: Served, tmp_path: Path) -> None:
    code, stdout, shown = in_a_terminal(
        served, tmp_path, "run", "Log in [[guardrail=Your password?]] [[duration=0.4]]",
        answer=b"hunter2\n",
    )  # fmt: skip
    assert code == 0, shown
    lines = stdout.splitlines()
    assert "question: Your password?" in lines
    assert lines[-2] == 'Completed the task "Log in" in the emulator.'
    assert "answer, not shown (Enter to send, Ctrl-D to end the task)> " in shown
    assert "hunter2" not in shown  # a password question: the answer is not echoed
    assert re.search(r"\r(queued|starting|running) for \d+\.\ds, \$\d+\.\d{4} so far", shown)


@POSIX
@pytest.mark.parametrize("hide", [False, True])
def test_an_ordinary_answer_is_echoed_unless_hidden(
    served: Served, tmp_path: Path, hide: bool
) -> None:
    args = ["run", "Pick [[guardrail=Which colour?]] [[duration=0.4]]"]
    code, _, shown = in_a_terminal(
        served, tmp_path, *args, *(["--hide-answers"] if hide else []), answer=b"teal\n"
    )
    assert code == 0, shown
    assert ("teal" in shown) is not hide


@POSIX
def test_transfer_progress_is_drawn_in_place_on_a_terminal(served: Served, tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    code, stdout, shown = in_a_terminal(served, tmp_path, "files", "upload", "big.bin")
    assert code == 0, shown
    assert stdout.endswith("3.0 MiB  big.bin\n")
    assert re.search(r"\ruploading big\.bin: 3\.0 MiB of 3\.0 MiB \(100%\), [\d.]+ \S+/s", shown)


def test_progress_line_wording() -> None:
    class Terminal:
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> int:
            self.text += text
            return len(text)

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    console = Console(out=terminal, err=terminal)  # type: ignore[arg-type]
    now = [0.0]
    with TransferProgress(console, "uploading x", clock=lambda: now[0]) as progress:
        progress(0, 4096)
        now[0] = 1.0
        progress(1024, 4096)
        now[0] = 2.0
        progress(4096, None)  # a total that is not known
    second = "uploading x: 1.0 KiB of 4.0 KiB (25%), 1.0 KiB/s"
    assert terminal.text.split("\r")[1:] == [
        "uploading x: 0 B of 4.0 KiB (0%)",
        second,
        "uploading x: 4.0 KiB, 2.0 KiB/s".ljust(len(second)) + "\n",  # the rest blanked out
    ]
    assert [format_size(n) for n in (0, 1023, 1536, 5 * 2**30)] == [
        "0 B",
        "1023 B",
        "1.5 KiB",
        "5.0 GiB",
    ]


# -- chat, models, health, keys -----------------------------------------------------------------


def test_chat_streams_the_answer(webrun: Webrun) -> None:
    lines = ok(webrun("chat", "What is on example.com?"))
    assert lines == ['Completed the task "What is on example.com?" in the emulator.']


def test_models_and_health(webrun: Webrun) -> None:
    assert [line.split()[0] for line in ok(webrun("models"))] == [
        "enigma-browser-1",
        "webrun-browser-1",
    ]
    models = json.loads(ok(webrun("models", "--json"))[0])
    assert models[0]["id"] == "enigma-browser-1"
    assert re.fullmatch(r"healthy, \d+ instances available", ok(webrun("health"))[0])
    assert json.loads(ok(webrun("health", "--json"))[0])["status"] == "healthy"


def test_health_needs_no_key(webrun: Webrun, served: Served) -> None:
    env = {k: v for k, v in served.env.items() if k != "WEBRUN_API_KEY"}
    assert re.fullmatch(r"healthy, \d+ instances available", ok(webrun("health", env=env))[0])


def test_profiles_sync(webrun: Webrun, tmp_path: Path) -> None:
    profile = make_profile(tmp_path / "chrome")
    [environment_id] = ok(webrun("profiles", "sync", "--dir", str(profile), "--name", "laptop"))
    listed = json.loads(ok(webrun("environments", "list", "--json"))[0])
    mine = next(e for e in listed if e["_id"] == environment_id)
    assert (mine["name"], mine["status"]) == ("laptop", "ready")
    [path] = ok(webrun("profiles", "download", environment_id, str(tmp_path)))
    names = archive_names(Path(path))
    assert "Default/Cookies" in names
    assert not any("Cache" in name or name.endswith("LOCK") for name in names)
    line = one_error_line(webrun("profiles", "sync", "--dir", str(tmp_path / "nowhere")))
    assert "is not a directory" in line


def test_a_missing_api_key_says_how_to_set_it(webrun: Webrun, served: Served) -> None:
    env = {k: v for k, v in served.env.items() if k != "WEBRUN_API_KEY"}
    line = one_error_line(webrun("profiles", "list", env=env))
    assert "WEBRUN_API_KEY" in line
    assert "--api-key" in line
    assert "webrun emulator" in line


def test_a_wrong_api_key_is_one_line_and_never_shown(webrun: Webrun) -> None:
    wrong = "wrong-" + secrets.token_hex(8)
    done = webrun("--api-key", wrong, "models")
    line = one_error_line(done)
    assert "401" in line
    assert wrong not in done.stdout + done.stderr


# -- profiles, environments, files --------------------------------------------------------------


def test_profiles_crud(webrun: Webrun, tmp_path: Path) -> None:
    (profile_id,) = ok(webrun("profiles", "create", "work", "--description", "my work"))
    listed = [line.split() for line in ok(webrun("profiles", "list"))]
    assert [profile_id, "work", "empty", "-"] in [row[:4] for row in listed]
    as_json = json.loads(ok(webrun("profiles", "list", "--json"))[0])
    assert {"_id": profile_id, "name": "work", "description": "my work"}.items() <= next(
        item for item in as_json if item["_id"] == profile_id
    ).items()

    archive = tar_gz({"Default/Cookies": b"cookies"})
    (tmp_path / "work.tar.gz").write_bytes(archive)
    assert ok(webrun("profiles", "upload", profile_id, "work.tar.gz")) == [
        f"{profile_id}  ready  {format_size(len(archive))}"
    ]

    (saved,) = ok(webrun("profiles", "download", profile_id))
    assert saved == f"profile-{profile_id}.tar.gz"
    assert (tmp_path / saved).read_bytes() == archive
    line = one_error_line(webrun("profiles", "download", profile_id))
    assert line.endswith("exists (pass --overwrite to replace it)")
    assert ok(webrun("profiles", "download", profile_id, "again.tar.gz")) == ["again.tar.gz"]
    ok(webrun("profiles", "download", profile_id, "again.tar.gz", "--overwrite"))

    assert ok(webrun("profiles", "delete", profile_id)) == [f"deleted {profile_id}"]
    assert profile_id not in webrun("profiles", "list").stdout
    assert "404" in one_error_line(webrun("profiles", "delete", profile_id))


def test_a_fake_archive_is_refused_in_one_line(webrun: Webrun, tmp_path: Path) -> None:
    (profile_id,) = ok(webrun("profiles", "create", "fake"))
    (tmp_path / "fake.tar.gz").write_bytes(fake_tar_gz())
    line = one_error_line(webrun("profiles", "upload", profile_id, "fake.tar.gz"))
    assert (
        line == "webrun: error: fake.tar.gz is gzip'd but not a tar archive (a .tar.gz is required)"
    )
    ok(webrun("profiles", "delete", profile_id))


def test_environments_crud_with_files(webrun: Webrun, tmp_path: Path) -> None:
    (env_id,) = ok(webrun("environments", "create", "shop", "--description", "orders"))
    (tmp_path / "profile.tar.gz").write_bytes(tar_gz())
    assert ok(webrun("environments", "upload", env_id, "profile.tar.gz"))[0].startswith(
        f"{env_id}  ready  "
    )
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "b.csv").write_text("x,y\n1,2\n")
    done = webrun("files", "upload", "a.txt", "b.csv", "--environment", env_id)
    uploaded = [line.split() for line in ok(done)]
    assert [(row[1:3], row[3]) for row in uploaded] == [
        (["5", "B"], "a.txt"),
        (["8", "B"], "b.csv"),
    ]
    attached = json.loads(ok(webrun("environments", "files", env_id, "--json"))[0])
    assert sorted(item["originalName"] for item in attached) == ["a.txt", "b.csv"]
    first = uploaded[0][0]
    assert ok(webrun("environments", "delete-file", env_id, first)) == [f"deleted {first}"]
    remaining = ok(webrun("environments", "files", env_id))
    assert len(remaining) == 1
    assert remaining[0].endswith("b.csv")
    assert remaining[0].startswith(uploaded[1][0])

    listed = [line.split() for line in ok(webrun("environments", "list"))]
    (row,) = [row for row in listed if row[0] == env_id]
    assert row[1:3] == ["shop", "ready"]
    assert row[-1] == "orders"
    assert ok(webrun("environments", "delete", env_id)) == [f"deleted {env_id}"]
    assert env_id not in webrun("environments", "list").stdout


def test_files_upload_and_download(webrun: Webrun, tmp_path: Path) -> None:
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4 not really")
    ((file_id, size, unit, name),) = [
        line.split() for line in ok(webrun("files", "upload", "report.pdf"))
    ]
    assert (size, unit, name) == ("19", "B", "report.pdf")
    assert file_id

    result = json.loads(ok(webrun("run", "Get the invoice [[files=1]]", "--json"))[0])
    (produced,) = result["files"]
    (tmp_path / "out").mkdir()
    (saved,) = ok(webrun("files", "download", produced["downloadUrl"], "out"))
    assert Path(saved) == Path("out") / produced["filename"]
    assert (tmp_path / saved).stat().st_size == 1024

    line = one_error_line(webrun("files", "upload", "missing.txt"))
    assert line == "webrun: error: missing.txt does not exist or is not a regular file"


# -- usage and the emulator ---------------------------------------------------------------------


BAD_USAGE = [
    [],
    ["run"],
    ["frobnicate"],
    ["profiles"],
    ["profiles", "rename", "x"],
    ["models", "--nope"],
    ["--nope", "models"],
    ["run", "task", "--max-duration", "soon"],
    ["run", "task", "--output-schema", "{nope"],
    ["batch"],
    ["batch", "-", "--concurrency", "0"],
    ["batch", "-", "--rate-limit", "fast"],
    ["files", "upload"],
    ["emulator", "--port", "99999"],
]


def test_bad_usage_exits_2(webrun: Webrun) -> None:
    with ThreadPoolExecutor(len(BAD_USAGE)) as pool:  # independent: run them side by side
        runs = list(pool.map(lambda argv: webrun(*argv), BAD_USAGE))
    for argv, done in zip(BAD_USAGE, runs, strict=True):
        assert done.returncode == 2, (argv, done.stderr)
        assert done.stdout == "", argv
        assert done.stderr.startswith("usage: webrun"), (argv, done.stderr)
        assert re.search(r"^webrun( \S+)*: error: ", done.stderr, re.MULTILINE), argv


def test_emulator_help_has_the_emulators_flags(webrun: Webrun) -> None:
    help_text = ok(webrun("emulator", "--help"))
    assert help_text[0].startswith("usage: webrun emulator [-h] [--host HOST] [--port PORT]")
    module = subprocess.run(
        [sys.executable, "-m", "webrun_async.emulator", "--help"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=True,
    )
    # The very same flags as `python -m webrun_async.emulator`: only the program name differs.
    expected = module.stdout.replace("python -m webrun_async.emulator", "webrun emulator")
    assert " ".join(" ".join(help_text).split()) == " ".join(expected.split())


def test_version_and_module_entry_point(webrun: Webrun, served: Served) -> None:
    assert re.fullmatch(r"webrun \d+\.\d+\.\d+\S*", ok(webrun("--version"))[0])
    done = subprocess.run(
        [sys.executable, "-m", "webrun_async.cli", "health"],
        capture_output=True,
        text=True,
        env=served.env,
        timeout=DEADLINE,
        check=False,
    )
    assert ok(done)[0].startswith("healthy")


def test_an_empty_list_says_so_on_stderr_through_a_pipe(webrun: Webrun) -> None:
    [env_id] = ok(webrun("environments", "create", "bare"))
    done = webrun("environments", "files", env_id)
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr == "no files in this environment\n"
    assert ok(webrun("environments", "files", env_id, "--json")) == ["[]"]
    ok(webrun("environments", "delete", env_id))


@POSIX
def test_an_empty_list_says_so_at_a_terminal(served: Served, tmp_path: Path) -> None:
    import pty

    leader, follower = pty.openpty()
    env_id = subprocess.run(
        [WEBRUN, "environments", "create", "bare"],
        capture_output=True, text=True, env=served.env, check=True,
    ).stdout.strip()  # fmt: skip
    shown = subprocess.run(
        [WEBRUN, "environments", "files", env_id],
        stdout=follower, stderr=follower, env=served.env, timeout=DEADLINE, check=True,
    )  # fmt: skip
    os.close(follower)
    output = os.read(leader, 4096).decode()
    os.close(leader)
    assert shown.returncode == 0
    assert output.strip() == "no files in this environment"
