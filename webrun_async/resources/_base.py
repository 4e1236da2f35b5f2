"""What every resource shares: its client, the JSON encoder and decoder factories."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

if TYPE_CHECKING:
    from webrun_async._client import AsyncWebRun
    from webrun_async._transport import Transport

__all__ = ["Resource", "decoder", "encode"]

T = TypeVar("T")

encode: Callable[[Any], bytes] = msgspec.json.Encoder().encode
"""Encode a request Struct (or plain values) to JSON bytes."""


def decoder(tp: type[T]) -> Callable[[bytes], T]:
    """A reusable typed decoder for ``tp``; build it once, at import time."""
    return msgspec.json.Decoder(tp).decode


class Resource:
    """A group of API operations bound to one client."""

    __slots__ = ("_client",)

    def __init__(self, client: AsyncWebRun) -> None:
        self._client = client

    @property
    def _transport(self) -> Transport:
        return self._client._transport
