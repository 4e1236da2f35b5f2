"""`python -m webrun_async.emulator`: flags, errors, and a real subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import socketio  # type: ignore[import-untyped, unused-ignore]

import webrun_async
from webrun_async.emulator import EmulatorConfig
from webrun_async.emulator.cli import build_parser, config_from_args

REPO = Path(webrun_async.__file__).resolve().parent.parent


def test_every_option_has_a_documented_flag() -> None:
    help_text = build_parser().format_help()
    special = {
        "max_upload_bytes": "--max-upload-mb",
        "sockets": "--no-sockets",
        "faults": "--fault",
        "cors_origins": "--cors-origin",
    }
    for field in dataclasses.fields(EmulatorConfig):
        flag = special.get(field.name, "--" + field.name.replace("_", "-"))
        assert flag in help_text, flag


def test_defaults_match_the_dataclass_except_port() -> None:
    assert config_from_args([]) == EmulatorConfig(port=8765)


def test_every_flag_maps_onto_the_config() -> None:
    config = config_from_args(
        [
            "--host", "0.0.0.0",
            "--port", "0",
            "--api-key", "k",
            "--inline-wait", "0.5",
            "--rate-limit", "5/30",
            "--account-rate-limit", "off",
            "--instances", "3",
            "--task-duration", "2",
            "--session-timeout", "60",
            "--balance", "7.5",
            "--dialect", "legacy",
            "--strict",
            "--max-upload-mb", "1.5",
            "--signed-url-ttl", "10",
            "--instance-grace", "5",
            "--no-sockets",
        ]
    )  # fmt: skip
    assert config == EmulatorConfig(
        host="0.0.0.0",
        port=0,
        api_key="k",
        inline_wait=0.5,
        rate_limit=(5, 30.0),
        account_rate_limit=None,
        instances=3,
        task_duration=2.0,
        session_timeout=60.0,
        balance=7.5,
        dialect="legacy",
        strict=True,
        max_upload_bytes=int(1.5 * 1024 * 1024),
        signed_url_ttl=10.0,
        instance_grace=5.0,
        sockets=False,
    )


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--rate-limit", "lots"], "--rate-limit"),
        (["--account-rate-limit", "0/60"], "--account-rate-limit"),
        (["--inline-wait", "-2"], "--inline-wait"),
        (["--inline-wait", "soon"], "--inline-wait"),
        (["--instances", "-1"], "--instances"),
        (["--port", "99999"], "--port"),
        (["--dialect", "modern"], "--dialect"),
        (["--max-upload-mb", "0"], "--max-upload-mb"),
        (["--session-timeout", "0"], "--session-timeout"),
        (["--instance-grace", "-1"], "--instance-grace"),
    ],
)
def test_bad_values_name_the_flag(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        config_from_args(argv)
    assert caught.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


LISTENING = re.compile(
    r"^WebRun emulator listening on (http://127\.0\.0\.1:\d+)(?: \(API key: (.+)\))?$"
)
Served = tuple[asyncio.subprocess.Process, str, "str | None"]


@contextlib.asynccontextmanager
async def serving(*flags: str) -> AsyncIterator[Served]:
    """Run the CLI on a free port; yields the process, its base URL and the printed key."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "webrun_async.emulator",
        "--port",
        "0",
        *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": path},
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(20):
            line = (await process.stdout.readline()).decode()
        match = LISTENING.match(line.strip())
        assert match, line
        yield process, match[1], match[2]
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()


async def stop(process: asyncio.subprocess.Process, signum: int) -> bytes:
    """Send `signum` and wait for a clean exit; returns the rest of stdout."""
    process.send_signal(signum)
    async with asyncio.timeout(20):
        stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    return stdout


async def test_subprocess_serves_until_terminated() -> None:
    async with serving("--task-duration", "0.01") as (process, base_url, key):
        assert key is not None
        assert re.match(r"^wr_emu_[0-9a-f]{32}$", key)
        async with aiohttp.ClientSession() as http:
            async with http.get(base_url + "/start/health") as reply:
                assert reply.status == 200
                assert (await reply.json())["status"] == "healthy"
            headers = {"Authorization": f"Bearer {key}"}
            body = {"taskDetails": "hi"}
            async with http.post(base_url + "/start/run-task", json=body, headers=headers) as reply:
                assert (await reply.json())["type"] == "task_completed"
        await stop(process, signal.SIGTERM)


@pytest.mark.parametrize("flags", [(), ("--no-sockets",)], ids=["sockets", "no-sockets"])
async def test_subprocess_serves_socket_io_unless_disabled(flags: tuple[str, ...]) -> None:
    async with serving("--api-key", "k", *flags) as (process, base_url, _):
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": "Bearer k"}
            async with http.post(
                base_url + "/start/start-session", json={}, headers=headers
            ) as reply:
                session_id = (await reply.json())["sessionId"]
        refusals: list[object] = []
        client = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        client.on("connect_error", refusals.append)
        try:
            await client.connect(base_url, auth={"sessionId": session_id}, transports=["websocket"])
        except socketio.exceptions.ConnectionError:
            pass
        assert client.connected is not bool(flags)
        await client.shutdown()
        expected = [{"message": "Socket connections are disabled"}] if flags else []
        assert refusals == expected
        await stop(process, signal.SIGTERM)


async def test_given_key_is_not_printed() -> None:
    async with serving("--api-key", "secret-user-key") as (process, _, key):
        assert key is None
        assert b"secret-user-key" not in await stop(process, signal.SIGINT)


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        config_from_args(["--help"])
    assert caught.value.code == 0
    assert "--rate-limit COUNT/SECONDS" in capsys.readouterr().out
