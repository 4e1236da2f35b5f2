"""Streaming multipart parts to disk under a size cap, and recognising a real `.tar.gz`."""

from __future__ import annotations

import asyncio
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import BadContentDispositionHeader, BadContentDispositionParam

from webrun_async.emulator.errors import ApiError, missing_field
from webrun_async.emulator.http.limits import read_within
from webrun_async.emulator.http.request import engine_of

__all__ = [
    "FILE_FIELDS",
    "Parts",
    "TarGzSniffer",
    "malformed",
    "open_multipart",
    "spool_part",
    "too_large",
]

# Form fields carrying files: the docs use `files` for task uploads, `file` for archives.
FILE_FIELDS = ("files", "file")
_READ_CHUNK = 64 * 1024
# Parts are buffered up to this size between writes so a thread hop carries real work.
_FLUSH_AT = 1024 * 1024
_TAR_BLOCK = 512


def too_large(limit: int) -> ApiError:
    """400 `FILE_TOO_LARGE` with the limit in MB, as the docs phrase the 500 MB cap."""
    megabytes = limit / (1024 * 1024)
    return ApiError(400, f"File exceeds the {megabytes:.3g} MB limit", "FILE_TOO_LARGE")


async def open_multipart(request: web.Request) -> Parts:
    """The form's parts, or 400 "No file provided" when the body is not multipart."""
    if not request.content_type.startswith("multipart/"):
        raise missing_field("No file provided")
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError):
        raise missing_field("No file provided") from None
    return Parts(reader, engine_of(request).config.body_timeout)


def malformed() -> ApiError:
    """400 for a multipart body that cannot be parsed."""
    return ApiError(400, "Malformed multipart body", "INVALID_PARAMETER")


@contextmanager
def _parsing() -> Iterator[None]:
    # What aiohttp's multipart reader raises on broken input: a missing or unterminated
    # boundary (ValueError), a header line too long or without a colon (HttpProcessingError).
    try:
        yield
    except (ValueError, AssertionError, HttpProcessingError):
        raise malformed() from None


class Parts:
    """The parts of a multipart body; broken input is a 400 and a stalled client a 408.

    Iterating yields the form parts (a nested multipart part is skipped); every read waits at
    most `timeout` seconds for the client.
    """

    def __init__(self, reader: MultipartReader, timeout: float) -> None:
        self._reader = reader
        self._timeout = timeout

    def __aiter__(self) -> Parts:
        return self

    async def __anext__(self) -> BodyPartReader:
        while True:
            with _parsing():
                part = await read_within(self._timeout, self._reader.next())
            if part is None:
                raise StopAsyncIteration
            if isinstance(part, BodyPartReader):
                with warnings.catch_warnings():
                    # aiohttp warns about a malformed Content-Disposition and reads no name;
                    # in a test suite that turns warnings into errors that would be a 500.
                    warnings.simplefilter("ignore", BadContentDispositionHeader)
                    warnings.simplefilter("ignore", BadContentDispositionParam)
                    _ = part.name, part.filename  # read once here; aiohttp keeps them
                return part

    async def read_chunk(self, part: BodyPartReader, size: int = _READ_CHUNK) -> bytes:
        """The next chunk of `part` (`b""` at its end)."""
        with _parsing():
            return await read_within(self._timeout, part.read_chunk(size))

    async def finish(self) -> None:
        """Read the rest of the body, so that a truncated one is refused before it counts."""
        async for _ in self:
            pass


async def spool_part(
    parts: Parts,
    part: BodyPartReader,
    dest: Path,
    limit: int,
    inspect: Callable[[bytes], None] | None = None,
) -> int:
    """Stream one part to `dest`, never holding more than ~1 MiB; returns its size.

    The caller removes `dest` when this raises.

    Raises:
        ApiError: 400 `FILE_TOO_LARGE` as soon as the part passes `limit` bytes; 400 for a
            malformed body; 408 when the client stalls.
    """
    size = 0
    pending: list[bytes] = []
    pending_size = 0
    # Opened here, not in a worker thread: a handler cancelled (the client went away) while
    # a thread opened the file would never get the handle back to close it.
    handle = _open_for_write(dest)
    try:
        while chunk := await parts.read_chunk(part):
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            if inspect is not None:
                inspect(chunk)
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= _FLUSH_AT:
                await asyncio.to_thread(handle.write, b"".join(pending))
                pending.clear()
                pending_size = 0
        if pending:
            await asyncio.to_thread(handle.write, b"".join(pending))
    finally:
        handle.close()
    return size


def _open_for_write(path: Path) -> BinaryIO:
    return path.open("wb")


class TarGzSniffer:
    """Decides from the first bytes whether a stream is a gzip'd tar archive.

    It inflates only until the first 512-byte tar block is available, so memory stays small
    whatever the archive size.
    """

    def __init__(self) -> None:
        self._inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._head = b""
        self._block = b""
        self._verdict: bool | None = None

    def feed(self, chunk: bytes) -> None:
        """Inspect the next chunk of the upload."""
        if self._verdict is not None:
            return
        if len(self._head) < 2:
            self._head += chunk[: 2 - len(self._head)]
            if len(self._head) == 2 and self._head != b"\x1f\x8b":
                self._verdict = False
                return
        try:
            self._block += self._inflater.decompress(chunk, _TAR_BLOCK - len(self._block))
        except zlib.error:
            self._verdict = False
            return
        if len(self._block) >= _TAR_BLOCK:
            self._verdict = _is_tar_header(self._block[:_TAR_BLOCK])
        elif self._inflater.eof:
            self._verdict = False

    @property
    def is_tar_gz(self) -> bool:
        """The verdict once the whole upload was fed (too short means no)."""
        return bool(self._verdict)


def _is_tar_header(block: bytes) -> bool:
    """A tar header block: `ustar` magic, or a checksum matching its bytes."""
    if block[257:262] == b"ustar":
        return True
    field = block[148:156].split(b"\0", 1)[0].strip()
    try:
        stored = int(field, 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + sum(block[156:]) + 8 * ord(" ")
    signed = unsigned - 256 * sum(1 for byte in block[:148] + block[156:] if byte > 127)
    return stored in (unsigned, signed)
