"""What the tests of the ``webrun`` command share: the emulator subprocess they run against,
running ``webrun`` in a subprocess or in a pseudo-terminal, reading its output lines with a
deadline, and the checks of a quiet success or a one-line error.

The ``served`` and ``webrun`` fixtures built on it are in ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import secrets
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

BIN = Path(sys.executable).parent
WEBRUN = str(BIN / ("webrun.exe" if os.name == "nt" else "webrun"))
KEY = f"cli-test-{secrets.token_hex(8)}"
DEADLINE = 60.0
POSIX = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals and terminals")
ERROR_LINE = re.compile(r"^webrun: error: \S.*$")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Lines:
    """The lines of a pipe, read by a thread, waited for with a deadline."""

    def __init__(self, pipe: IO[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(pipe,), daemon=True).start()

    def _pump(self, pipe: IO[str]) -> None:
        with pipe:  # closed here, at the end of output, by the only reader
            for line in pipe:
                self._queue.put(line)
        self._queue.put("")  # end of output

    def wait_for(self, pattern: str, within: float = DEADLINE) -> re.Match[str]:
        """The first new line matching ``pattern``; fails at the deadline or end of output."""
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no line matching {pattern!r} in time; saw {self.seen}"
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            assert line, f"output ended without {pattern!r}; saw {self.seen}"
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match

    def finish(self, within: float = DEADLINE) -> list[str]:
        """Every line seen, once the output has ended (fails at the deadline)."""
        deadline = time.monotonic() + within
        while line := self._queue.get(timeout=max(deadline - time.monotonic(), 0.001)):
            self.seen.append(line)
        return self.seen


@dataclass(frozen=True)
class Served:
    """The emulator subprocess and the environment that points ``webrun`` at it."""

    base_url: str
    env: dict[str, str]

    def state(self) -> dict[str, Any]:
        """The emulator's inspection endpoint (live sessions, counters)."""
        request = urllib.request.Request(
            self.base_url + "/_emulator/state", headers={"Authorization": f"Bearer {KEY}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            state: dict[str, Any] = json.load(answer)
        return state


@contextlib.contextmanager
def serve_emulator() -> Iterator[Served]:
    """``webrun emulator`` in a subprocess, fast and without rate limits, until the end of the
    block (the ``served`` fixture)."""
    assert Path(WEBRUN).is_file(), "no webrun script next to python: pip install -e '.[dev]'"
    port = free_port()
    process = subprocess.Popen(
        [
            WEBRUN, "emulator", "--port", str(port), "--api-key", KEY, "--inline-wait", "0.5",
            "--task-duration", "0.05", "--rate-limit", "off", "--account-rate-limit", "off",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one reader drains both, and shows why if it fails to start
        stdin=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        url = Lines(process.stdout).wait_for(r"listening on (http://127\.0\.0\.1:\d+)", 30)[1]
        assert url == f"http://127.0.0.1:{port}"
        env = {**os.environ, "WEBRUN_API_KEY": KEY, "WEBRUN_BASE_URL": url}
        yield Served(url, env)
    finally:
        process.send_signal(signal.SIGTERM if os.name == "posix" else signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0


def webrun_in(served: Served, cwd: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``webrun ARGS...`` in ``cwd`` and return what it did; the key never shows (the
    ``webrun`` fixture)."""

    def run(
        *args: str, env: dict[str, str] | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [WEBRUN, *args],
            capture_output=True,
            text=True,
            env=served.env if env is None else env,
            cwd=cwd,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            timeout=DEADLINE,
            check=False,
        )
        assert KEY not in done.stdout + done.stderr
        return done

    return run


Webrun = Callable[..., subprocess.CompletedProcess[str]]
"""The ``webrun`` fixture: ``webrun(*args, env=None, stdin=None)`` runs the command."""


def until(predicate: Callable[[], bool], within: float = DEADLINE, *, what: str) -> None:
    """Wait until ``predicate()`` holds, for state of another process (the emulator's) that
    has no event to wait on: checked every few milliseconds, failing after ``within`` s."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"still not true after {within:g} s: {what}"
        time.sleep(0.01)


def ok(done: subprocess.CompletedProcess[str]) -> list[str]:
    """The stdout lines of a run that succeeded quietly (no progress when stderr is a pipe)."""
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout.splitlines()


def one_error_line(done: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The single ``webrun: error:`` line of a run that failed, and nothing else on stderr."""
    assert done.returncode == code, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert ERROR_LINE.match(lines[0]), lines[0]
    assert "Traceback" not in done.stderr
    return lines[0]


# -- run ----------------------------------------------------------------------------------------


def in_a_terminal(
    served: Served, cwd: Path, *args: str, answer: bytes | None = None
) -> tuple[int, str, str]:
    """Run ``webrun`` with stdin and stderr on a pseudo-terminal; type ``answer`` when asked.

    Returns the exit code, stdout (a pipe) and everything the terminal showed.
    """
    import pty  # POSIX only

    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [WEBRUN, *args],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=follower,
        env=served.env,
        cwd=cwd,
    )
    os.close(follower)
    shown = b""
    deadline = time.monotonic() + DEADLINE
    try:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, shown
            if not select.select([leader], [], [], left)[0]:
                continue
            try:
                data = os.read(leader, 4096)  # ends (EIO) once the process has exited
            except OSError:
                break
            if not data:
                break
            shown += data
            if answer is not None and b"(Enter to send, Ctrl-D" in shown:
                os.write(leader, answer)
                answer = None
        stdout = process.communicate(timeout=DEADLINE)[0].decode()
    finally:
        os.close(leader)
        if process.returncode is None:
            process.kill()
            process.wait()
    return process.returncode, stdout, shown.decode()
