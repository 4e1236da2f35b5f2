"""Rate limits: per-endpoint windows, the shared per-IP window, headers and 429."""

from __future__ import annotations

import time

from tests.emulator.emulator_support import Api, MakeApi
from tests.support import wait_until
from webrun_async.emulator.http.ratelimit import SlidingWindow

LIMITED = {
    "success": False,
    "message": "Rate limit exceeded. Please try again later.",
    "code": "RATE_LIMIT_EXCEEDED",
}


async def test_headers_and_429(make_api: MakeApi) -> None:
    api = await make_api(rate_limit=(2, 60.0))
    before = time.time()
    first = await api.post("/start/start-session")
    assert first.status == 200
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert first.headers["X-RateLimit-Remaining"] == "1"
    reset = int(first.headers["X-RateLimit-Reset"])
    assert before + 59 <= reset <= time.time() + 61
    assert "Retry-After" not in first.headers
    # Errors of a limited endpoint carry the headers too.
    second = await api.post("/start/start-session", {"initialTask": {"taskDetails": 1}})
    assert second.status == 400
    assert second.headers["X-RateLimit-Remaining"] == "0"
    third = await api.post("/start/start-session")
    assert (third.status, third.body) == (429, LIMITED)
    assert third.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(third.headers["Retry-After"]) <= 60
    assert int(third.headers["X-RateLimit-Reset"]) == reset


async def test_windows_are_per_endpoint_and_slide(make_api: MakeApi) -> None:
    api = await make_api(rate_limit=(1, 0.2))
    assert (await api.post("/start/start-session")).status == 200
    assert (await api.post("/start/start-session")).status == 429
    assert (await api.post("/start/run-task", {"taskDetails": "x"})).status == 200
    assert (await api.post("/start/send-message")).status == 400  # its own window, then validation

    async def allowed_again() -> bool:
        return (await api.post("/start/start-session")).status == 200

    await wait_until(allowed_again)


async def test_all_task_endpoints_are_limited(make_api: MakeApi) -> None:
    api = await make_api(rate_limit=(5, 60.0))
    for path in (
        "/start/start-session",
        "/start/run-task",
        "/start/send-message",
        "/files/upload",
        "/v1/chat/completions",
    ):
        reply = await api.post(path)
        assert reply.headers["X-RateLimit-Limit"] == "5", path
    for path in ("/start/health", "/v1/models", "/task/aaaaaaaaaaaa/bbbbbbbbbbbb"):
        reply = await api.get(path)
        assert "X-RateLimit-Limit" not in reply.headers, path


async def test_chat_429_uses_openai_shape(make_api: MakeApi) -> None:
    api = await make_api(rate_limit=(1, 60.0))
    await api.post("/v1/chat/completions", {})
    reply = await api.post("/v1/chat/completions", {})
    assert reply.status == 429
    assert reply.body == {
        "error": {
            "message": "Rate limit exceeded. Please try again later.",
            "type": "rate_limit_error",
            "code": "rate_limit_exceeded",
        }
    }
    assert "Retry-After" in reply.headers


async def test_unauthenticated_requests_do_not_count(make_api: MakeApi) -> None:
    api = await make_api(rate_limit=(1, 60.0))
    assert (await api.post("/start/start-session", key=None)).status == 401
    assert (await api.post("/start/start-session")).status == 200


async def test_profiles_and_environments_share_one_window(make_api: MakeApi) -> None:
    api = await make_api(account_rate_limit=(3, 60.0))
    assert (await api.get("/profiles")).headers["X-RateLimit-Remaining"] == "2"
    assert (await api.post("/environments", {"name": "e"})).headers["X-RateLimit-Remaining"] == "1"
    assert (await api.get("/environments")).status == 200
    reply = await api.delete(f"/profiles/{'0' * 24}")
    assert (reply.status, reply.body) == (429, LIMITED)
    assert reply.headers["X-RateLimit-Limit"] == "3"
    # Task endpoints are unaffected.
    assert (await api.post("/start/start-session")).status == 200


async def test_limits_off(api: Api) -> None:
    for _ in range(15):
        assert (await api.get("/profiles")).status == 200
    assert "X-RateLimit-Limit" not in (await api.post("/start/start-session")).headers


def test_refused_requests_do_not_count() -> None:
    window = SlidingWindow(1, 1.0)
    assert window.hit("k", 0.0).allowed
    refused = window.hit("k", 0.5)
    assert not refused.allowed
    assert refused.headers["Retry-After"] == "1"
    # Had the refused hit counted, it would still be in the window at 1.0.
    assert window.hit("k", 1.0).allowed
    assert window.hit("other", 1.0).allowed
