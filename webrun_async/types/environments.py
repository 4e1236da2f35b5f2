"""Environments and browser profiles (the same objects, seen through two APIs)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, TypeAlias

import msgspec

from ._base import Request, Response

__all__ = [
    "CreateEnvironmentRequest",
    "Environment",
    "EnvironmentStatus",
    "Profile",
    "ProfileDownload",
]

EnvironmentStatus: TypeAlias = Literal["empty", "uploading", "ready"] | str
"""``empty``, ``uploading`` or ``ready``; other values are passed through unchanged."""


class Environment(Response, kw_only=True, frozen=True):
    """A named container for a browser profile and persistent files.

    Attributes:
        id: The environment id (``_id`` on the wire); also usable as a profile id.
        name: Its name (at most 100 characters).
        description: Its description (at most 500 characters).
        status: ``empty``, ``uploading`` or ``ready``.
        blob_size: Size of the stored profile archive in bytes.
        blob_uploaded_at: When the archive was last uploaded.
        last_used_at: When a session last used it.
        usage_count: How many sessions used it.
    """

    id: str = msgspec.field(name="_id")
    name: str = ""
    description: str | None = None
    status: EnvironmentStatus = "empty"
    user_id: str | None = None
    blob_size: int | None = None
    blob_uploaded_at: datetime | None = None
    last_used_at: datetime | None = None
    usage_count: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Profile(Environment, kw_only=True, frozen=True):
    """A browser profile: the profiles API's view of an :class:`Environment`."""


class CreateEnvironmentRequest(Request, kw_only=True):
    """The body that creates a profile or an environment."""

    name: str
    description: str | None = None


class ProfileDownload(Response, kw_only=True, frozen=True):
    """A temporary signed URL to a profile's archive (it expires after about an hour)."""

    download_url: str
    expires_at: datetime | None = None


class _EnvironmentAnswer(Response, kw_only=True, frozen=True):
    environment: Environment


class _ProfileAnswer(Response, kw_only=True, frozen=True):
    profile: Profile


class _EnvironmentList(Response, kw_only=True, frozen=True):
    environments: list[Environment] = msgspec.field(default_factory=list)


class _ProfileList(Response, kw_only=True, frozen=True):
    profiles: list[Profile] = msgspec.field(default_factory=list)
