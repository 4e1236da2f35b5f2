"""JSON encoding and typed decoding, built once and shared by every layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

__all__ = ["decoder", "encode"]

T = TypeVar("T")

encode: Callable[[Any], bytes] = msgspec.json.Encoder().encode
"""Encode a request Struct (or plain values) to JSON bytes."""


def decoder(tp: type[T]) -> Callable[[bytes], T]:
    """A reusable typed decoder for ``tp``; build it once, at import time."""
    return msgspec.json.Decoder(tp).decode
