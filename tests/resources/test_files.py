"""Task files (``resources/files.py``): uploads, and files in an environment, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from webrun_async import AsyncWebRun, NotFoundError
from webrun_async.emulator import Emulator


async def test_upload_task_files(client: AsyncWebRun, tmp_path: Path, emulator: Emulator) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 fake")
    uploaded = await client.files.upload(report, ("notes.txt", b"hello"), str(report))
    assert [f.original_name for f in uploaded] == ["report.pdf", "notes.txt", "report.pdf"]
    assert [f.size for f in uploaded] == [13, 5, 13]
    assert len({f.file_id for f in uploaded}) == 3
    result = await client.run_task("Use the files", files=uploaded[:2])
    assert emulator.state.tasks[result.task_id].spec.files == tuple(f.file_id for f in uploaded[:2])


async def test_upload_into_an_environment(client: AsyncWebRun) -> None:
    env = await client.environments.create("with-files")
    uploaded = await client.files.upload(("data.csv", b"a,b\n1,2\n"), environment_id=env.id)
    listed = await client.environments.list_files(env.id)
    assert [f.file_id for f in listed] == [uploaded[0].file_id]
    assert listed[0].original_name == "data.csv"
    assert listed[0].size == 8
    assert listed[0].created_at is not None
    await client.environments.delete_file(env.id, uploaded[0].file_id)
    assert await client.environments.list_files(env.id) == []
    with pytest.raises(NotFoundError) as info:
        await client.environments.delete_file(env.id, uploaded[0].file_id)
    assert info.value.message == "File not found"


async def test_upload_into_an_unknown_environment(client: AsyncWebRun) -> None:
    with pytest.raises(NotFoundError, match="Environment not found"):
        await client.files.upload(("x.txt", b"x"), environment_id="0" * 24)
