"""Authentication, permissions, account state and malformed bodies."""

from __future__ import annotations

import pytest

from tests.emulator.emulator_support import Api, MakeApi

UNAUTHORIZED = {"success": False, "message": "API key required", "code": "UNAUTHORIZED"}
INVALID_KEY = {"success": False, "message": "Invalid or revoked API key", "code": "INVALID_API_KEY"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/start/start-session"),
        ("POST", "/start/run-task"),
        ("POST", "/start/send-message"),
        ("POST", "/files/upload"),
        ("GET", "/profiles"),
        ("POST", "/environments"),
        ("GET", "/v1/models"),
    ],
)
async def test_missing_key_is_401(api: Api, method: str, path: str) -> None:
    reply = await api.call(method, path, key=None)
    assert reply.status == 401
    if path.startswith("/v1/"):
        assert reply.body == {
            "error": {
                "message": "API key required",
                "type": "authentication_error",
                "code": "unauthorized",
            }
        }
    else:
        assert reply.body == UNAUTHORIZED


async def test_empty_bearer_and_other_schemes_are_missing_keys(api: Api) -> None:
    for header in ("Bearer", "Bearer   ", "Basic abc"):
        reply = await api.call(
            "POST", "/start/start-session", json={}, key=None, headers={"Authorization": header}
        )
        assert (reply.status, reply.body) == (401, UNAUTHORIZED)


async def test_unknown_and_revoked_keys_are_401(api: Api) -> None:
    reply = await api.post("/start/start-session", key="nope")
    assert (reply.status, reply.body) == (401, INVALID_KEY)

    api.emu.add_api_key("second")
    assert (await api.post("/start/start-session", key="second")).status == 200
    api.emu.revoke_api_key("second")
    reply = await api.post("/start/start-session", key="second")
    assert (reply.status, reply.body) == (401, INVALID_KEY)


async def test_generated_key_shape(make_api: MakeApi) -> None:
    api = await make_api(api_key=None)
    key = api.emu.api_key
    assert key.startswith("wr_emu_")
    assert len(key) == len("wr_emu_") + 32
    assert all(c in "0123456789abcdef" for c in key[len("wr_emu_") :])
    assert (await api.post("/start/start-session", key=key)).status == 200


async def test_deactivated_account_is_403(api: Api) -> None:
    api.emu.account.active = False
    reply = await api.post("/start/run-task", {"taskDetails": "x"})
    assert reply.status == 403
    assert reply.body == {
        "success": False,
        "message": "Account is deactivated",
        "code": "ACCOUNT_DEACTIVATED",
    }
    reply = await api.call("POST", "/v1/chat/completions", json={})
    assert reply.status == 403
    assert reply.body["error"]["type"] == "permission_error"


async def test_key_without_permission_is_403_on_profiles_only(api: Api) -> None:
    api.emu.add_api_key("limited", permissions=frozenset())
    for path in ("/profiles", "/environments"):
        reply = await api.get(path, key="limited")
        assert reply.status == 403
        assert reply.body == {
            "success": False,
            "message": "API key missing required permission: task:create",
            "code": "PERMISSION_DENIED",
        }
    assert (await api.post("/start/start-session", key="limited")).status == 200


async def test_no_auth_endpoints(api: Api) -> None:
    assert (await api.get("/start/health", key=None)).status == 200
    assert (await api.get("/start/health")).status == 200
    health = await api.get("/start/health", key="wrong")
    assert (health.status, health.body) == (401, INVALID_KEY)
    start = await api.post("/start/run-task", {"taskDetails": "poll me"})
    path = f"/task/{start.body['sessionId']}/{start.body['taskId']}"
    assert (await api.get(path, key=None)).status == 200
    assert (await api.get(path)).status == 200
    bad = await api.get(path, key="wrong")
    assert (bad.status, bad.body) == (401, INVALID_KEY)


async def test_malformed_json_is_400(api: Api) -> None:
    reply = await api.call(
        "POST",
        "/start/start-session",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 400
    assert reply.body == {
        "success": False,
        "message": "Invalid JSON body",
        "code": "INVALID_PARAMETER",
    }
    reply = await api.post("/start/run-task", [1, 2])
    assert reply.status == 400
    assert reply.body["code"] == "INVALID_PARAMETER"


async def test_auth_comes_before_validation(api: Api) -> None:
    reply = await api.call(
        "POST", "/start/run-task", data=b"{bad", key=None, headers={"Content-Type": "x"}
    )
    assert reply.status == 401


async def test_unknown_route_is_json_404(api: Api) -> None:
    reply = await api.get("/no/such/route")
    assert reply.status == 404
    assert reply.body == {"success": False, "message": "Not found", "code": "NOT_FOUND"}
    assert api.emu.request_counts["unmatched"] == 1
