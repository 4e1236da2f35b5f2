"""Shared pieces of the HTTP layer: application/request keys, JSON bodies in and out."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from webrun_async.emulator.errors import ApiError
from webrun_async.emulator.sim.engine import Engine

__all__ = [
    "ENGINE_KEY",
    "RATE_HEADERS_KEY",
    "encode",
    "engine_of",
    "json_response",
    "read_json_object",
]

ENGINE_KEY = web.AppKey("webrun_emulator_engine", Engine)
RATE_HEADERS_KEY = web.RequestKey("webrun_emulator_rate_headers", dict[str, str])

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def engine_of(request: web.Request) -> Engine:
    """The engine serving this request."""
    return request.app[ENGINE_KEY]


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """Decode the body as a JSON object; an empty body counts as `{}`.

    Raises:
        ApiError: 400 `INVALID_PARAMETER` for malformed JSON or a non-object body.
    """
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        value = _decoder.decode(raw)
    except msgspec.DecodeError:
        raise ApiError(400, "Invalid JSON body", "INVALID_PARAMETER") from None
    if not isinstance(value, dict):
        raise ApiError(400, "Request body must be a JSON object", "INVALID_PARAMETER")
    return value


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response encoded with msgspec."""
    return web.Response(
        body=_encoder.encode(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def encode(body: Any) -> bytes:
    """Encode a plain dict (or any msgspec-encodable value) to JSON bytes."""
    return _encoder.encode(body)
