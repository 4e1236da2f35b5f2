"""Chat completions (``resources/chat.py``), whole answers, end to end against the emulator.

Streamed answers are in ``tests/api/test_chat_stream.py``."""

from __future__ import annotations

import pytest

from webrun_async import AsyncWebRun, BadRequestError, GuardrailTriggered
from webrun_async.emulator import Emulator
from webrun_async.types import ChatMessage


async def test_chat_completion(client: AsyncWebRun, emulator: Emulator) -> None:
    completion = await client.chat.completions.create(
        model="enigma-browser-1",
        messages=[
            {"role": "system", "content": "You are a helpful browser automation assistant."},
            ChatMessage(role="user", content="Go to example.com and extract all headings"),
        ],
        max_tokens=2000,
    )
    assert completion.object == "chat.completion"
    assert completion.model == "enigma-browser-1"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content and "extract all headings" in choice.message.content
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert completion.webrun is not None and completion.webrun.cost is not None
    assert completion.webrun.session_id is not None
    assert emulator.live_sessions() == []


async def test_chat_guardrail(client: AsyncWebRun, emulator: Emulator) -> None:
    with pytest.raises(GuardrailTriggered) as info:
        await client.chat.completions.create(
            model="webrun-browser-1",
            messages=[{"role": "user", "content": "Log in [[guardrail=I need a password]]"}],
        )
    assert info.value.value == "I need a password"
    assert emulator.live_sessions() == []


async def test_chat_unknown_model(client: AsyncWebRun) -> None:
    with pytest.raises(BadRequestError) as info:
        await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.code == "model_not_found"
