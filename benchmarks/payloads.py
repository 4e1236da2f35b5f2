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


def task_completed(index: int = 0) -> dict[str, object]:
    """A ``task_completed`` answer of about 3.5 KB: 4 files, 4 network captures of 4 URLs each,
    6 steps (a field the SDK does not know, as servers add fields), and usage."""
    task = f"x9y8z7w6{index:04d}"
    return {
        "success": True,
        "sessionId": "a1b2c3d4e5f6",
        "taskId": task,
        "type": "task_completed",
        "data": {
            "message": "Found the three cheapest wireless keyboards: Logitech K380 at $24.99, "
            "Microsoft Bluetooth at $27.49 and Arteck HB030B at $19.99, all in stock and "
            "shipping within two days to the address on file.",
            "files": [
                {
                    "source": f"https://example.com/reports/report-{i}.csv",
                    "downloadUrl": f"https://blobs.webrun.ai/files/{task}/report-{i}.csv",
                    "filename": f"report-{i}.csv",
                    "timestamp": 1771138379108 + i,
                }
                for i in range(4)
            ],
            "network": [
                {
                    "id": f"net{i:02d}",
                    "taskId": task,
                    "urls": [
                        {
                            "url": f"https://www.example-shop.com/search?q=keyboard&page={i}&v={j}",
                            "timestamp": 1771138379087.646 + i * 10 + j,
                        }
                        for j in range(4)
                    ],
                }
                for i in range(4)
            ],
            "steps": [
                {
                    "index": i,
                    "action": "CLICK",
                    "target": f"result item {i} in the grid",
                    "durationMs": 840,
                }
                for i in range(6)
            ],
        },
        "usage": {
            "prompt_tokens": 12450,
            "completion_tokens": 3200,
            "total_tokens": 15650,
            "completion_time": 23.5,
            "cost": 0.0124,
        },
        "completedAt": "2026-01-15T10:30:00Z",
    }


def task_running(index: int = 0) -> dict[str, object]:
    """A poll answer for a task still running."""
    return {
        "success": True,
        "sessionId": "a1b2c3d4e5f6",
        "taskId": f"x9y8z7w6{index:04d}",
        "status": "running",
        "pending": True,
        "usage": {
            "prompt_tokens": 8000,
            "completion_tokens": 2100,
            "total_tokens": 10100,
            "completion_time": 12.3,
            "cost": 0.0067,
        },
    }
