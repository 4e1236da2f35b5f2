"""The API key and task secrets never show: not in logs (debug included), reprs, exception
messages or tracebacks, whatever goes wrong, in the SDK or in the emulator beside it."""

from __future__ import annotations

import logging
import traceback
from typing import Any

import pytest

from tests.support import MakeClient, MakeEmulator
from webrun_async import (
    AsyncWebRun,
    AuthenticationError,
    GuardrailTriggered,
    InvalidParameterError,
    WebRunError,
)
from webrun_async.emulator import FaultPlan
from webrun_async.types import Proxy, TaskSecret

API_KEY = "wr_live_SECRETKEY_8f1e2d3c4b5a69788796a5b4c3d2e1f0"
PASSWORD = "hunter2-SECRET-PASSWORD"
TOKEN = "SECRET-TOTP-SEED-JBSWY3DPEHPK3PXP"
PROXY_PASSWORD = "SECRET-PROXY-PASS"
SECRETS = {"*.example.com": {"password": PASSWORD, "totp": TOKEN}}
FORBIDDEN = (API_KEY, PASSWORD, TOKEN, PROXY_PASSWORD)


def text_of(exc: BaseException) -> str:
    """Everything an exception can show: its traceback (with its causes) and every repr."""
    shown = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        attributes = repr(vars(current)) if hasattr(current, "__dict__") else ""
        shown += [str(current), repr(current), attributes]
        current = current.__cause__ or current.__context__
    return "\n".join(shown)


def assert_clean(where: str, text: str) -> None:
    for secret in FORBIDDEN:
        assert secret not in text, f"a secret appeared in {where}"


async def test_no_secret_in_logs_reprs_or_errors_whatever_happens(
    make_emulator: MakeEmulator, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, the emulator's and the libraries' too
    emu = await make_emulator(api_key=API_KEY)
    # Errors, resets and broken answers on every route, and events dropped or doubled.
    emu.faults = FaultPlan(
        rates={
            "500": 0.1,
            "503": 0.1,
            "reset_after": 0.1,
            "malformed": 0.1,
            "duplicate": 0.3,
            "drop_socket": 0.2,
        },
        seed=3,
        retry_after=0.01,
    )
    client = await make_client(emu)
    shown: list[tuple[str, str]] = [("client repr", repr(client))]
    outcomes: list[Any] = []
    proxy = Proxy(source="custom", host="proxy.local", port="8080", password=PROXY_PASSWORD)
    shown.append(("proxy repr", repr(proxy)))
    secret = TaskSecret(match="*.example.com", fields={"password": PASSWORD, "totp": TOKEN})
    shown.append(("secret repr", repr(secret)))
    handles = [
        client.tasks.submit(f"log in {i} [[events=2]]", secrets=SECRETS, proxy=proxy)
        for i in range(12)
    ]
    handles.append(client.tasks.submit("ask [[guardrail=Which account?]]", secrets=SECRETS))
    for handle in handles:
        shown.append(("handle repr", repr(handle)))
        try:
            outcomes.append(await handle)
        except WebRunError as exc:
            outcomes.append(exc)
        shown.append(("handle repr after", repr(handle)))
    assert any(isinstance(o, GuardrailTriggered) for o in outcomes)
    for outcome in outcomes:
        label = type(outcome).__name__
        if isinstance(outcome, BaseException):
            shown.append((label, text_of(outcome)))
        else:
            shown.append((label, repr(outcome)))

    # A refused key, bad input, and a request to a closed client.
    emu.faults = FaultPlan()
    async with AsyncWebRun(API_KEY + "x", base_url=emu.base_url) as wrong:
        shown.append(("wrong client repr", repr(wrong)))
        with pytest.raises(AuthenticationError) as refused:
            await wrong.tasks.get("a1b2c3d4e5f6", "x9y8z7w6v5u4")
    shown.append(("401", text_of(refused.value)))
    with pytest.raises(InvalidParameterError) as invalid:
        client.tasks.submit("x", secrets={"*.example.com": {"password": 12345, "totp": TOKEN}})  # type: ignore[dict-item]
    shown.append(("invalid secrets", text_of(invalid.value)))
    await client.aclose()
    with pytest.raises(WebRunError) as closed:
        await client.tasks.get("a1b2c3d4e5f6", "x9y8z7w6v5u4")
    shown.append(("closed", text_of(closed.value)))

    assert sum(emu.faults_injected.values()) > 0
    for where, text in shown:
        assert_clean(where, text)
    assert caplog.records, "nothing was logged: the scan would prove nothing"
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    for record in caplog.records:
        assert_clean(f"log record of {record.name}", record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            assert_clean(f"logged traceback of {record.name}", text_of(record.exc_info[1]))
    assert_clean("captured log text", caplog.text)
