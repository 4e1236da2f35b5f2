"""Scenario directives in task text, the events they produce, and generated output."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from typing import Any

import pytest

from tests.emulator.emulator_support import Api, EventLog, MakeApi
from webrun_async.emulator.sim.output import sample_for_schema


async def run(api: Api, text: str, **fields: Any) -> dict[str, Any]:
    reply = await api.post("/start/run-task", {"taskDetails": text, **fields})
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.body
    return body


async def test_duration_directive(make_api: MakeApi) -> None:
    api = await make_api(inline_wait=0, task_duration=30)
    body = await run(api, "quick [[ duration = 0.1 ]] please")
    done = await api.poll_until(body["sessionId"], body["taskId"])
    assert done["usage"]["completion_time"] == pytest.approx(0.1, abs=0.05)
    assert "[[" not in done["data"]["message"]
    assert "quick please" in done["data"]["message"]


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("NAVIGATION_TIMEOUT", "Navigation timeout after 30 seconds"),
        ("PAGE_CRASH", "Browser page crashed during execution"),
        ("ELEMENT_NOT_FOUND", "Could not locate element matching criteria"),
        ("SESSION_EXPIRED", "Session expired after 300 seconds of inactivity"),
        ("TASK_TIMEOUT", "Task exceeded maximum duration of 300000ms"),
        ("CAPTCHA_WALL", "Task failed with CAPTCHA_WALL"),
    ],
)
async def test_fail_directive(api: Api, code: str, text: str) -> None:
    body = await run(api, f"[[fail={code}]]")
    assert body == {
        "success": False,
        "sessionId": body["sessionId"],
        "taskId": body["taskId"],
        "status": "failed",
        "error": text,
        "code": code,
        "usage": body["usage"],
    }
    assert api.emu.live_sessions() == []  # failures also end a terminateOnCompletion session


async def test_max_duration_times_out(make_api: MakeApi) -> None:
    api = await make_api(inline_wait=2.0)  # held past the 1 s limit: the answer is the timeout
    body = await run(api, "[[duration=1.2]]", maxDuration=1000)
    assert body["status"] == "failed"
    assert body["code"] == "TASK_TIMEOUT"
    assert body["error"] == "Task exceeded maximum duration of 1000ms"
    assert body["usage"]["completion_time"] == pytest.approx(1.0, abs=0.05)


async def test_guardrail_directive_poll_shape(make_api: MakeApi) -> None:
    api = await make_api(task_duration=0.2)
    body = await run(api, "log in [[guardrail=I need login credentials]]")
    assert body == {
        "success": True,
        "type": "guardrail_trigger",
        "sessionId": body["sessionId"],
        "taskId": body["taskId"],
        "data": {"type": "human_input_needed", "value": "I need login credentials"},
        "usage": body["usage"],
    }
    # Stopped at half the duration, and the clock does not run while waiting.
    assert body["usage"]["completion_time"] == pytest.approx(0.1, abs=0.05)
    assert await api.poll(body["sessionId"], body["taskId"]) == body


async def test_files_directive_and_download(api: Api) -> None:
    body = await run(api, "[[files=2]] [[file_size=5000]]")
    files = body["data"]["files"]
    assert [f["filename"] for f in files] == ["file-1.txt", "file-2.txt"]
    for index, entry in enumerate(files, start=1):
        assert entry["source"] == f"https://example.com/files/file-{index}.txt"
        assert re.match(
            rf"^{re.escape(api.emu.base_url)}/_emulator/files/[0-9a-f]{{24}}/file-{index}\.txt$",
            entry["downloadUrl"],
        )
        assert isinstance(entry["timestamp"], int)
    first = await api.http.get(files[0]["downloadUrl"])
    content = await first.read()
    assert first.status == 200
    assert first.headers["Content-Length"] == "5000"
    assert len(content) == 5000
    again = await (await api.http.get(files[0]["downloadUrl"])).read()
    assert again == content  # deterministic
    other = await (await api.http.get(files[1]["downloadUrl"])).read()
    assert other != content


async def test_large_generated_file_streams(api: Api) -> None:
    size = 64 * 1024 * 1024
    body = await run(api, f"[[files=1]] [[file_size={size}]]")
    url = body["data"]["files"][0]["downloadUrl"]
    digest = hashlib.sha256()
    total = 0
    async with api.http.get(url) as response:
        assert response.headers["Content-Length"] == str(size)
        async for chunk in response.content.iter_chunked(1 << 20):
            total += len(chunk)
            digest.update(chunk)
    assert total == size


async def test_generated_file_404s(api: Api) -> None:
    body = await run(api, "[[files=1]]")
    url = body["data"]["files"][0]["downloadUrl"]
    assert (await api.get(url.replace("file-1.txt", "other.txt"))).status == 404
    assert (await api.get("/_emulator/files/" + "0" * 24 + "/file-1.txt")).status == 404


@pytest.mark.parametrize("count", [0, 1, 4, 7])
async def test_events_directive_and_order(api: Api, count: int) -> None:
    sid = await api.new_session()
    log = EventLog()
    api.emu.state.sessions[sid].subscribe(log)
    directive = "" if count == 4 else f"[[events={count}]]"
    reply = await api.message(
        sid,
        {
            "actionType": "newTask",
            "taskDetails": f"go {directive}",
            "startingPoint": "https://s.test",
        },
    )
    assert reply.body["type"] == "task_completed"
    types = log.types()
    assert types[0] == "response_update"
    assert log.events[0] == (
        "message",
        {"type": "response_update", "data": {"message": "Starting task... Browsing the web now."}},
    )
    assert types[1:-1] == ["agent", "action"] * (count // 2) + ["agent"] * (count % 2)
    assert types[-1] == "task_completed"
    for _, payload in log.events[1:-1]:
        if payload["type"] == "agent":
            assert isinstance(payload["content"], str)
            assert payload["content"]
        else:
            assert set(payload["data"]) == {"name", "target"}
    if count >= 2:
        assert log.events[2][1]["data"] == {"name": "navigateUrl", "target": "https://s.test"}
    completed = log.events[-1][1]
    assert "success" not in completed
    assert completed == {k: v for k, v in reply.body.items() if k != "success"}


async def test_terminal_events_for_failure_and_guardrail(api: Api) -> None:
    sid = await api.new_session()
    log = EventLog()
    api.emu.state.sessions[sid].subscribe(log)
    failed = await api.message(sid, {"actionType": "newTask", "taskDetails": "[[fail=PAGE_CRASH]]"})
    assert log.events[-1] == (
        "message",
        {
            "type": "error",
            "sessionId": sid,
            "taskId": failed.body["taskId"],
            "error": "Browser page crashed during execution",
            "code": "PAGE_CRASH",
        },
    )
    guarded = await api.message(sid, {"actionType": "newTask", "taskDetails": "[[guardrail=OTP?]]"})
    assert log.events[-1] == (
        "message",
        {
            "type": "guardrail_trigger",
            "sessionId": sid,
            "taskId": guarded.body["taskId"],
            "data": {"type": "human_input_needed", "value": "OTP?"},
        },
    )


async def test_unknown_and_malformed_directives_are_ignored(api: Api) -> None:
    body = await run(api, "[[colour=blue]] [[duration=soon]] [[files=many]]")
    assert body["type"] == "task_completed"
    assert body["data"]["files"] == []


# -- structured output ------------------------------------------------------------------------

SCHEMA: dict[str, Any] = {
    "type": "object",
    "$defs": {
        "Product": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "price": {"type": "number", "minimum": 100},
                "stock": {"type": "integer"},
                "inStock": {"type": "boolean"},
                "tier": {"enum": ["gold", "silver"]},
                "kind": {"const": "laptop"},
                "url": {"type": "string", "format": "uri"},
                "contact": {"type": "string", "format": "email"},
                "listed": {"type": "string", "format": "date-time"},
                "day": {"type": "string", "format": "date"},
                "note": {"type": ["string", "null"]},
                "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            },
            "required": ["name", "sku"],
        }
    },
    "properties": {
        "products": {"type": "array", "items": {"$ref": "#/$defs/Product"}},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        "meta": {
            "allOf": [
                {"properties": {"a": {"type": "integer"}}},
                {"properties": {"b": {"type": "boolean"}}},
            ]
        },
    },
}


async def test_structured_json_output(api: Api) -> None:
    body = await run(api, "find laptops", outputType="structured_json", outputSchema=SCHEMA)
    value = json.loads(body["data"]["message"])
    assert set(value) == {"products", "tags", "meta"}
    assert len(value["products"]) == 3
    product = value["products"][0]
    assert isinstance(product["name"], str)
    assert "sku" in product  # required, though not among the properties
    assert isinstance(product["price"], float)
    assert product["price"] >= 100
    assert isinstance(product["stock"], int)
    assert not isinstance(product["stock"], bool)
    assert product["inStock"] is True
    assert product["tier"] == "gold"
    assert product["kind"] == "laptop"
    assert product["url"].startswith("https://")
    assert re.match(r"^[^@\s]+@[^@\s]+\.[a-z]+$", product["contact"])
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", product["listed"])
    assert re.match(r"^\d{4}-\d\d-\d\d$", product["day"])
    assert isinstance(product["note"], str)
    assert isinstance(product["either"], int)
    assert len(value["tags"]) == 2
    assert all(isinstance(t, str) for t in value["tags"])
    assert isinstance(value["meta"]["a"], int)
    assert value["meta"]["b"] is True


async def test_structured_alias_and_no_schema(api: Api) -> None:
    body = await run(api, "anything", outputType="structured")
    assert isinstance(json.loads(body["data"]["message"]), dict)


@pytest.mark.parametrize(
    ("schema", "columns"),
    [
        (["name", "price", "url"], ["name", "price", "url"]),
        ({"type": "object", "properties": {"a": {}, "b": {}}}, ["a", "b"]),
        ({"type": "array", "items": {"type": "object", "properties": {"x": {}}}}, ["x"]),
    ],
)
async def test_structured_csv_output(api: Api, schema: Any, columns: list[str]) -> None:
    body = await run(api, "table", outputType="structured_csv", outputSchema=schema)
    rows = list(csv.reader(io.StringIO(body["data"]["message"])))
    assert rows[0] == columns
    assert len(rows) == 4
    assert all(len(row) == len(columns) for row in rows)


def test_schema_sampler_edge_cases() -> None:
    recursive = {
        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
        "$ref": "#/$defs/Node",
    }
    assert isinstance(sample_for_schema(recursive), dict)  # depth-limited, no recursion error
    assert sample_for_schema({"type": "null"}) is None
    assert sample_for_schema({"oneOf": [{"type": "boolean"}, {"type": "string"}]}) is True
    assert (
        sample_for_schema({"type": "array", "items": {"type": "integer"}, "minItems": 5})
        == [42] * 5
    )
    assert sample_for_schema({"type": "integer", "maximum": 10}) == 10
    assert sample_for_schema({"$ref": "https://elsewhere.test/schema"}) == "Sample value"
