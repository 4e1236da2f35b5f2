"""The payloads the benchmarks send, built deterministically."""

from __future__ import annotations

import msgspec

WORDS = ("The", " cheapest", " wireless", " keyboard", " on", " the", " page", " costs", " $24.99.")


def chat_chunk(index: int) -> dict[str, object]:
    """One ``chat.completion.chunk`` shaped like the service's (role in the first delta)."""
    delta: dict[str, str] = {"content": WORDS[index % len(WORDS)]}
    if index == 0:
        delta["role"] = "assistant"
    return {
        "id": "chatcmpl-a1b2c3d4e5f6",
        "object": "chat.completion.chunk",
        "created": 1704067200,
        "model": "enigma-browser-1",
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
    }


def sse_body(chunks: int) -> bytes:
    """``chunks`` events then ``[DONE]``, as the chat endpoint streams them."""
    parts = [b"data: " + msgspec.json.encode(chat_chunk(i)) + b"\n\n" for i in range(chunks)]
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)
