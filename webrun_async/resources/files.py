"""Uploading files for tasks (``POST /files/upload``)."""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TypeAlias

import aiohttp

from webrun_async._exceptions import InvalidParameterError
from webrun_async._params import check_id
from webrun_async._ratelimit import task_bucket
from webrun_async.resources._base import Resource, decoder
from webrun_async.types.files import UploadedFile, _UploadAnswer

__all__ = ["FileInput", "Files", "form_for"]

UPLOAD = "POST /files/upload"

FileInput: TypeAlias = str | os.PathLike[str] | tuple[str, bytes]
"""A file to upload: a path, or a ``(filename, content)`` pair."""

_decode_upload = decoder(_UploadAnswer)


def _checked(item: object, name: str) -> Path | tuple[str, bytes]:
    if isinstance(item, tuple):
        if (
            len(item) != 2
            or not isinstance(item[0], str)
            or not item[0]
            or not isinstance(item[1], bytes | bytearray | memoryview)
        ):
            raise InvalidParameterError(name, "a (filename, bytes) pair needs a name and bytes")
        return item[0], bytes(item[1])
    if not isinstance(item, str | os.PathLike):
        raise InvalidParameterError(
            name, f"must be a path or a (filename, bytes) pair, got {type(item).__name__}"
        )
    path = Path(item)
    if path.is_dir():
        raise InvalidParameterError(name, f"{path} is a directory, not a file")
    if not path.is_file():
        raise InvalidParameterError(name, f"{path} does not exist or is not a regular file")
    return path


def form_for(
    field: str, items: list[Path | tuple[str, bytes]], extra: dict[str, str], files: ExitStack
) -> Callable[[], aiohttp.FormData]:
    """A factory of multipart forms for ``items``, reopening paths on every call.

    aiohttp consumes a form once, so each retry needs a new one; the opened files are closed
    by ``files`` when the request is over.
    """

    def build() -> aiohttp.FormData:
        form = aiohttp.FormData()
        for key, value in extra.items():
            form.add_field(key, value)
        for item in items:
            content: bytes | IO[bytes]
            if isinstance(item, Path):
                name = item.name
                content = files.enter_context(item.open("rb"))
            else:
                name, content = item
            kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
            form.add_field(field, content, filename=name, content_type=kind)
        return form

    return build


class Files(Resource):
    """Task files. Reach it as ``client.files``."""

    __slots__ = ()

    async def upload(
        self, *files: FileInput, environment_id: str | None = None
    ) -> list[UploadedFile]:
        """Upload one or more files; pass their ids in a task's ``files``.

        Without ``environment_id`` the files are temporary (the service deletes unused ones
        after an hour); with it they stay attached to that environment.

        Raises:
            InvalidParameterError: No file, a missing path or a directory; nothing was sent.
        """
        if not files:
            raise InvalidParameterError("files", "give at least one file to upload")
        items = [_checked(item, f"files[{i}]") for i, item in enumerate(files)]
        extra = {}
        if environment_id is not None:
            extra["environmentId"] = check_id("environment_id", environment_id)
        with ExitStack() as opened:
            answer = await self._transport.request(
                "POST",
                "/files/upload",
                _decode_upload,
                body=form_for("files", items, extra, opened),
                bucket=task_bucket(UPLOAD),
            )
        return answer.files
