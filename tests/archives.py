"""Profile archives for tests: real .tar.gz bytes, and gzip'd bytes that are not a tar."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Mapping


def tar_gz(files: Mapping[str, bytes] | None = None) -> bytes:
    """A real gzip'd tar archive in memory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in (files or {"Default/Cookies": b"cookie-data"}).items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def fake_tar_gz() -> bytes:
    """Gzip'd bytes that are not a tar archive."""
    return gzip.compress(b"this is not a tar archive " * 40)
