"""Profile archives and profiles for tests: real .tar.gz bytes, gzip'd bytes that are not a
tar, and fake Chrome profile directories."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Mapping
from pathlib import Path


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
    return gzip.compress(b"this is not a tar archive " * 40, mtime=0)  # the same bytes every time


def make_profile(root: Path, *, lock_owner: str | None = None) -> Path:
    """A fake Chrome user data directory with state, caches and locks."""
    files = {
        "Local State": b"{}",
        "Default/Preferences": b'{"profile": {}}',
        "Default/Cookies": b"cookie jar",
        "Default/Local Storage/leveldb/000003.log": b"local storage",
        "Default/Local Storage/leveldb/LOCK": b"",
        "Default/IndexedDB/https_example.com_0.indexeddb.leveldb/CURRENT": b"MANIFEST-1",
        "Default/Extensions/abcdef/1.0/manifest.json": b"{}",
        "Default/Cache/Cache_Data/data_0": os.urandom(10_000),
        "Default/Code Cache/js/index": b"cache",
        "Default/GPUCache/data_1": b"cache",
        "Default/Service Worker/CacheStorage/x/1": b"cache",
        "Default/Service Worker/Database/CURRENT": b"db",
        "Default/History-journal": b"journal",
        "Crashpad/reports/1.dmp": b"crash",
        "Profile 1/Preferences": b"{}",
        "Default/scratch.tmp": b"tmp",
    }
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    if lock_owner is not None:
        (root / "SingletonLock").symlink_to(lock_owner)
    return root


def archive_names(path: Path) -> set[str]:
    with tarfile.open(path) as archive:
        return {member.name for member in archive.getmembers() if member.isfile()}
