"""POST /start/start-session: shapes, accepted variants, admission errors, health."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.emulator.emulator_support import Api, MakeApi

ID12 = re.compile(r"^[a-z0-9]{12}$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_start_session_without_task(api: Api) -> None:
    reply = await api.post("/start/start-session", {"mode": "default"})
    assert reply.status == 200
    body = reply.body
    sid = body["sessionId"]
    base = api.emu.base_url
    assert ID12.match(sid)
    assert body == {
        "success": True,
        "sessionId": sid,
        "socketURL": base,
        "streaming": {
            "webRTCURL": f"{base}/_emulator/stream/{sid}/whep",
            "webViewURL": f"{base}/_emulator/stream/{sid}",
            "dimensions": {"width": 1024, "height": 600},
        },
        "initialPrompt": "",
        "expiresIn": 300000,
        "balance": 100.0,
        "message": "Connect to instance using sessionId in auth",
    }
    assert api.emu.live_sessions() == [sid]
    assert reply.headers.get("X-RateLimit-Limit") is None  # rate_limit=None in these tests


@pytest.mark.parametrize(
    "body",
    [
        {"initialTask": {"taskDetails": "go [[duration=0]]", "startingPoint": "https://a.test"}},
        {"task": {"prompt": "go [[duration=0]]", "startingUrl": "https://a.test"}},
        {"prompt": "go [[duration=0]]", "startingUrl": "https://a.test"},
        {
            "initialTask": {"taskDetails": "go [[duration=0]]", "startingUrl": "https://a.test"},
            "task": {"prompt": "ignored", "startingUrl": "https://ignored.test"},
            "taskDetails": "ignored too",
        },
        {
            "initialTask": {
                "taskDetails": "go [[duration=0]]",
                "prompt": "loses",
                "startingPoint": "https://a.test",
            }
        },
    ],
)
async def test_task_field_variants(api: Api, body: dict[str, Any]) -> None:
    reply = await api.post("/start/start-session", body)
    assert reply.status == 200, reply.body
    assert reply.body["initialPrompt"] == "go [[duration=0]]"
    sid, tid = reply.body["sessionId"], reply.body["taskId"]
    assert ID12.match(tid)
    done = await api.poll_until(sid, tid)
    assert done["type"] == "task_completed"
    assert done["data"]["network"][0]["urls"][0]["url"] == "https://a.test"


async def test_initial_task_is_not_held(make_api: MakeApi) -> None:
    api = await make_api(inline_wait=30)
    reply = await api.post(
        "/start/start-session", {"initialTask": {"taskDetails": "[[duration=30]]"}}
    )
    body = await api.poll(reply.body["sessionId"], reply.body["taskId"])
    assert body["status"] == "running"


async def test_empty_initial_task_has_no_task_id(api: Api) -> None:
    reply = await api.post("/start/start-session", {"initialTask": {"taskDetails": ""}})
    assert reply.status == 200
    assert "taskId" not in reply.body
    assert api.emu.state.tasks == {}


async def test_client_task_id_used_when_unique(api: Api) -> None:
    first = await api.post(
        "/start/start-session", {"initialTask": {"taskDetails": "a", "taskId": "mine"}}
    )
    assert first.body["taskId"] == "mine"
    second = await api.post(
        "/start/start-session", {"initialTask": {"taskDetails": "b", "taskId": "mine"}}
    )
    assert second.body["taskId"] != "mine"
    assert ID12.match(second.body["taskId"])


@pytest.mark.parametrize("field", ["profileId", "environmentId"])
async def test_attach_environment(api: Api, field: str) -> None:
    env = (await api.post("/environments", {"name": "work"})).body["environment"]
    assert env["usageCount"] == 0
    assert env["lastUsedAt"] is None
    reply = await api.post("/start/start-session", {field: env["_id"]})
    assert reply.status == 200
    listed = (await api.get("/profiles")).body["profiles"][0]
    assert listed["usageCount"] == 1
    assert ISO.match(listed["lastUsedAt"])
    assert api.emu.state.sessions[reply.body["sessionId"]].options.environment_id == env["_id"]


async def test_unknown_environment_is_404(api: Api) -> None:
    reply = await api.post("/start/start-session", {"environmentId": "0" * 24})
    assert reply.status == 404
    assert reply.body == {
        "success": False,
        "message": "Environment not found",
        "code": "ENVIRONMENT_NOT_FOUND",
    }
    assert api.emu.live_sessions() == []


async def test_unknown_file_id_is_400(api: Api) -> None:
    reply = await api.post(
        "/start/start-session", {"initialTask": {"taskDetails": "x", "files": ["f" * 24]}}
    )
    assert reply.status == 400
    assert reply.body == {
        "success": False,
        "message": f"Unknown file id: {'f' * 24}",
        "code": "INVALID_PARAMETER",
    }


async def test_lenient_clamping(api: Api) -> None:
    body = {
        "mode": "turbo",
        "reachOutMode": "sometimes",
        "initialTask": {
            "taskDetails": "clamp me",
            "maxDuration": 5,
            "maxInputTokens": 10**9,
            "maxOutputTokens": -4,
            "outputType": "structured",
        },
    }
    reply = await api.post("/start/start-session", body)
    assert reply.status == 200, reply.body
    spec = api.emu.state.tasks[reply.body["taskId"]].spec
    assert (spec.max_duration_ms, spec.max_input_tokens, spec.max_output_tokens) == (
        1000,
        100000,
        0,
    )
    assert spec.output_type == "structured_json"
    options = api.emu.state.sessions[reply.body["sessionId"]].options
    assert options.reach_out_mode == "guardrail_only"


@pytest.mark.parametrize(
    ("task", "top", "message"),
    [
        (
            {"maxDuration": 5},
            {},
            "Invalid parameter 'maxDuration': must be between 1000 and 300000",
        ),
        (
            {"maxDuration": 400000},
            {},
            "Invalid parameter 'maxDuration': must be between 1000 and 300000",
        ),
        (
            {"maxInputTokens": 100001},
            {},
            "Invalid parameter 'maxInputTokens': must be between 0 and 100000",
        ),
        (
            {"maxOutputTokens": -1},
            {},
            "Invalid parameter 'maxOutputTokens': must be between 0 and 100000",
        ),
        ({}, {"mode": "turbo"}, "Invalid parameter 'mode': only 'default' is supported"),
    ],
)
async def test_strict_ranges(
    make_api: MakeApi, task: dict[str, Any], top: dict[str, Any], message: str
) -> None:
    api = await make_api(strict=True)
    reply = await api.post(
        "/start/start-session", {**top, "initialTask": {"taskDetails": "x", **task}}
    )
    assert reply.status == 400
    assert reply.body == {"success": False, "message": message, "code": "INVALID_PARAMETER"}


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"taskDetails": 5}, "Invalid parameter 'taskDetails': must be a string"),
        ({"maxDuration": "long"}, "Invalid parameter 'maxDuration': must be a number"),
        (
            {"terminateOnCompletion": "yes"},
            "Invalid parameter 'terminateOnCompletion': must be a boolean",
        ),
        ({"avoidDomains": [1]}, "Invalid parameter 'avoidDomains': must be an array of strings"),
        (
            {"outputType": "xml"},
            "Invalid parameter 'outputType': must be one of text, structured_json, structured_csv",
        ),
        ({"secrets": "pw"}, "Invalid parameter 'secrets': must be an array"),
    ],
)
async def test_bad_types_are_400(api: Api, task: dict[str, Any], message: str) -> None:
    reply = await api.post("/start/start-session", {"initialTask": task})
    assert reply.status == 400
    assert reply.body == {"success": False, "message": message, "code": "INVALID_PARAMETER"}


async def test_other_documented_fields_are_accepted(api: Api) -> None:
    body = {
        "policyId": "pol_xyz789",
        "reach_out_mode": "off",
        "proxy": {"source": "custom", "host": "p.test", "port": "8080", "password": "hunter2"},
        "initialTask": {
            "taskDetails": "x",
            "avoidDomains": ["facebook.com"],
            "webhook": {"name": "n", "url": "https://hook.test", "submittedData": "just_ping"},
            "secrets": [{"match": "*.amazon.com", "fields": {"password": "pass123"}}],
        },
    }
    reply = await api.post("/start/start-session", body)
    assert reply.status == 200, reply.body
    session = api.emu.state.sessions[reply.body["sessionId"]]
    assert session.options.reach_out_mode == "off"
    assert session.options.policy_id == "pol_xyz789"
    assert "hunter2" not in repr(session.options)
    assert "pass123" not in repr(api.emu.state.tasks[reply.body["taskId"]].spec)


async def test_insufficient_balance_is_402(api: Api) -> None:
    api.emu.account.balance = 0.0
    for path, body in (
        ("/start/start-session", {}),
        ("/start/run-task", {"taskDetails": "x"}),
    ):
        reply = await api.post(path, body)
        assert reply.status == 402
        assert reply.body == {
            "success": False,
            "message": "Insufficient balance.",
            "code": "INSUFFICIENT_BALANCE",
            "balance": 0.0,
        }
    assert api.emu.live_sessions() == []


async def test_validation_comes_before_balance(api: Api) -> None:
    api.emu.account.balance = -1.0
    reply = await api.post("/start/run-task", {})
    assert reply.status == 400


async def test_instances_full_is_503_and_freed_on_end(make_api: MakeApi) -> None:
    api = await make_api(instances=1)
    health = (await api.get("/start/health")).body
    assert (health["instancesAvailable"], health["instanceCount"]) == (True, 1)
    sid = await api.new_session()
    reply = await api.post("/start/start-session")
    assert reply.status == 503
    assert reply.body == {
        "success": False,
        "message": "No available instances.",
        "code": "NO_INSTANCES_AVAILABLE",
    }
    assert (await api.post("/start/run-task", {"taskDetails": "x"})).status == 503
    health = (await api.get("/start/health")).body
    assert (health["instancesAvailable"], health["instanceCount"]) == (False, 0)
    await api.message(sid, {"actionType": "state", "newState": "terminate"})
    assert (await api.post("/start/start-session")).status == 200


async def test_health_unlimited(api: Api) -> None:
    reply = await api.get("/start/health", key=None)
    body = reply.body
    assert body["success"] is True
    assert body["status"] == "healthy"
    assert body["instancesAvailable"] is True
    assert body["instanceCount"] == 100
    assert ISO.match(body["timestamp"])
    await api.new_session()
    assert (await api.get("/start/health")).body["instanceCount"] == 101


async def test_stream_stubs(api: Api) -> None:
    sid = await api.new_session()
    page = await api.get(f"/_emulator/stream/{sid}", key=None)
    assert page.status == 200
    assert sid in page.body
    whep = await api.call("POST", f"/_emulator/stream/{sid}/whep", data=b"v=0", key=None)
    assert whep.status == 501
    assert (await api.get("/_emulator/stream/nosuchsession1")).status == 404
