"""The SDK under injected faults (the emulator's ``FaultPlan``), over real sockets.

For every fault alone and for a mix: each task's result is delivered exactly once or a typed
error says why, nothing hangs past its deadline, no session is left running, and retries
never create more sessions than tasks were submitted.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tests.support import MakeClient, MakeEmulator, wait_until
from webrun_async import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    AsyncWebRun,
    AuthenticationError,
    NotFoundError,
    SessionTerminated,
    TaskHandle,
    TaskResult,
    Timeouts,
    WebRunError,
)
from webrun_async.emulator import FAULT_KINDS, Emulator, FaultPlan
from webrun_async.emulator.faults import FAULT_FAMILIES

POLL_ROUTE = "GET /task/{sessionId}/{taskId}"
HTTP_KINDS = [kind for kind, family in FAULT_FAMILIES.items() if family == "http"]
# Small faults for fast tests: a slow answer is slower than the emulator's 0.5 s hold, an
# oversized one larger than the clients' max_response_size below.
QUICK = {"retry_after": 0.05, "storm": 2, "slow": 0.8, "oversized_bytes": 300_000}
MAX_RESPONSE = 200_000
DEADLINE = 60.0


def expected_message(text: str) -> str:
    return f'Completed the task "{text}" in the emulator.'


class Batch:
    """Tasks submitted as one-shot handles, with how often each one was settled."""

    def __init__(self, client: AsyncWebRun, count: int, extra: str = "") -> None:
        self.texts = [f"fault test task {i}" for i in range(count)]
        self.settled = [0] * count
        self.handles: list[TaskHandle[Any]] = []
        for index, text in enumerate(self.texts):
            handle = client.tasks.submit(f"{text} {extra}".strip())
            handle.add_done_callback(self._counter(index))
            self.handles.append(handle)

    def _counter(self, index: int) -> Any:
        def count(_: TaskHandle[Any]) -> None:
            self.settled[index] += 1

        return count

    async def outcomes(self) -> list[TaskResult[Any] | BaseException]:
        """Every handle's outcome, within the deadline (a hang fails the test)."""
        results: list[TaskResult[Any] | BaseException] = [None] * len(self.handles)  # type: ignore[list-item]

        async def one(index: int, handle: TaskHandle[Any]) -> None:
            try:
                results[index] = await handle
            except BaseException as exc:
                results[index] = exc

        with anyio.fail_after(DEADLINE):
            async with anyio.create_task_group() as tg:
                for index, handle in enumerate(self.handles):
                    tg.start_soon(one, index, handle)
        return results

    def check(self, outcomes: list[TaskResult[Any] | BaseException], *, all_complete: bool) -> int:
        """Each outcome is the right result or a typed error; returns how many completed."""
        completed = 0
        for text, outcome in zip(self.texts, outcomes, strict=True):
            if isinstance(outcome, TaskResult):
                assert outcome.message == expected_message(text)
                completed += 1
            else:
                assert isinstance(outcome, WebRunError), repr(outcome)
                assert not all_complete, f"{text}: {outcome!r}"
        # A handle settles exactly once, whatever arrived twice or not at all.
        for handle in self.handles:
            assert handle.done()
        return completed


async def closed_cleanly(client: AsyncWebRun, emu: Emulator, submitted: int) -> None:
    """Close the client; then nothing runs in the emulator and no work was duplicated."""
    await client.aclose()
    assert emu.live_sessions() == []
    assert emu.sessions_created <= submitted
    assert len(emu.state.tasks) <= submitted


async def faulty(make_emulator: MakeEmulator, **plan: Any) -> Emulator:
    emu = await make_emulator()
    emu.faults = FaultPlan(seed=7, **{**QUICK, **plan})
    return emu


# -- HTTP faults -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", HTTP_KINDS)
async def test_polls_that_fail_are_retried_until_every_result_arrives(
    make_emulator: MakeEmulator, make_client: MakeClient, kind: str
) -> None:
    emu = await faulty(make_emulator, rates={kind: 0.4}, routes=(POLL_ROUTE,))
    client = await make_client(emu, mode="poll", max_response_size=MAX_RESPONSE)
    batch = Batch(client, 12, "[[duration=0.6]]")  # outlasts the hold: polling finds them
    outcomes = await batch.outcomes()
    assert batch.check(outcomes, all_complete=True) == 12
    assert batch.settled == [1] * 12
    assert emu.faults_injected.get(kind, 0) > 0
    await closed_cleanly(client, emu, 12)


@pytest.mark.parametrize("kind", HTTP_KINDS)
async def test_any_request_failing_ends_in_a_result_or_a_typed_error(
    make_emulator: MakeEmulator, make_client: MakeClient, kind: str
) -> None:
    # Every route but start-session: a start-session whose answer is lost (reset_after)
    # creates a session the client cannot know about (see the next test).
    routes = (POLL_ROUTE, "POST /start/send-message")
    emu = await faulty(make_emulator, rates={kind: 0.3}, routes=routes)
    client = await make_client(emu, max_response_size=MAX_RESPONSE)
    batch = Batch(client, 16, "[[duration=0.3]]")
    outcomes = await batch.outcomes()
    batch.check(outcomes, all_complete=False)
    assert batch.settled == [1] * 16
    assert emu.faults_injected.get(kind, 0) > 0
    await closed_cleanly(client, emu, 16)


async def test_start_session_errors_are_typed_and_never_create_extra_sessions(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    kinds = ["500", "502", "503", "504", "429", "reset_before", "malformed", "oversized"]
    emu = await faulty(
        make_emulator,
        rates=dict.fromkeys(kinds, 0.08),
        routes=("POST /start/start-session",),
    )
    client = await make_client(emu, max_response_size=MAX_RESPONSE)
    batch = Batch(client, 24)
    outcomes = await batch.outcomes()
    completed = batch.check(outcomes, all_complete=False)
    assert 0 < completed < 24
    assert batch.settled == [1] * 24
    await closed_cleanly(client, emu, 24)
    assert emu.sessions_created == completed  # the refused ones created nothing


async def test_a_lost_start_session_answer_leaves_only_a_session_that_expires(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    """The one leak no client can prevent: the server created the session and the answer
    with its id was lost. It is reported as a connection error, and the service expires it
    after its inactivity timeout."""
    emu = await make_emulator(session_timeout=0.5)
    emu.faults = FaultPlan(at={"reset_after": [1]}, routes=("POST /start/start-session",))
    client = await make_client(emu)
    with pytest.raises(APIConnectionError) as caught:
        await client.run_task("an answer lost in transit")
    assert "POST /start/start-session" in str(caught.value)
    assert len(emu.live_sessions()) == 1 and emu.sessions_created == 1
    await wait_until(lambda: not emu.live_sessions())  # expired for inactivity


async def test_a_slow_answer_past_the_read_limit_is_a_timeout_not_a_hang(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await faulty(make_emulator, rates={"slow": 1.0}, routes=(POLL_ROUTE,), slow=30.0)
    client = await make_client(emu, timeout=Timeouts(read=0.3))
    with anyio.fail_after(10):
        with pytest.raises(APITimeoutError) as caught:
            await client.tasks.get("a1b2c3d4e5f6", "x9y8z7w6v5u4")
    assert POLL_ROUTE.split()[0] in str(caught.value)


async def test_malformed_and_oversized_answers_name_the_endpoint(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await faulty(make_emulator, at={"malformed": [1], "oversized": [2]})
    client = await make_client(emu, max_response_size=MAX_RESPONSE)
    for problem in ("could not decode", "larger than max_response_size"):
        with pytest.raises(APIResponseValidationError) as caught:
            await client.health()
        assert problem in str(caught.value)
        assert "GET /start/health" in str(caught.value)
        assert caught.value.status == 200


# -- socket, instance and stream faults --------------------------------------------------------


@pytest.mark.parametrize("kind", ["drop_socket", "duplicate", "reorder"])
async def test_socket_events_dropped_duplicated_or_reordered_still_deliver_once(
    make_emulator: MakeEmulator, make_client: MakeClient, kind: str
) -> None:
    emu = await faulty(make_emulator, rates={kind: 0.3})
    client = await make_client(emu, mode="socket", poll_interval=0.2)
    batch = Batch(client, 12, "[[duration=0.8]] [[events=6]]")
    outcomes = await batch.outcomes()
    assert batch.check(outcomes, all_complete=True) == 12
    assert batch.settled == [1] * 12
    assert emu.faults_injected.get(kind, 0) > 0
    await closed_cleanly(client, emu, 12)


async def test_an_instance_that_comes_back_lets_the_tasks_finish(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await faulty(make_emulator, rates={"instance_reconnect": 1.0}, instance_gap=0.2)
    client = await make_client(emu)
    batch = Batch(client, 6, "[[duration=0.4]]")
    outcomes = await batch.outcomes()
    assert batch.check(outcomes, all_complete=True) == 6
    assert emu.faults_injected["instance_reconnect"] == 6
    await closed_cleanly(client, emu, 6)


async def test_an_instance_lost_for_good_ends_its_task_with_a_typed_error(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(instance_grace=0.2)
    emu.faults = FaultPlan(rates={"instance_lost": 1.0})
    client = await make_client(emu)
    batch = Batch(client, 6, "[[duration=5]]")
    outcomes = await batch.outcomes()
    for outcome in outcomes:
        assert isinstance(outcome, SessionTerminated), repr(outcome)
    ended = {emu.state.sessions[h.session_id or ""].end_reason for h in batch.handles}
    assert ended == {"instance_lost"}
    await closed_cleanly(client, emu, 6)


async def test_a_cut_chat_stream_raises_a_connection_error(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await faulty(make_emulator, at={"sse_truncate": [1]})
    client = await make_client(emu)
    stream = await client.chat.completions.create(
        model="enigma-browser-1",
        messages=[{"role": "user", "content": "a long answer, please, in several chunks"}],
        stream=True,
    )
    received = 0

    async def read_all() -> None:
        nonlocal received
        async with stream:
            async for _chunk in stream:
                received += 1

    with anyio.fail_after(DEADLINE), pytest.raises(APIConnectionError) as caught:
        await read_all()
    assert received >= 1
    assert "POST /v1/chat/completions" in str(caught.value)
    await closed_cleanly(client, emu, 1)


async def test_a_session_that_expires_while_idle_ends_its_waiting_task(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(session_timeout=0.3)
    client = await make_client(emu)
    session = await client.sessions.create()
    await wait_until(lambda: not emu.live_sessions())
    with anyio.fail_after(DEADLINE), pytest.raises(WebRunError):
        await session.run("too late")
    await closed_cleanly(client, emu, 1)


# -- everything at once ------------------------------------------------------------------------


async def test_a_mix_of_every_fault_loses_nothing(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    rates = dict.fromkeys(HTTP_KINDS, 0.02)
    rates.update({"drop_socket": 0.1, "duplicate": 0.1, "reorder": 0.1})
    rates.update({"instance_reconnect": 0.2})
    emu = await faulty(
        make_emulator,
        rates=rates,
        routes=(POLL_ROUTE, "POST /start/send-message"),
        instance_gap=0.1,
    )
    client = await make_client(emu, max_response_size=MAX_RESPONSE, poll_interval=0.2)
    batch = Batch(client, 40, "[[duration=0.4]] [[events=3]]")
    outcomes = await batch.outcomes()
    completed = batch.check(outcomes, all_complete=False)
    assert completed > 20  # most get through; the rest say why
    assert batch.settled == [1] * 40
    assert sum(emu.faults_injected.values()) > 0
    await closed_cleanly(client, emu, 40)


def test_every_fault_kind_is_exercised_here() -> None:
    covered = {*HTTP_KINDS, "drop_socket", "duplicate", "reorder"}
    covered |= {"instance_reconnect", "instance_lost", "sse_truncate"}
    assert covered == set(FAULT_KINDS)


async def test_an_unknown_session_id_is_a_typed_error_that_says_so(
    client: AsyncWebRun, emulator: Emulator
) -> None:
    # Well-formed ids are only known to be wrong by the server; malformed ones never leave
    # the client (tests/core/test_params.py).
    with anyio.fail_after(DEADLINE):
        with pytest.raises(AuthenticationError) as unknown_session:
            await client.sessions.attach("doesnotexist1").run("anything")
        with pytest.raises(NotFoundError) as unknown_task:
            await client.tasks.get("doesnotexist1", "t1")
    assert "SESSION_NOT_FOUND" in str(unknown_session.value)
    assert "POST /start/send-message" in str(unknown_session.value)
    assert "GET /task/doesnotexist1/t1" in str(unknown_task.value)
    assert emulator.live_sessions() == []


async def test_terminating_a_session_is_retried_through_server_errors(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    """Ending a session twice is harmless, so a failed terminate is retried like a GET."""
    emu = await make_emulator()
    client = await make_client(emu, mode="poll")  # no socket: termination goes over REST
    async with await client.sessions.create():
        emu.faults = FaultPlan(
            at={"500": [1], "reset_after": [2]}, routes=("POST /start/send-message",)
        )
    assert emu.faults_injected == {"500": 1, "reset_after": 1}
    assert emu.live_sessions() == []
    await closed_cleanly(client, emu, 1)
