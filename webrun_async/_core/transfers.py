"""Streamed uploads and downloads: sources of every kind, archive checks, atomic downloads.

Every upload source becomes a generator of chunks handed to aiohttp as a sized payload, so a
large file is never read into memory and a known size still gives the request a
``Content-Length``. A source that can be re-opened (a path, bytes, a seekable file, a factory
of async iterables) is opened again for each retry; a bare async iterable is used once.

Profile and environment archives are checked before any byte goes out: a real gzip'd tar (the
gzip header, then the first decompressed block must be a valid tar header) and at most 500 MB.

Downloads go to a temporary file beside the destination, moved into place only when complete,
so an interrupted download never leaves a truncated file behind.
"""

from __future__ import annotations

import io
import mimetypes
import os
import secrets
import zlib
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeAlias, cast

import aiohttp
import anyio
from aiohttp import payload as aiohttp_payload

from webrun_async._core.exceptions import InvalidParameterError

__all__ = [
    "MAX_ARCHIVE_BYTES",
    "Progress",
    "Source",
    "UploadSource",
    "archive_source",
    "form",
    "upload_source",
    "write_atomically",
]

MAX_ARCHIVE_BYTES = 500 * 1024 * 1024
CHUNK = 256 * 1024

Progress: TypeAlias = Callable[[int, int | None], object]
"""``progress(done, total)``: bytes transferred so far, and the total when known."""

UploadSource: TypeAlias = (
    str
    | os.PathLike[str]
    | bytes
    | bytearray
    | memoryview
    | IO[bytes]
    | AsyncIterable[bytes]
    | Callable[[], AsyncIterable[bytes]]
    | tuple[str, Any]
)
"""What can be uploaded: a path, bytes, a binary file object, an async iterable of bytes (used
once), a function returning a fresh async iterable (re-opened for retries), or a
``(filename, any of these)`` pair to set the name."""


@dataclass(frozen=True, slots=True)
class Source:
    """One upload source, ready to be opened as many times as it can be.

    Attributes:
        name: The file name sent with it.
        size: Its size in bytes, when known.
        reopenable: Whether :meth:`open` may be called again (for retries).
    """

    name: str
    size: int | None
    reopenable: bool
    _open: Callable[[], AsyncGenerator[bytes, None]]

    def open(self) -> AsyncGenerator[bytes, None]:
        """A fresh iterator over the source's bytes."""
        return self._open()


class _SizedStream(aiohttp_payload.AsyncIterablePayload):
    """An async iterable payload whose size is known, so the request keeps a Content-Length."""

    def __init__(self, value: AsyncGenerator[bytes, None], size: int | None, **kwargs: Any) -> None:
        super().__init__(value, **kwargs)
        self._size = size


def _path_chunks(path: Path) -> Callable[[], AsyncGenerator[bytes, None]]:
    async def chunks() -> AsyncGenerator[bytes, None]:
        handle = await anyio.to_thread.run_sync(path.open, "rb")
        try:
            while chunk := await anyio.to_thread.run_sync(handle.read, CHUNK):
                yield chunk
        finally:
            await anyio.to_thread.run_sync(handle.close)

    return chunks


def _bytes_chunks(
    data: bytes | bytearray | memoryview,
) -> Callable[[], AsyncGenerator[bytes, None]]:
    view = memoryview(data).cast("B")

    async def chunks() -> AsyncGenerator[bytes, None]:
        for start in range(0, len(view), CHUNK):
            yield bytes(view[start : start + CHUNK])

    return chunks


def _file_chunks(handle: IO[bytes], start: int | None) -> Callable[[], AsyncGenerator[bytes, None]]:
    async def chunks() -> AsyncGenerator[bytes, None]:
        if start is not None:  # seekable: every attempt reads from the same place
            await anyio.to_thread.run_sync(handle.seek, start)
        while chunk := await anyio.to_thread.run_sync(handle.read, CHUNK):
            yield chunk

    return chunks


def _iterable_chunks(iterable: AsyncIterable[bytes]) -> Callable[[], AsyncGenerator[bytes, None]]:
    used = False

    async def chunks() -> AsyncGenerator[bytes, None]:
        nonlocal used
        if used:
            raise InvalidParameterError("source", "an async iterable can be read only once")
        used = True
        async for chunk in iterable:
            if not isinstance(chunk, bytes | bytearray | memoryview):
                raise InvalidParameterError(
                    "source", f"the async iterable yielded {type(chunk).__name__}, not bytes"
                )
            yield bytes(chunk)

    return chunks


def upload_source(item: object, name: str, *, default_name: str = "upload") -> Source:
    """Check one upload source and describe it (no byte is read yet, but a path's size).

    Raises:
        InvalidParameterError: ``name`` names the problem (a directory, a missing file, ...).
    """
    filename: str | None = None
    if isinstance(item, tuple):
        if len(item) != 2 or not isinstance(item[0], str) or not item[0]:
            raise InvalidParameterError(name, "a (filename, content) pair needs a file name")
        filename, item = item
    if isinstance(item, str | os.PathLike):
        path = Path(item)
        if path.is_dir():
            raise InvalidParameterError(name, f"{path} is a directory, not a file")
        if not path.is_file():
            raise InvalidParameterError(name, f"{path} does not exist or is not a regular file")
        return Source(filename or path.name, path.stat().st_size, True, _path_chunks(path))
    if isinstance(item, bytes | bytearray | memoryview):
        return Source(filename or default_name, memoryview(item).nbytes, True, _bytes_chunks(item))
    if isinstance(item, io.IOBase) or (hasattr(item, "read") and callable(item.read)):
        handle = cast(IO[bytes], item)
        size = start = None
        if handle.seekable():
            start = handle.tell()
            size = handle.seek(0, io.SEEK_END) - start
            handle.seek(start)
        guessed = getattr(handle, "name", None)
        guessed = Path(guessed).name if isinstance(guessed, str) else None
        chunks = _file_chunks(handle, start)
        return Source(filename or guessed or default_name, size, start is not None, chunks)
    if isinstance(item, AsyncIterable):
        return Source(filename or default_name, None, False, _iterable_chunks(item))
    if callable(item):
        factory = cast(Callable[[], AsyncIterable[bytes]], item)

        async def fresh() -> AsyncGenerator[bytes, None]:
            async for chunk in _iterable_chunks(factory())():
                yield chunk

        return Source(filename or default_name, None, True, fresh)
    raise InvalidParameterError(
        name,
        "must be a path, bytes, a binary file object, an async iterable of bytes or a function "
        f"returning one, got {type(item).__name__}",
    )


class _Tally:
    """Counts the bytes of one form's files as they go out, reporting the running total."""

    __slots__ = ("done", "progress", "total")

    def __init__(self, progress: Progress | None, total: int | None) -> None:
        self.progress = progress
        self.total = total
        self.done = 0
        if progress is not None:
            progress(0, total)

    async def count(
        self, chunks: AsyncGenerator[bytes, None], limit: int | None, name: str
    ) -> AsyncGenerator[bytes, None]:
        """``chunks``, counted; more than ``limit`` bytes from this one source is an error."""
        mine = 0
        async for chunk in chunks:
            mine += len(chunk)
            if limit is not None and mine > limit:
                raise InvalidParameterError(name, f"exceeds the {limit // 2**20} MB limit")
            yield chunk
            self.done += len(chunk)
            if self.progress is not None:
                self.progress(self.done, self.total)


def form(
    field: str,
    sources: list[Source],
    extra: dict[str, str],
    *,
    progress: Progress | None = None,
    limit: int | None = None,
    name: str = "source",
) -> Callable[[], aiohttp.FormData]:
    """A factory of multipart forms streaming ``sources`` (one per attempt: each re-opens them).

    ``progress`` sees the bytes of all the files together; ``limit`` bounds each file.
    """
    total = None if any(s.size is None for s in sources) else sum(s.size or 0 for s in sources)

    def build() -> aiohttp.FormData:
        data = aiohttp.FormData()
        for key, value in extra.items():
            data.add_field(key, value)
        tally = _Tally(progress, total)
        for source in sources:
            kind = mimetypes.guess_type(source.name)[0] or "application/octet-stream"
            stream = tally.count(source.open(), limit, name)
            data.add_field(
                field,
                _SizedStream(stream, source.size, filename=source.name, content_type=kind),
                filename=source.name,
                content_type=kind,
            )
        return data

    return build


# -- archives ---------------------------------------------------------------------------------


def _tar_header_ok(block: bytes) -> bool:
    """Whether a 512-byte block is a tar header (its checksum matches, signed or unsigned)."""
    if len(block) < 512 or not block.strip(b"\x00"):
        return False
    field = block[148:156]
    try:
        recorded = int(field.replace(b"\x00", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:512])
    signed = sum(b - 256 if b > 127 else b for b in block[:148] + block[156:512]) + 8 * 32
    return recorded in (unsigned, signed)


def check_archive_head(head: bytes, name: str) -> None:
    """Raise unless ``head`` (the first bytes) starts a gzip'd tar archive."""
    if head[:2] != b"\x1f\x8b":
        raise InvalidParameterError(name, "is not a gzip file (a .tar.gz archive is required)")
    try:
        block = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 512)
    except zlib.error as exc:
        raise InvalidParameterError(name, f"is not a valid gzip stream ({exc})") from None
    if len(block) < 512:
        raise InvalidParameterError(name, "is too short to hold a tar archive")
    if not _tar_header_ok(block):
        raise InvalidParameterError(name, "is gzip'd but not a tar archive (a .tar.gz is required)")


HEAD_BYTES = 64 * 1024


async def archive_source(item: object, name: str = "archive") -> Source:
    """Check a profile archive before anything is sent, and describe it as a source.

    The content must be a gzip'd tar of at most 500 MB; the name sent ends in ``.tar.gz``
    (the service checks names as well as content).

    Raises:
        InvalidParameterError: The archive is not a gzip'd tar, or is larger than 500 MB.
    """
    source = upload_source(item, name, default_name="profile.tar.gz")
    if source.size is not None and source.size > MAX_ARCHIVE_BYTES:
        raise InvalidParameterError(
            name, f"is {source.size / 2**20:.0f} MB; archives may be at most 500 MB"
        )
    filename = source.name
    if not filename.endswith((".tar.gz", ".tgz")):
        filename = f"{filename.rsplit('.', 1)[0] or 'profile'}.tar.gz"
    chunks = source.open()
    head = bytearray()
    first: list[bytes] = []
    async for chunk in chunks:
        first.append(chunk)
        head += chunk
        if len(head) >= HEAD_BYTES:
            break
    check_archive_head(bytes(head), name)
    if source.reopenable:
        await chunks.aclose()
        return Source(filename, source.size, True, source.open)

    async def resumed() -> AsyncGenerator[bytes, None]:
        # A single-use source: send what was read for the check, then the rest.
        for chunk in first:
            yield chunk
        async for chunk in chunks:
            yield chunk

    return Source(filename, source.size, False, resumed)


# -- downloads --------------------------------------------------------------------------------


async def write_atomically(
    destination: Path, chunks: AsyncGenerator[bytes, None], *, overwrite: bool
) -> Path:
    """Write ``chunks`` to ``destination`` through a temporary file moved into place at the end.

    Raises:
        InvalidParameterError: ``destination`` exists and ``overwrite`` is false.
    """
    if not overwrite and await anyio.Path(destination).exists():
        raise InvalidParameterError(
            "destination", f"{destination} exists (pass overwrite=True to replace it)"
        )
    temporary = destination.with_name(f".{destination.name}.{secrets.token_hex(4)}.part")
    handle = await anyio.to_thread.run_sync(temporary.open, "wb")
    try:
        try:
            async for chunk in chunks:
                await anyio.to_thread.run_sync(handle.write, chunk)
        finally:
            await anyio.to_thread.run_sync(handle.close)
        await anyio.to_thread.run_sync(os.replace, temporary, destination)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(temporary.unlink, True)
        raise
    return destination
