"""Uploaded task files and environment files."""

from __future__ import annotations

from datetime import datetime

import msgspec

from ._base import Response

__all__ = ["EnvironmentFile", "UploadedFile"]


class UploadedFile(Response, kw_only=True, frozen=True):
    """A file uploaded for tasks; pass ``file_id`` in a task's ``files``.

    Attributes:
        file_id: The id to reference in tasks.
        original_name: The name it was uploaded under.
        size: Its size in bytes.
    """

    file_id: str
    original_name: str = ""
    size: int = 0


class EnvironmentFile(Response, kw_only=True, frozen=True):
    """A file attached to an environment."""

    file_id: str
    original_name: str = ""
    size: int = 0
    created_at: datetime | None = None


class _UploadAnswer(Response, kw_only=True, frozen=True):
    files: list[UploadedFile] = msgspec.field(default_factory=list)


class _EnvironmentFilesAnswer(Response, kw_only=True, frozen=True):
    files: list[EnvironmentFile] = msgspec.field(default_factory=list)
