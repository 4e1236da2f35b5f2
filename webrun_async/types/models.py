"""The model list of the OpenAI-compatible API, and service health."""

from __future__ import annotations

from datetime import datetime

import msgspec

from ._base import Response

__all__ = ["Health", "Model", "ModelList"]


class Model(msgspec.Struct, kw_only=True, frozen=True):
    """A model id usable with the OpenAI-compatible endpoint."""

    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = ""


class ModelList(msgspec.Struct, kw_only=True, frozen=True):
    """The answer of ``GET /v1/models``."""

    object: str = "list"
    data: list[Model] = msgspec.field(default_factory=list)


class Health(Response, kw_only=True, frozen=True):
    """The answer of ``GET /start/health``.

    Attributes:
        status: ``"healthy"`` when the service is up.
        instances_available: Whether a browser instance is free.
        instance_count: How many instances the service reports.
    """

    success: bool = True
    status: str = ""
    instances_available: bool | None = None
    instance_count: int | None = None
    timestamp: datetime | None = None
