"""Streamed uploads and downloads, archive checks, and profile sync, end to end."""

from __future__ import annotations

import io
import os
import socket
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import webrun_async._core.transfers as transfers
import webrun_async.resources.environments as environments_module
from tests.archives import archive_names, fake_tar_gz, make_profile, tar_gz
from tests.conftest import MakeClient, MakeEmulator
from tests.scripted import Reply, ScriptedServer, scripted_server
from webrun_async import (
    APIConnectionError,
    AsyncWebRun,
    BadRequestError,
    InvalidParameterError,
    NoInstancesAvailableError,
    ProfileInUseWarning,
    RetryPolicy,
)
from webrun_async.emulator import Emulator


class Progress:
    """Records progress callbacks."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int | None]] = []

    def __call__(self, done: int, total: int | None) -> None:
        self.calls.append((done, total))

    def check(self, total: int | None) -> None:
        done = [d for d, _ in self.calls]
        assert done == sorted(done), "progress only moves forward"
        assert self.calls[-1] == (done[-1], total)


async def chunks_of(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


# -- uploads ------------------------------------------------------------------------------------


async def test_every_kind_of_upload_source(
    client: AsyncWebRun, emulator: Emulator, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    path = tmp_path / "report.bin"
    path.write_bytes(data)

    class Pipe(io.RawIOBase):  # a file object that cannot seek
        def __init__(self) -> None:
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            return self._inner.read(size)

    progress = Progress()
    uploaded = await client.files.upload(
        path,
        str(path),
        ("bytes.bin", data),
        io.BytesIO(data),
        ("pipe.bin", Pipe()),
        ("stream.bin", chunks_of(data)),
        ("factory.bin", lambda: chunks_of(data)),
        progress=progress,
    )
    assert [f.size for f in uploaded] == [len(data)] * 7
    assert [f.original_name for f in uploaded][:3] == ["report.bin", "report.bin", "bytes.bin"]
    stored = [emulator.state.files[f.file_id].path.read_bytes() for f in uploaded]
    assert all(content == data for content in stored)
    progress.check(None)  # two sources of unknown size: no total
    assert progress.calls[-1][0] == 7 * len(data)


async def test_known_sizes_give_a_total(client: AsyncWebRun, tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"x" * 5000)
    progress = Progress()
    await client.files.upload(path, ("b.txt", b"y" * 3000), progress=progress)
    progress.check(8000)


@pytest.fixture
async def flaky() -> AsyncIterator[ScriptedServer]:
    answer = {"success": True, "files": [{"fileId": "f1", "originalName": "x", "size": 1}]}
    async with scripted_server() as server:
        server.script(Reply(503, {"message": "busy"}))
        server.default = Reply(200, answer)
        yield server


@pytest.mark.parametrize("kind", ["path", "bytes", "file", "factory"])
async def test_a_retried_upload_reopens_its_source(
    flaky: ScriptedServer, tmp_path: Path, kind: str
) -> None:
    data = os.urandom(100_000)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    with path.open("rb") as handle:
        source = {
            "path": path,
            "bytes": ("f.bin", data),
            "file": handle,
            "factory": ("f.bin", lambda: chunks_of(data)),
        }[kind]
        async with AsyncWebRun(
            "k", base_url=flaky.base_url, rate_limit=None, retry=RetryPolicy(wait=False)
        ) as client:
            await client.files.upload(source)  # type: ignore[arg-type]
    assert len(flaky.seen) == 2
    assert data in flaky.seen[0].body  # the first attempt sent it all...
    assert data in flaky.seen[1].body  # ...and the retry sent it all again


async def test_a_single_use_stream_is_not_retried(flaky: ScriptedServer) -> None:
    async with AsyncWebRun(
        "k", base_url=flaky.base_url, rate_limit=None, retry=RetryPolicy(wait=False)
    ) as client:
        with pytest.raises(NoInstancesAvailableError):
            await client.files.upload(("s.bin", chunks_of(b"data")))
    assert len(flaky.seen) == 1


# -- archives -------------------------------------------------------------------------------------


async def test_archives_are_checked_before_any_byte_goes_out(
    client: AsyncWebRun, emulator: Emulator, tmp_path: Path
) -> None:
    env = await client.environments.create("checked")
    cases = [
        (("profile.tar.gz", b"plain text"), "is not a gzip file"),
        (("profile.tar.gz", fake_tar_gz()), "gzip'd but not a tar archive"),
        (("profile.tar.gz", b"\x1f\x8b\x08\x00" + bytes(6) + b"\xff" * 64), "not a valid gzip"),
        (("profile.tar.gz", b"\x1f\x8b\x08\x00" + bytes(6)), "too short to hold a tar"),
        (("profile.tar.gz", chunks_of(fake_tar_gz(), 7)), "gzip'd but not a tar archive"),
    ]
    for archive, problem in cases:
        with pytest.raises(InvalidParameterError, match=problem) as info:
            await client.environments.upload(env.id, archive)  # type: ignore[arg-type]
        assert info.value.parameter == "archive"
    big = tmp_path / "big.tar.gz"
    with big.open("wb") as handle:  # a real archive head, then a sparse 600 MB hole
        handle.write(tar_gz())
        handle.truncate(600 * 1024 * 1024)
    with pytest.raises(InvalidParameterError, match="at most 500 MB"):
        await client.environments.upload(env.id, big)
    with pytest.raises(InvalidParameterError, match="directory"):
        await client.environments.upload(env.id, tmp_path)
    assert emulator.request_counts.get("POST /environments/{id}/upload", 0) == 0


async def test_a_streamed_archive_over_the_limit_is_stopped(
    client: AsyncWebRun, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(environments_module, "MAX_ARCHIVE_BYTES", 100_000)
    env = await client.environments.create("limited")

    async def endless() -> AsyncIterator[bytes]:
        yield tar_gz()
        while True:
            yield bytes(10_000)

    with pytest.raises(InvalidParameterError, match="exceeds the 0 MB limit"):
        await client.environments.upload(env.id, ("p.tar.gz", endless()))
    [listed] = await client.environments.list()
    assert listed.status != "ready"


async def test_archive_upload_from_every_source(client: AsyncWebRun, tmp_path: Path) -> None:
    archive = tar_gz({"Default/Cookies": os.urandom(50_000)})
    path = tmp_path / "p.tar.gz"
    path.write_bytes(archive)
    profile = await client.profiles.create("sources")
    for source in (path, archive, io.BytesIO(archive), ("p.tgz", chunks_of(archive, 999))):
        progress = Progress()
        ready = await client.profiles.upload(profile.id, source, progress=progress)  # type: ignore[arg-type]
        assert ready.status == "ready"
        assert ready.blob_size == len(archive)
        assert progress.calls[-1][0] == len(archive)


# -- downloads ------------------------------------------------------------------------------------


async def test_download_task_files(client: AsyncWebRun, tmp_path: Path) -> None:
    result = await client.run_task("Get reports [[files=2]] [[file_size=200000]]")
    progress = Progress()
    first = await client.files.download(result.files[0], tmp_path, progress=progress)
    assert first == tmp_path / result.files[0].filename
    assert first.stat().st_size == 200_000
    progress.check(200_000)
    second = await client.files.download(result.files[1].download_url, tmp_path / "second.bin")
    assert second.stat().st_size == 200_000
    streamed = b"".join([chunk async for chunk in client.files.stream(result.files[0])])
    assert streamed == first.read_bytes()
    with pytest.raises(InvalidParameterError, match="exists"):
        await client.files.download(result.files[0], first)
    assert await client.files.download(result.files[0], first, overwrite=True) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [result.files[0].filename, "second.bin"]
    )


async def test_download_a_profile_archive(client: AsyncWebRun, tmp_path: Path) -> None:
    archive = tar_gz({"Default/Preferences": b"{}" * 10_000})
    profile = await client.profiles.create("downloadable")
    await client.profiles.upload(profile.id, archive)
    path = await client.profiles.download(profile.id, tmp_path)
    assert path.name == f"profile-{profile.id}.tar.gz"
    assert path.read_bytes() == archive
    progress = Progress()
    streamed = [chunk async for chunk in client.profiles.stream(profile.id, progress=progress)]
    assert b"".join(streamed) == archive
    progress.check(len(archive))


async def test_a_truncated_download_leaves_no_file(tmp_path: Path) -> None:
    async with scripted_server() as server:
        server.default = Reply(200, raw=os.urandom(50_000), cut_after=20_000)
        policy = RetryPolicy(max_retries=1, wait=False)
        async with AsyncWebRun(
            "k", base_url=server.base_url, rate_limit=None, retry=policy
        ) as client:
            with pytest.raises(APIConnectionError):
                await client.files.download(server.base_url + "/blob/x.bin", tmp_path / "x.bin")
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one
    assert len(server.seen) == 2  # cut, retried, cut again


async def test_a_cut_download_is_started_again(tmp_path: Path) -> None:
    data = os.urandom(50_000)
    async with scripted_server() as server:
        server.script(Reply(200, raw=data, cut_after=10_000))
        server.default = Reply(200, raw=data)
        async with AsyncWebRun(
            "k", base_url=server.base_url, rate_limit=None, retry=RetryPolicy(wait=False)
        ) as client:
            path = await client.files.download(server.base_url + "/blob/x.bin", tmp_path)
    assert path.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


async def test_the_key_goes_only_to_the_api_host(client: AsyncWebRun, tmp_path: Path) -> None:
    async with scripted_server() as elsewhere:
        elsewhere.default = Reply(200, raw=b"signed content")
        url = elsewhere.base_url.replace("127.0.0.1", "localhost") + "/signed?sig=abc"
        await client.files.download(url, tmp_path / "signed.bin")
    assert "Authorization" not in elsewhere.seen[0].headers


# -- profile sync -------------------------------------------------------------------------------


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
    import asyncio

    from webrun_async._core.profile_sync import archive_members, profile_archive

    members = archive_members(make_profile(tmp_path / "chrome"))

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in profile_archive(members)])

    data = asyncio.run(collect())
    transfers.check_archive_head(data, "archive")
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        assert archive.extractfile("Default/Cookies").read() == b"cookie jar"  # type: ignore[union-attr]
