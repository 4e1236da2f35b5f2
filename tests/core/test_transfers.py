"""Streamed uploads and downloads and the archive checks (``_core/transfers.py``), end to end.

Profile sync, which builds the archives, is in ``test_profile_sync.py``."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import webrun_async.resources.environments as environments_module
from tests.archives import fake_tar_gz, tar_gz
from tests.scripted import ScriptedReply, ScriptedServer, scripted_server
from tests.support import Progress
from webrun_async import (
    APIConnectionError,
    AsyncWebRun,
    InvalidParameterError,
    NoInstancesAvailableError,
    RetryPolicy,
)
from webrun_async.emulator import Emulator


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
        server.script(ScriptedReply(503, {"message": "busy"}))
        server.default = ScriptedReply(200, answer)
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
        server.default = ScriptedReply(200, raw=os.urandom(50_000), cut_after=20_000)
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
        server.script(ScriptedReply(200, raw=data, cut_after=10_000))
        server.default = ScriptedReply(200, raw=data)
        async with AsyncWebRun(
            "k", base_url=server.base_url, rate_limit=None, retry=RetryPolicy(wait=False)
        ) as client:
            path = await client.files.download(server.base_url + "/blob/x.bin", tmp_path)
    assert path.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


async def test_the_key_goes_only_to_the_api_host(client: AsyncWebRun, tmp_path: Path) -> None:
    async with scripted_server() as elsewhere:
        elsewhere.default = ScriptedReply(200, raw=b"signed content")
        url = elsewhere.base_url.replace("127.0.0.1", "localhost") + "/signed?sig=abc"
        await client.files.download(url, tmp_path / "signed.bin")
    assert "Authorization" not in elsewhere.seen[0].headers


async def test_a_destination_ending_in_a_separator_is_a_folder(
    client: AsyncWebRun, tmp_path: Path
) -> None:
    result = await client.run_task("Get a report [[files=1]] [[file_size=1000]]")
    written = await client.files.download(result.files[0], f"{tmp_path}/new/deeper/")
    assert written == tmp_path / "new" / "deeper" / result.files[0].filename
    assert written.stat().st_size == 1000
    # Without the separator the name is the file's own, and its folder must exist.
    with pytest.raises(InvalidParameterError, match="is not a directory"):
        await client.files.download(result.files[0], tmp_path / "missing" / "report.txt")
