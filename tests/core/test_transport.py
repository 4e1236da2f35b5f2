"""The transport over real HTTP: error mapping (the account-level errors the service documents
included), retries, timeouts, malformed answers, and the API key kept secret.

The client-side rate limiter and Retry-After are in ``test_ratelimit.py``."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from tests.scripted import COMPLETED, NO_WAIT, ScriptedReply, ScriptedServer, client_for
from tests.scripted import SCRIPTED_KEY as KEY
from tests.support import MakeClient, MakeEmulator
from webrun_async import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AsyncWebRun,
    AuthenticationError,
    BadRequestError,
    GuardrailTriggered,
    InsufficientBalanceError,
    InternalServerError,
    NoInstancesAvailableError,
    NotFoundError,
    PermissionDeniedError,
    RetryPolicy,
    Timeouts,
)
from webrun_async.emulator import Emulator


@pytest.mark.parametrize(
    ("status", "body", "cls", "message", "code"),
    [
        (
            400,
            {"success": False, "message": "taskDetails is required"},
            BadRequestError,
            "taskDetails is required",
            None,
        ),
        (
            401,
            {"success": False, "message": "Invalid or revoked API key"},
            AuthenticationError,
            "Invalid or revoked API key",
            None,
        ),
        (
            402,
            {"success": False, "message": "Insufficient balance.", "balance": 0.15},
            InsufficientBalanceError,
            "Insufficient balance.",
            None,
        ),
        (
            403,
            {"success": False, "message": "Account is deactivated"},
            PermissionDeniedError,
            "Account is deactivated",
            None,
        ),
        (
            404,
            {
                "success": False,
                "error": "Task x not found",
                "code": "TASK_NOT_FOUND",
                "details": {"taskId": "x"},
            },
            NotFoundError,
            "Task x not found",
            "TASK_NOT_FOUND",
        ),
        (
            500,
            {"success": False, "message": "Authentication error"},
            InternalServerError,
            "Authentication error",
            None,
        ),
        (
            409,
            {"message": "A task is already running", "code": "TASK_ALREADY_RUNNING"},
            APIStatusError,
            "A task is already running",
            "TASK_ALREADY_RUNNING",
        ),
        (
            401,
            {
                "error": {
                    "message": "Invalid API key",
                    "type": "authentication_error",
                    "code": "invalid_api_key",
                }
            },
            AuthenticationError,
            "Invalid API key",
            "invalid_api_key",
        ),
    ],
)
async def test_error_bodies_map_to_typed_errors(
    server: ScriptedServer,
    status: int,
    body: dict[str, object],
    cls: type[APIStatusError],
    message: str,
    code: str | None,
) -> None:
    server.default = ScriptedReply(status, body)
    async with client_for(server) as client:
        with pytest.raises(cls) as info:
            await client.tasks.get("s1", "t1")
    err = info.value
    assert type(err) is cls
    assert err.status == status
    assert err.message == message
    assert err.code == code
    assert (err.method, err.path) == ("GET", "/task/s1/t1")
    assert "[GET /task/s1/t1]" in str(err)
    if isinstance(err, InsufficientBalanceError):
        assert err.balance == 0.15
    if code == "TASK_NOT_FOUND":
        assert err.details == {"taskId": "x"}


async def test_non_json_error_body_uses_the_reason(server: ScriptedServer) -> None:
    server.default = ScriptedReply(502, raw=b"<html>bad gateway</html>")
    async with client_for(server, max_retries=0) as client:
        with pytest.raises(InternalServerError) as info:
            await client.health()
    assert info.value.status == 502
    assert info.value.message == "Bad Gateway"


async def test_chat_guardrail_error_becomes_guardrail_triggered(server: ScriptedServer) -> None:
    server.default = ScriptedReply(
        400,
        {
            "error": {
                "message": "Guardrail triggered: I need login credentials to proceed",
                "type": "guardrail_error",
                "code": "guardrail_triggered",
            }
        },
    )
    async with client_for(server) as client:
        with pytest.raises(GuardrailTriggered) as info:
            await client.chat.completions.create(
                model="enigma-browser-1", messages=[{"role": "user", "content": "log in"}]
            )
    assert info.value.value == "I need login credentials to proceed"
    assert not info.value.can_respond


async def test_get_is_retried_on_5xx_until_it_succeeds(server: ScriptedServer) -> None:
    server.script(
        ScriptedReply(500), ScriptedReply(502), ScriptedReply(503), ScriptedReply(200, COMPLETED)
    )
    async with client_for(server) as client:
        status = await client.tasks.get("s1", "t1")
    assert status.state == "completed"
    assert len(server.seen) == 4


async def test_retries_stop_at_max_retries(server: ScriptedServer) -> None:
    server.default = ScriptedReply(500, {"message": "boom"})
    async with client_for(server, max_retries=2) as client:
        with pytest.raises(InternalServerError):
            await client.tasks.get("s1", "t1")
    assert len(server.seen) == 3


async def test_billable_post_is_not_retried_on_500(server: ScriptedServer) -> None:
    server.default = ScriptedReply(500, {"message": "boom"})
    async with client_for(server) as client:
        with pytest.raises(InternalServerError):
            await client.tasks.create("do it")
    assert len(server.seen) == 1


@pytest.mark.parametrize("status", [429, 503])
async def test_billable_post_is_retried_when_provably_not_started(
    server: ScriptedServer, status: int
) -> None:
    server.script(ScriptedReply(status, {"message": "not now"}), ScriptedReply(200, COMPLETED))
    async with client_for(server) as client:
        result = await client.tasks.create("do it")
    assert result.state == "completed"
    assert [s.path for s in server.seen] == ["/start/run-task"] * 2


async def test_post_not_retried_after_the_connection_dropped(server: ScriptedServer) -> None:
    # The request was sent: the server may have started billable work.
    server.script(ScriptedReply(reset=True), ScriptedReply(200, COMPLETED))
    async with client_for(server) as client:
        with pytest.raises(APIConnectionError):
            await client.tasks.create("do it")
    assert len(server.seen) == 1


async def test_get_retried_after_the_connection_dropped(server: ScriptedServer) -> None:
    server.script(ScriptedReply(reset=True), ScriptedReply(200, COMPLETED))
    async with client_for(server) as client:
        status = await client.tasks.get("s1", "t1")
    assert status.state == "completed"
    assert len(server.seen) == 2


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_post_retried_when_the_connection_never_opened() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    async with AsyncWebRun(KEY, base_url=url, retry=NO_WAIT, rate_limit=None) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.tasks.create("do it")
    assert "could not connect" in info.value.message
    assert info.value.path == "/start/run-task"


async def test_max_elapsed_bounds_the_retries(server: ScriptedServer) -> None:
    server.default = ScriptedReply(503, headers={"Retry-After": "5"})
    policy = RetryPolicy(max_retries=10, max_elapsed=1.0)
    async with client_for(server, retry=policy) as client:
        with pytest.raises(NoInstancesAvailableError):
            await client.health()
    assert len(server.seen) == 1  # waiting 5 s would pass the 1 s budget: give up at once


async def test_read_timeout_on_get_is_retried_then_raised(server: ScriptedServer) -> None:
    release = asyncio.Event()
    server.default = ScriptedReply(200, COMPLETED, hold=release)
    try:
        async with client_for(
            server, retry=RetryPolicy(max_retries=1, wait=False), timeout=Timeouts(read=0.2)
        ) as client:
            with pytest.raises(APITimeoutError) as info:
                await client.health()
        assert info.value.path == "/start/health"
        assert len(server.seen) == 2  # the GET was retried once
    finally:
        release.set()


async def test_malformed_success_body_is_a_typed_error_naming_the_endpoint(
    server: ScriptedServer,
) -> None:
    server.default = ScriptedReply(200, raw=b'{"success": true, "environments": "nope"}')
    async with client_for(server) as client:
        with pytest.raises(APIResponseValidationError) as info:
            await client.environments.list()
    assert info.value.path == "/environments"
    assert info.value.status == 200
    assert "[GET /environments]" in str(info.value)


async def test_api_key_is_sent_but_never_shown(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="webrun_async")
    server.script(ScriptedReply(500), ScriptedReply(401, {"message": "Invalid or revoked API key"}))
    client = client_for(server)
    async with client:
        with pytest.raises(AuthenticationError) as info:
            await client.tasks.get("s1", "t1")
    assert server.seen[0].headers["Authorization"] == f"Bearer {KEY}"
    texts = [repr(client), str(info.value), repr(info.value), caplog.text]
    texts += [repr(vars(info.value))]
    for text in texts:
        assert KEY not in text


# -- the account-level errors the service documents, from the emulator ------------------------


@pytest.mark.parametrize("key", ["wrong-key", "revoked-key"])
async def test_bad_or_revoked_key(emulator: Emulator, make_client: MakeClient, key: str) -> None:
    if key == "revoked-key":
        emulator.add_api_key(key)
        emulator.revoke_api_key(key)
    client = await make_client(api_key=key)
    with pytest.raises(AuthenticationError) as info:
        await client.run_task("x")
    assert info.value.message == "Invalid or revoked API key"
    assert key not in str(info.value)


async def test_deactivated_account(emulator: Emulator, client: AsyncWebRun) -> None:
    emulator.account.active = False
    with pytest.raises(PermissionDeniedError, match="Account is deactivated"):
        await client.profiles.list()


async def test_key_without_permission(emulator: Emulator, make_client: MakeClient) -> None:
    emulator.add_api_key("read-only", permissions=frozenset())
    client = await make_client(api_key="read-only")
    with pytest.raises(PermissionDeniedError, match="task:create"):
        await client.profiles.list()


async def test_insufficient_balance(emulator: Emulator, client: AsyncWebRun) -> None:
    emulator.account.balance = 0.0
    with pytest.raises(InsufficientBalanceError) as info:
        await client.run_task("x")
    assert info.value.status == 402
    assert info.value.balance == 0.0
    assert emulator.live_sessions() == []


async def test_no_instances(make_emulator: MakeEmulator, make_client: MakeClient) -> None:
    full = await make_emulator(instances=1)
    client = await make_client(full)
    async with client.sessions.create():
        with pytest.raises(NoInstancesAvailableError) as info:
            await client.run_task("x")
    assert info.value.status == 503
    # a 503 on a billable POST is retried (the server provably did not start it)
    assert full.request_counts["POST /start/start-session"] == 1 + 1 + 2
