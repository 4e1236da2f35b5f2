"""Shared pieces of the HTTP layer: application/request keys, JSON bodies in and out."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from webrun_async.emulator.errors import ApiError
from webrun_async.emulator.http.limits import (
    JSON_BODY_LIMIT,
    check_json_depth,
    read_within,
    too_deep,
)
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
        ApiError: 400 `INVALID_PARAMETER` for malformed JSON, a non-object body or one nested
            deeper than `MAX_JSON_DEPTH`; 413 for a body over `JSON_BODY_LIMIT`; 408 when the
            client stops sending it for `body_timeout` seconds.
    """
    raw = await read_body(request)
    if not raw.strip():
        return {}
    try:
        value = _decoder.decode(raw)
    except msgspec.DecodeError:
        raise ApiError(400, "Invalid JSON body", "INVALID_PARAMETER") from None
    except RecursionError:
        raise too_deep() from None
    if not isinstance(value, dict):
        raise ApiError(400, "Request body must be a JSON object", "INVALID_PARAMETER")
    check_json_depth(raw, value)
    return value


async def read_body(request: web.Request) -> bytes:
    """The whole body, read chunk by chunk so that a stalled client times out."""
    timeout = engine_of(request).config.body_timeout
    chunks: list[bytes] = []
    size = 0
    while chunk := await read_within(timeout, request.content.readany()):
        size += len(chunk)
        if size > JSON_BODY_LIMIT:
            raise ApiError(413, "Request body too large", "PAYLOAD_TOO_LARGE")
        chunks.append(chunk)
    return b"".join(chunks)


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
