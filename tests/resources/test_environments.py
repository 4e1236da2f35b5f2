"""Environments and browser profiles (``resources/environments.py``), end to end: the same
objects on the server, created, listed, uploaded to and deleted through either API.

Archive streaming and checks are in ``tests/core/test_transfers.py``; profile sync, in
``tests/core/test_profile_sync.py``."""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp
import pytest

from tests.archives import fake_tar_gz, tar_gz
from tests.support import MakeClient, MakeEmulator
from webrun_async import (
    AsyncWebRun,
    BadRequestError,
    InvalidParameterError,
    NotFoundError,
)
from webrun_async.emulator import Emulator
from webrun_async.types import Environment, Profile


async def test_profiles_lifecycle(client: AsyncWebRun, tmp_path: Path) -> None:
    created = await client.profiles.create("work", description="my work browser")
    assert isinstance(created, Profile)
    assert created.status == "empty"
    assert created.created_at is not None
    with pytest.raises(BadRequestError, match="Profile has no data to download"):
        await client.profiles.download_url(created.id)
    archive = tmp_path / "profile.tar.gz"
    archive.write_bytes(tar_gz())
    ready = await client.profiles.upload(created.id, archive)
    assert ready.status == "ready"
    assert ready.blob_size == archive.stat().st_size
    download = await client.profiles.download_url(created.id)
    async with aiohttp.ClientSession() as http, http.get(download.download_url) as resp:
        assert resp.status == 200
        assert await resp.read() == archive.read_bytes()
    newer = await client.profiles.create("second")
    listed = await client.profiles.list()
    assert [p.id for p in listed] == [newer.id, created.id]  # newest first
    await client.profiles.delete(created.id)
    with pytest.raises(NotFoundError, match="Profile not found"):
        await client.profiles.delete(created.id)


async def test_profile_archives_are_checked_before_sending(
    client: AsyncWebRun, emulator: Emulator
) -> None:
    profile = await client.profiles.create("p")
    with pytest.raises(InvalidParameterError, match="is not a gzip file"):
        await client.profiles.upload(profile.id, ("profile.tar.gz", b"this is not gzip"))
    with pytest.raises(InvalidParameterError, match="gzip'd but not a tar archive"):
        await client.profiles.upload(profile.id, ("profile.tgz", fake_tar_gz()))
    assert emulator.request_counts.get("POST /profiles/{id}/upload", 0) == 0  # nothing sent
    # A real archive under another name is sent with a .tar.gz name, which the service needs.
    ready = await client.profiles.upload(profile.id, ("profile.zip", tar_gz()))
    assert ready.status == "ready"


async def test_oversize_archive(make_emulator: MakeEmulator, make_client: MakeClient) -> None:
    small = await make_emulator(max_upload_bytes=1024)
    client = await make_client(small)
    env = await client.environments.create("big")
    big = tar_gz({"a": os.urandom(50_000)})  # random bytes: gzip cannot shrink them
    with pytest.raises(BadRequestError) as info:
        await client.environments.upload(env.id, ("big.tar.gz", big))
    assert info.value.code == "FILE_TOO_LARGE"


async def test_environments_lifecycle(client: AsyncWebRun) -> None:
    env = await client.environments.create("shop", description="logged in")
    assert isinstance(env, Environment)
    assert env.description == "logged in"
    ready = await client.environments.upload(env.id, ("p.tar.gz", tar_gz()))
    assert ready.status == "ready"
    assert [e.id for e in await client.environments.list()] == [env.id]
    # The same object is visible through the profiles API.
    assert [p.id for p in await client.profiles.list()] == [env.id]
    await client.environments.delete(env.id)
    assert await client.environments.list() == []
    with pytest.raises(NotFoundError, match="Environment not found"):
        await client.environments.delete(env.id)


async def test_at_most_twenty(client: AsyncWebRun) -> None:
    for i in range(20):
        await client.environments.create(f"env {i}")
    with pytest.raises(BadRequestError, match="Maximum of 20 environments allowed"):
        await client.environments.create("one too many")
    with pytest.raises(BadRequestError, match="Maximum of 20 profiles allowed"):
        await client.profiles.create("one too many")


async def test_sessions_load_an_environment(client: AsyncWebRun, emulator: Emulator) -> None:
    env = await client.environments.create("state")
    await client.run_task("Use my cookies", environment_id=env.id)
    async with client.sessions.create(profile_id=env.id):
        pass
    [listed] = await client.environments.list()
    assert listed.usage_count == 2
    assert listed.last_used_at is not None
