"""The OpenAI-compatible endpoints over plain HTTP, and through the official ``openai`` package."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.emulator.emulator_support import Api, MakeApi
from tests.support import KEY, wait_until

CHAT = "/v1/chat/completions"


def chat(
    content: Any = "Go to example.com and extract all headings", **extra: Any
) -> dict[str, Any]:
    return {
        "model": "enigma-browser-1",
        "messages": [
            {"role": "system", "content": "You are a helpful browser automation assistant."},
            {"role": "user", "content": content},
        ],
        **extra,
    }


async def read_sse(api: Api, body: dict[str, Any]) -> tuple[int, dict[str, str], list[str]]:
    async with api.http.post(
        api.emu.base_url + CHAT, json=body, headers={"Authorization": f"Bearer {KEY}"}
    ) as response:
        text = (await response.read()).decode()
        headers = dict(response.headers)
    assert text.endswith("\n\n")
    events = [block.removeprefix("data: ") for block in text.split("\n\n") if block]
    return response.status, headers, events


async def test_models(api: Api) -> None:
    reply = await api.get("/v1/models")
    assert reply.body == {
        "object": "list",
        "data": [
            {
                "id": "enigma-browser-1",
                "object": "model",
                "created": 1704067200,
                "owned_by": "enigma",
            },
            {
                "id": "webrun-browser-1",
                "object": "model",
                "created": 1704067200,
                "owned_by": "webrun",
            },
        ],
    }


@pytest.mark.parametrize(
    "model", ["enigma-browser-1", "webrun-browser-1", "webrun-browser-pro", "webrun-browser-fast"]
)
async def test_non_streaming(api: Api, model: str) -> None:
    reply = await api.post(
        CHAT, {**chat(max_tokens=2000, temperature=0.2, reach_out_mode="off"), "model": model}
    )
    assert reply.status == 200, reply.body
    body = reply.body
    sid = body["webrun"]["sessionId"]
    assert body["id"] == f"chatcmpl-{sid}"
    assert body["object"] == "chat.completion"
    assert body["model"] == model
    assert isinstance(body["created"], int)
    (choice,) = body["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert "extract all headings" in choice["message"]["content"]
    usage = body["usage"]
    assert set(usage) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert set(body["webrun"]) == {"sessionId", "taskId", "cost"}
    assert api.emu.live_sessions() == []
    assert api.emu.state.sessions[sid].end_reason == "terminateOnCompletion"


async def test_content_parts_and_last_user_message(api: Api) -> None:
    body = chat([{"type": "text", "text": "first part"}, {"type": "text", "text": "second"}])
    body["messages"].insert(0, {"role": "user", "content": "older question"})
    reply = await api.post(CHAT, body)
    content = reply.body["choices"][0]["message"]["content"]
    assert "first part" in content
    assert "older" not in content


async def test_streaming(api: Api) -> None:
    status, headers, events = await read_sse(api, chat(stream=True))
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["Cache-Control"] == "no-cache"
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert len(chunks) >= 3
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1
    assert ids.pop().startswith("chatcmpl-")
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "enigma-browser-1"
        assert set(chunk) == {"id", "object", "created", "model", "choices"}
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["role"] == "assistant"
    assert all("role" not in d for d in deltas[1:])
    assert deltas[-1] == {}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    text = "".join(d.get("content", "") for d in deltas)
    assert "extract all headings" in text
    assert api.emu.live_sessions() == []


async def test_guardrail_non_streaming(api: Api) -> None:
    reply = await api.post(CHAT, chat("log in [[guardrail=I need login credentials to proceed]]"))
    assert reply.status == 400
    assert reply.body == {
        "error": {
            "message": "Guardrail triggered: I need login credentials to proceed",
            "type": "guardrail_error",
            "code": "guardrail_triggered",
        }
    }
    assert api.emu.live_sessions() == []


async def test_guardrail_streaming(api: Api) -> None:
    status, _, events = await read_sse(api, chat("[[guardrail=Need OTP]]", stream=True))
    assert status == 200
    assert events == [
        json.dumps(
            {
                "error": {
                    "message": "Guardrail triggered: Need OTP",
                    "type": "guardrail_error",
                    "code": "guardrail_triggered",
                }
            },
            separators=(",", ":"),
        ),
        "[DONE]",
    ]
    assert api.emu.live_sessions() == []


async def test_failure(api: Api) -> None:
    reply = await api.post(CHAT, chat("[[fail=NAVIGATION_TIMEOUT]]"))
    assert reply.status == 500
    assert reply.body == {
        "error": {
            "message": "Navigation timeout after 30 seconds",
            "type": "server_error",
            "code": "NAVIGATION_TIMEOUT",
        }
    }
    _, _, events = await read_sse(api, chat("[[fail=PAGE_CRASH]]", stream=True))
    assert json.loads(events[0])["error"]["code"] == "PAGE_CRASH"
    assert events[1:] == ["[DONE]"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, 400, "missing_required_field"),
        (
            {"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]},
            400,
            "model_not_found",
        ),
        ({"model": "enigma-browser-1"}, 400, "invalid_parameter"),
        ({"model": "enigma-browser-1", "messages": []}, 400, "invalid_parameter"),
        (
            {"model": "enigma-browser-1", "messages": [{"role": "system", "content": "x"}]},
            400,
            "invalid_parameter",
        ),
        (
            {"model": "enigma-browser-1", "messages": [{"role": "user", "content": 5}]},
            400,
            "invalid_parameter",
        ),
        (
            {
                "model": "enigma-browser-1",
                "messages": [{"role": "user", "content": [{"type": "image_url"}]}],
            },
            400,
            "invalid_parameter",
        ),
        (
            {
                "model": "enigma-browser-1",
                "messages": [{"role": "user", "content": "x"}],
                "max_tokens": 0,
            },
            400,
            "invalid_parameter",
        ),
        (
            {
                "model": "enigma-browser-1",
                "messages": [{"role": "user", "content": "x"}],
                "stream": "yes",
            },
            400,
            "invalid_parameter",
        ),
    ],
)
async def test_validation(api: Api, body: dict[str, Any], status: int, code: str) -> None:
    reply = await api.post(CHAT, body)
    assert reply.status == status
    assert reply.body["error"]["type"] == "invalid_request_error"
    assert reply.body["error"]["code"] == code
    assert api.emu.state.sessions == {}


async def test_balance_and_instances_in_openai_shape(make_api: MakeApi) -> None:
    api = await make_api(instances=0)
    reply = await api.post(CHAT, chat())
    assert reply.status == 503
    assert reply.body == {
        "error": {
            "message": "No available instances.",
            "type": "server_error",
            "code": "no_instances_available",
        }
    }
    api.emu.account.balance = 0
    reply = await api.post(CHAT, chat())
    assert reply.status == 402
    assert reply.body == {
        "error": {
            "message": "Insufficient balance.",
            "type": "insufficient_quota",
            "code": "insufficient_balance",
        }
    }


async def test_invalid_key_openai_shape(api: Api) -> None:
    reply = await api.post(CHAT, chat(), key="wrong")
    assert reply.status == 401
    assert reply.body["error"] == {
        "message": "Invalid or revoked API key",
        "type": "authentication_error",
        "code": "invalid_api_key",
    }


async def test_client_going_away_ends_the_session(make_api: MakeApi) -> None:
    api = await make_api()
    timeout = aiohttp.ClientTimeout(total=0.15)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        with pytest.raises(asyncio.TimeoutError):
            await http.post(
                api.emu.base_url + CHAT,
                json=chat("[[duration=10]]"),
                headers={"Authorization": f"Bearer {KEY}"},
            )
    (session,) = api.emu.state.sessions.values()
    await wait_until(lambda: not session.live)
    assert session.end_reason == "terminateOnCompletion"
    (task,) = session.tasks.values()
    assert task.status == "terminated"


# -- the official openai package --------------------------------------------------------------

USER = [{"role": "user", "content": "Go to example.com and extract all headings"}]


@pytest.fixture
def openai_client(api: Api) -> Callable[[], object]:
    openai = pytest.importorskip("openai")

    def make() -> object:
        return openai.AsyncOpenAI(base_url=api.emu.base_url + "/v1", api_key=KEY)

    return make


async def test_openai_package_models(openai_client: Callable[[], object]) -> None:
    oai = openai_client()
    models = await oai.models.list()  # type: ignore[attr-defined]
    assert "enigma-browser-1" in [m.id for m in models.data]
    await oai.close()  # type: ignore[attr-defined]


async def test_openai_package_chat(openai_client: Callable[[], object], api: Api) -> None:
    oai = openai_client()
    chat = oai.chat.completions  # type: ignore[attr-defined]
    completion = await chat.create(model="enigma-browser-1", messages=USER)
    assert "extract all headings" in completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens > 0
    await oai.close()  # type: ignore[attr-defined]
    assert api.emu.live_sessions() == []


async def test_openai_package_streaming(openai_client: Callable[[], object], api: Api) -> None:
    oai = openai_client()
    stream = await oai.chat.completions.create(  # type: ignore[attr-defined]
        model="webrun-browser-1", messages=USER, stream=True
    )
    text = ""
    finish = None
    async for part in stream:
        text += part.choices[0].delta.content or ""
        finish = part.choices[0].finish_reason or finish
    assert "extract all headings" in text
    assert finish == "stop"
    await oai.close()  # type: ignore[attr-defined]


async def test_openai_package_sees_the_guardrail_error(
    openai_client: Callable[[], object],
) -> None:
    import openai

    oai = openai_client()
    messages = [{"role": "user", "content": "Log in [[guardrail=I need a password]]"}]
    with pytest.raises(openai.BadRequestError) as info:
        await oai.chat.completions.create(  # type: ignore[attr-defined]
            model="enigma-browser-1", messages=messages
        )
    assert "Guardrail triggered: I need a password" in str(info.value)
    await oai.close()  # type: ignore[attr-defined]


async def test_openai_package_retrieves_models(openai_client: Callable[[], object]) -> None:
    import openai

    oai = openai_client()
    for name in ("enigma-browser-1", "webrun-browser-pro"):
        model = await oai.models.retrieve(name)  # type: ignore[attr-defined]
        assert (model.id, model.object) == (name, "model")
    with pytest.raises(openai.NotFoundError) as info:
        await oai.models.retrieve("gpt-4o")  # type: ignore[attr-defined]
    assert "The model 'gpt-4o' does not exist" in str(info.value)
    await oai.close()  # type: ignore[attr-defined]


async def test_openai_package_include_usage_gets_a_final_usage_chunk(
    openai_client: Callable[[], object],
) -> None:
    oai = openai_client()
    stream = await oai.chat.completions.create(  # type: ignore[attr-defined]
        model="enigma-browser-1",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    parts = [part async for part in stream]
    *content, last = parts
    assert last.choices == []
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens > 0
    assert content and all(part.usage is None and len(part.choices) == 1 for part in content)
    assert "extract all headings" in "".join(p.choices[0].delta.content or "" for p in content)
    await oai.close()  # type: ignore[attr-defined]


async def test_usage_is_left_out_without_include_usage(api: Api) -> None:
    status, _, events = await read_sse(api, chat(stream=True))
    chunks = [json.loads(event) for event in events if event != "[DONE]"]
    assert status == 200
    assert chunks and all("usage" not in chunk and chunk["choices"] for chunk in chunks)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"stream_options": {"include_usage": True}},
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        ),
        ({"stream": True, "stream_options": "yes"}, "stream_options must be an object"),
        (
            {"stream": True, "stream_options": {"include_usage": 1}},
            "stream_options.include_usage must be a boolean",
        ),
    ],
)
async def test_bad_stream_options_are_refused(
    api: Api, extra: dict[str, Any], message: str
) -> None:
    reply = await api.post(CHAT, chat(**extra))
    assert reply.status == 400
    assert reply.body["error"]["message"] == message
    assert api.emu.sessions_created == 0
