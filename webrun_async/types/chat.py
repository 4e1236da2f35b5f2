"""The OpenAI-compatible chat completion types."""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

from ._base import Response

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatMessage",
    "Choice",
    "ChunkChoice",
    "CompletionUsage",
    "Delta",
    "WebRunInfo",
]

Role: TypeAlias = Literal["system", "user", "assistant"] | str


class _Chat(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """OpenAI types keep the snake_case names of that API.

    ``gc=False``: decoded answers hold no reference cycles, so the garbage collector need not
    track them (a measurable saving at hundreds of thousands of streamed chunks).
    """


class ChatMessage(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One message of the conversation."""

    role: Role
    content: str | None = None


class ChatCompletionRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The body of ``POST /v1/chat/completions``."""

    model: str
    messages: list[ChatMessage]
    stream: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    reach_out_mode: Literal["off", "guardrail_only", "full"] | None = None


class CompletionUsage(_Chat, kw_only=True, frozen=True, gc=False):
    """Tokens used by a chat completion."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class WebRunInfo(Response, kw_only=True, frozen=True):
    """WebRun's extension of a completion: which session and task ran it, and the cost."""

    session_id: str | None = None
    task_id: str | None = None
    cost: float | None = None


class Choice(_Chat, kw_only=True, frozen=True, gc=False):
    """One answer of a completion."""

    index: int = 0
    message: ChatMessage
    finish_reason: str | None = None


class ChatCompletion(_Chat, kw_only=True, frozen=True, gc=False):
    """A whole (non-streamed) chat completion."""

    id: str
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[Choice] = msgspec.field(default_factory=list)
    usage: CompletionUsage | None = None
    webrun: WebRunInfo | None = None


class Delta(_Chat, kw_only=True, frozen=True, gc=False):
    """The new part of the answer carried by one chunk."""

    role: Role | None = None
    content: str | None = None


class ChunkChoice(_Chat, kw_only=True, frozen=True, gc=False):
    """One choice's delta in a streamed chunk."""

    index: int = 0
    delta: Delta = msgspec.field(default_factory=Delta)
    finish_reason: str | None = None


class ChatCompletionChunk(_Chat, kw_only=True, frozen=True, gc=False):
    """One streamed piece of a chat completion."""

    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice] = msgspec.field(default_factory=list)
    webrun: WebRunInfo | None = None
