"""Base Struct classes shared by every wire type."""

from __future__ import annotations

import msgspec

__all__ = ["Request", "Response"]


class Response(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """Base of every decoded response body.

    Unknown fields are ignored, so new server fields never break decoding; Python names are
    snake_case and map to the API's camelCase names.
    """


class Request(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel"):
    """Base of every request body.

    Fields left at their default are not sent, so the server applies its own defaults.
    """
