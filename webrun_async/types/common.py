"""Types shared across resources: usage and simple acknowledgements."""

from __future__ import annotations

import msgspec

from ._base import Response

__all__ = ["Ack", "Usage"]


class Usage(msgspec.Struct, kw_only=True, frozen=True):
    """Tokens, time and cost of a task, normalised from every documented spelling.

    Fields the server did not report are zero.

    Attributes:
        prompt_tokens: Input tokens consumed.
        completion_tokens: Output tokens produced.
        total_tokens: Their sum.
        completion_time: Seconds of work.
        cost: Cost in USD.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    completion_time: float = 0.0
    cost: float = 0.0


class Ack(Response, kw_only=True, frozen=True):
    """The plain ``{"success": true, "message": ...}`` answer of control endpoints."""

    success: bool = True
    message: str | None = None
