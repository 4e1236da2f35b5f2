"""Bad input fails before any request, with an error naming the parameter; what good input
becomes on the wire (``_core/params.py``).

The client's own options (timeouts, retries, limits, base URL) are in ``test_config.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.scripted import ScriptedServer
from webrun_async import (
    AsyncWebRun,
    InvalidParameterError,
    TaskSecret,
)
from webrun_async._core.params import keywords_of, output_spec
from webrun_async.resources.sessions import Session
from webrun_async.resources.tasks import Tasks


@pytest.fixture
async def client(server: ScriptedServer) -> AsyncIterator[AsyncWebRun]:
    """A client of the scripted server that must never be reached."""
    async with AsyncWebRun("k", base_url=server.base_url, rate_limit=None) as c:
        yield c
    assert server.seen == [], "bad input must be rejected before any request"


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"task_details": ""}, "task_details"),
        ({"task_details": "   "}, "task_details"),
        ({"task_details": 42}, "task_details"),
        ({"max_duration": 300000}, "max_duration"),
        ({"max_duration": 0.5}, "max_duration"),
        ({"max_duration": -1}, "max_duration"),
        ({"max_duration": float("nan")}, "max_duration"),
        ({"max_duration": "60"}, "max_duration"),
        ({"max_input_tokens": 100_001}, "max_input_tokens"),
        ({"max_output_tokens": -1}, "max_output_tokens"),
        ({"max_output_tokens": 1.5}, "max_output_tokens"),
        ({"avoid_domains": "facebook.com"}, "avoid_domains"),
        ({"avoid_domains": ["ok.com", ""]}, "avoid_domains[]"),
        ({"files": "abc123"}, "files"),
        ({"files": ["../etc"]}, "files[]"),
        ({"output_type": "xml"}, "output_type"),
        ({"output_type": "structured_json"}, "output_schema"),
        ({"output_schema": "not a schema"}, "output_schema"),
        ({"output_schema": []}, "output_schema"),
        ({"secrets": [{"match": "x"}]}, "secrets"),
        ({"secrets": {"a.com": {"password": 1}}}, "secrets"),
        ({"environment_id": "a/b"}, "environment_id"),
        ({"reach_out_mode": "sometimes"}, "reach_out_mode"),
        ({"terminate_on_completion": False}, "terminate_on_completion"),
        ({"starting_url": ""}, "starting_url"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_run_task_rejects_bad_input(
    client: AsyncWebRun, kwargs: dict[str, Any], parameter: str
) -> None:
    args = {"task_details": "find a laptop", **kwargs}
    with pytest.raises(InvalidParameterError) as info:
        await client.run_task(**args)
    assert info.value.parameter == parameter
    assert str(info.value).startswith(parameter)


async def test_milliseconds_get_a_hint(client: AsyncWebRun) -> None:
    with pytest.raises(InvalidParameterError, match="did you mean 60"):
        await client.run_task("x", max_duration=60000)


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda c: c.tasks.get("", "t"), "session_id"),
        (lambda c: c.tasks.get("s", "t/../x"), "task_id"),
        (lambda c: c.profiles.delete(""), "id"),
        (lambda c: c.profiles.create(""), "name"),
        (lambda c: c.profiles.create("x" * 101), "name"),
        (lambda c: c.environments.create("ok", description="d" * 501), "description"),
        (lambda c: c.environments.list_files("bad id"), "environment_id"),
        (lambda c: c.files.upload(), "files"),
        (lambda c: c.files.upload(Path("/definitely/not/here.pdf")), "files[0]"),
        (lambda c: c.files.upload(Path(".")), "files[0]"),
        (lambda c: c.files.upload(("", b"x")), "files[0]"),
        (lambda c: c.files.upload(42), "files[0]"),
        (lambda c: c.environments.upload("e1", Path(".")), "archive"),
        (lambda c: c.chat.completions.create(model="m", messages=[]), "messages"),
        (lambda c: c.chat.completions.create(model="m", messages="hi"), "messages"),
        (
            lambda c: c.chat.completions.create(
                model="m", messages=[{"role": "system", "content": "x"}]
            ),
            "messages",
        ),
        (lambda c: c.chat.completions.create(model="", messages=[]), "model"),
        (lambda c: c.sessions.send("s", {"actionType": "state"}), "message"),
        (lambda c: c.sessions.create(starting_url="https://a.com"), "starting_url"),
    ],
)
async def test_resource_methods_reject_bad_input(
    client: AsyncWebRun, call: Any, parameter: str
) -> None:
    with pytest.raises(InvalidParameterError) as info:
        await call(client)
    assert info.value.parameter == parameter


async def test_session_interactions_reject_bad_input(client: AsyncWebRun) -> None:
    session = client.sessions.attach("s1")
    with pytest.raises(InvalidParameterError, match=r"^x"):
        await session.click(-1, 10)
    with pytest.raises(InvalidParameterError, match=r"^y"):
        await session.double_click(1, float("inf"))
    with pytest.raises(InvalidParameterError, match=r"^key"):
        await session.key_press("")
    with pytest.raises(InvalidParameterError, match=r"^text"):
        await session.type_text(None)  # type: ignore[arg-type]
    session.detach()


class Product(msgspec.Struct):
    name: str
    price: float


class Catalogue(msgspec.Struct):
    products: list[Product]


def test_struct_schema_is_sent_self_contained() -> None:
    spec = output_spec(Catalogue)
    assert spec.output_type == "structured_json"
    schema = spec.schema
    assert isinstance(schema, dict)
    assert "$ref" not in msgspec.json.encode(schema).decode()
    assert schema["properties"]["products"]["items"]["properties"]["price"]["type"] == "number"


class Node(msgspec.Struct):
    children: list[Node]


def test_recursive_schema_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="recursive"):
        output_spec(Node)


def test_options_accept_timedelta_and_secret_mappings() -> None:
    from webrun_async._core.params import task_fields

    fields = task_fields(
        {
            "max_duration": timedelta(minutes=2),
            "secrets": {"*.example.com": {"password": "hunter2"}},
        },
        output_spec(None),
    )
    assert fields["max_duration"] == 120_000
    assert fields["secrets"] == [TaskSecret(match="*.example.com", fields={"password": "hunter2"})]
    assert "hunter2" not in repr(fields["secrets"])


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        (
            {"type": "bogus"},
            "unknown type 'bogus' (known: array, boolean, integer, null, number, "
            "object, string) at $.type",
        ),
        (
            int,
            "the JSON schema of int: a structured output must be an object or an array, not "
            "'integer' at $.type",
        ),
        (str, "the JSON schema of str: a structured output must be an object or an array"),
        ({"type": "string"}, "a structured output must be an object or an array"),
        (
            {"type": "object", "properties": {"price": {"type": "float"}}},
            "unknown type 'float' (known: array, boolean, integer, null, number, object, string)"
            " at $.properties.price.type",
        ),
        ({"type": "object", "properties": ["a"]}, "properties must be an object of schemas"),
        ({"type": "object", "required": "a"}, "required must be a list of property names"),
        ({"type": "array", "items": "string"}, "expected a schema object, got str at $.items"),
        ({"type": "object", "anyOf": {}}, "anyOf must be a list of schemas at $.anyOf"),
    ],
)
def test_output_schemas_are_checked_before_sending(schema: Any, problem: str) -> None:
    with pytest.raises(InvalidParameterError) as info:
        output_spec(schema)
    assert info.value.parameter == "output_schema"
    assert problem in str(info.value)


def test_usable_output_schemas_pass() -> None:
    for schema in (
        {"type": "object", "properties": {"a": {"type": ["string", "null"]}}, "required": ["a"]},
        {"type": "array", "items": {"type": "object", "additionalProperties": False}},
        {"properties": {"a": True}},
        list[int],
    ):
        assert output_spec(schema).output_type == "structured_json"


async def test_the_unknown_option_error_lists_what_the_method_takes(client: AsyncWebRun) -> None:
    with pytest.raises(InvalidParameterError) as info:
        client.tasks.submit("x", maxcost=1)  # type: ignore[call-arg]
    listed = str(info.value).partition("known: ")[2].rstrip(")").split(", ")
    assert {"max_cost", "output_schema", "on_guardrail", "starting_url"} <= set(listed)
    assert "terminate_on_completion" not in listed  # a one-shot task always ends its session
    with pytest.raises(InvalidParameterError) as info:
        await client.tasks.create("x", maxcost=1)  # type: ignore[call-arg]
    listed = str(info.value).partition("known: ")[2].rstrip(")").split(", ")
    assert "output_schema" in listed and "max_cost" not in listed  # create takes no budget
    # A task in a session may keep the session: there the option is listed.
    assert "terminate_on_completion" in keywords_of(Session.submit)
    assert "terminate_on_completion" not in keywords_of(
        Tasks.submit, forced=["terminate_on_completion"]
    )
