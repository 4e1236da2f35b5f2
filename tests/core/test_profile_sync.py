"""Profile sync (``_core/profile_sync.py``): a Chrome profile, without its caches and locks,
archived on the fly and uploaded into an environment, end to end against the emulator."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import tarfile
from pathlib import Path

import pytest

import webrun_async._core.transfers as transfers
from tests.archives import archive_names, make_profile
from tests.support import MakeClient, MakeEmulator, Progress
from webrun_async import AsyncWebRun, BadRequestError, InvalidParameterError, ProfileInUseWarning
from webrun_async._core.profile_sync import archive_members, profile_archive


async def test_sync_uploads_the_profile_without_caches_or_locks(
    client: AsyncWebRun, tmp_path: Path
) -> None:
    profile = make_profile(tmp_path / "chrome")
    progress = Progress()
    environment = await client.profiles.sync(profile, progress=progress, name="work laptop")
    assert environment.status == "ready"
    assert environment.name == "work laptop"
    assert progress.calls[-1][0] == environment.blob_size
    names = archive_names(await client.profiles.download(environment.id, tmp_path))
    assert names == {
        "Local State",
        "Default/Preferences",
        "Default/Cookies",
        "Default/Local Storage/leveldb/000003.log",
        "Default/IndexedDB/https_example.com_0.indexeddb.leveldb/CURRENT",
        "Default/Extensions/abcdef/1.0/manifest.json",
        "Default/Service Worker/Database/CURRENT",
        "Default/History-journal",
    }


async def test_sync_into_an_existing_environment(client: AsyncWebRun, tmp_path: Path) -> None:
    env = await client.environments.create("existing")
    profile_dir = make_profile(tmp_path / "chrome") / "Default"  # a single profile directory
    synced = await client.profiles.sync(profile_dir, env.id)
    assert synced.id == env.id
    assert [e.id for e in await client.environments.list()] == [env.id]
    names = archive_names(await client.profiles.download(env.id, tmp_path))
    assert "Default/Cookies" in names
    assert "Local State" not in names


async def test_sync_warns_about_a_profile_in_use(client: AsyncWebRun, tmp_path: Path) -> None:
    running = make_profile(tmp_path / "chrome", lock_owner=f"{socket.gethostname()}-{os.getpid()}")
    with pytest.warns(ProfileInUseWarning, match="running browser"):
        await client.profiles.sync(running)
    elsewhere = make_profile(tmp_path / "other", lock_owner="another-host-123")
    with pytest.warns(ProfileInUseWarning, match="another-host-123"):
        await client.profiles.sync(elsewhere)


async def test_a_stale_lock_is_no_reason_to_warn(client: AsyncWebRun, tmp_path: Path) -> None:
    stale = make_profile(tmp_path / "chrome", lock_owner=f"{socket.gethostname()}-999999999")
    environment = await client.profiles.sync(stale)  # warnings are errors in this suite
    assert environment.status == "ready"


async def test_sync_finds_the_usual_location(
    client: AsyncWebRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(InvalidParameterError, match="no Chrome or Chromium profile found"):
        await client.profiles.sync()
    make_profile(tmp_path / "config" / "chromium")
    environment = await client.profiles.sync()
    assert environment.status == "ready"


async def test_sync_refuses_what_is_not_a_profile(client: AsyncWebRun, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidParameterError, match="not a Chrome profile"):
        await client.profiles.sync(tmp_path / "empty")
    with pytest.raises(InvalidParameterError, match="no profile named 'Work'"):
        await client.profiles.sync(make_profile(tmp_path / "chrome"), profile="Work")


async def test_a_failed_sync_removes_the_environment_it_created(
    make_emulator: MakeEmulator, make_client: MakeClient, tmp_path: Path
) -> None:
    small = await make_emulator(max_upload_bytes=1000)
    client = await make_client(small)
    profile = make_profile(tmp_path / "chrome")
    (profile / "Default" / "Web Data").write_bytes(os.urandom(20_000))  # kept, incompressible
    with pytest.raises(BadRequestError, match="exceeds"):
        await client.profiles.sync(profile)
    assert await client.environments.list() == []


def test_the_archive_stream_is_a_valid_tar_gz(tmp_path: Path) -> None:
    members = archive_members(make_profile(tmp_path / "chrome"))

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in profile_archive(members)])

    data = asyncio.run(collect())
    transfers.check_archive_head(data, "archive")
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        assert archive.extractfile("Default/Cookies").read() == b"cookie jar"  # type: ignore[union-attr]
