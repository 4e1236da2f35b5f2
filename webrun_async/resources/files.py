"""Task files: streamed uploads (``POST /files/upload``) and downloads of result files."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import anyio

from webrun_async._core.codec import decoder
from webrun_async._core.exceptions import APIConnectionError, InvalidParameterError
from webrun_async._core.params import check_id
from webrun_async._core.ratelimit import task_bucket
from webrun_async._core.transfers import (
    Progress,
    UploadSource,
    form,
    upload_source,
    write_atomically,
)
from webrun_async.resources._base import Resource
from webrun_async.types.files import UploadedFile, _UploadAnswer
from webrun_async.types.tasks import TaskFile

if TYPE_CHECKING:
    from webrun_async._core.transport import Transport

__all__ = ["Files", "download", "stream_url"]

UPLOAD = "POST /files/upload"

_decode_upload = decoder(_UploadAnswer)


def _url_of(file: object, name: str) -> str:
    url = file.download_url if isinstance(file, TaskFile) else file
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidParameterError(name, "must be a TaskFile or an http(s) URL")
    return url


async def stream_url(
    transport: Transport, url: str, *, progress: Progress | None = None
) -> AsyncGenerator[bytes, None]:
    """The bytes at ``url`` as they arrive (the API key goes only to the API's own host).

    Raises:
        APIError: The download failed (a cut transfer is an ``APIConnectionError``).
    """
    response = await transport.stream("GET", url, auth=transport.same_origin(url))
    total = response.content_length
    done = 0
    complete = False
    try:
        if progress is not None:
            progress(0, total)
        while chunk := await response.read_chunk():
            done += len(chunk)
            if progress is not None:
                progress(done, total)
            yield chunk
        if total is not None and done != total:
            raise APIConnectionError(
                f"the download was cut short ({done} of {total} bytes)",
                method="GET",
                path=response.path,
            )
        complete = True
    finally:
        response.close(complete=complete)


async def download(
    transport: Transport,
    url: str,
    destination: str | os.PathLike[str],
    *,
    filename: str | None,
    progress: Progress | None,
    overwrite: bool,
) -> Path:
    """Download ``url`` to ``destination`` (a file, or a directory to put ``filename`` in).

    A destination ending in a path separator is a directory, created (with its parents) when
    missing. A transfer cut mid-way is started again while the client's retry policy allows;
    the file appears only once complete.
    """
    target = Path(destination)
    if os.fspath(destination).endswith(("/", os.sep)):
        await anyio.Path(target).mkdir(parents=True, exist_ok=True)
    if await anyio.Path(target).is_dir():
        name = filename or PurePosixPath(unquote(urlsplit(url).path)).name or "download"
        target = target / Path(name).name  # never a path from the server
    elif not await anyio.Path(target.parent).is_dir():
        raise InvalidParameterError("destination", f"{target.parent} is not a directory")
    policy = transport.retry
    attempt = 0
    while True:
        try:
            return await write_atomically(
                target, stream_url(transport, url, progress=progress), overwrite=overwrite
            )
        except APIConnectionError:
            if attempt >= policy.max_retries:
                raise
            await anyio.sleep(policy.delay(attempt, None))
            attempt += 1


class Files(Resource):
    """Task files. Reach it as ``client.files``."""

    __slots__ = ()

    async def upload(
        self,
        *files: UploadSource,
        environment_id: str | None = None,
        progress: Progress | None = None,
    ) -> list[UploadedFile]:
        """Upload one or more files, streamed; pass their ids in a task's ``files``.

        Without ``environment_id`` the files are temporary (the service deletes unused ones
        after an hour); with it they stay attached to that environment.

        Args:
            *files: Paths, bytes, binary file objects, async iterables of bytes (used once, so
                not retried), functions returning one, or ``(filename, content)`` pairs.
            environment_id: The environment to attach them to.
            progress: ``progress(bytes_sent, total_or_None)``, called as the upload goes.

        Raises:
            InvalidParameterError: No file, a missing path or a directory; nothing was sent.
        """
        if not files:
            raise InvalidParameterError("files", "give at least one file to upload")
        sources = [upload_source(item, f"files[{i}]") for i, item in enumerate(files)]
        extra = {}
        if environment_id is not None:
            extra["environmentId"] = check_id("environment_id", environment_id)
        answer = await self._transport.request(
            "POST",
            "/files/upload",
            _decode_upload,
            body=form("files", sources, extra, progress=progress),
            bucket=task_bucket(UPLOAD),
            retryable=all(source.reopenable for source in sources),
        )
        return answer.files

    async def download(
        self,
        file: TaskFile | str,
        destination: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Download a file the agent produced (``result.files[i]``, or a URL) to disk.

        Args:
            file: A :class:`~webrun_async.types.TaskFile` or its download URL.
            destination: A file path, or a directory to keep the file's name in: an existing
                one, or a path ending in ``/`` (created when missing).
            progress: ``progress(bytes_received, total_or_None)``.
            overwrite: Replace an existing file.

        Returns:
            The path written. It appears only once the download is complete.
        """
        url = _url_of(file, "file")
        name = file.filename if isinstance(file, TaskFile) else None
        return await download(
            self._transport,
            url,
            destination,
            filename=name,
            progress=progress,
            overwrite=overwrite,
        )

    def stream(
        self, file: TaskFile | str, *, progress: Progress | None = None
    ) -> AsyncGenerator[bytes, None]:
        """The bytes of a file the agent produced, as they arrive (``async for chunk in ...``)."""
        return stream_url(self._transport, _url_of(file, "file"), progress=progress)
