"""Handlers of task file uploads and of the generated task-result files."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from aiohttp import BodyPartReader, web

from webrun_async.emulator.errors import ApiError, missing_field
from webrun_async.emulator.http.request import engine_of, json_response
from webrun_async.emulator.http.uploads import FILE_FIELDS, Parts, open_multipart, spool_part
from webrun_async.emulator.sim.engine import Engine
from webrun_async.emulator.sim.ids import new_hex_id, remove_files
from webrun_async.emulator.sim.store import FileRecord

__all__ = ["download_task_file", "upload_files"]

_MAX_FIELD_BYTES = 1024
_CONTENT_BLOCK = 64 * 1024


def tmp_path(engine: Engine, name: str) -> Path:
    """A path in the emulator's own temporary directory."""
    if engine.tmp_dir is None:
        raise ApiError(503, "Emulator is not running", "SERVICE_UNAVAILABLE")
    return engine.tmp_dir / name


async def upload_files(request: web.Request) -> web.Response:
    """POST /files/upload: multipart `files` (or `file`) parts, optional `environmentId`."""
    engine = engine_of(request)
    parts = await open_multipart(request)
    records: list[FileRecord] = []
    env_id: str | None = None
    try:
        async for part in parts:
            if part.name in FILE_FIELDS and part.filename:
                records.append(await _spool_file(engine, parts, part))
            elif part.name == "environmentId":
                raw = await parts.read_chunk(part, _MAX_FIELD_BYTES)
                env_id = raw.decode("utf-8", "replace").strip() or None
        if not records:
            raise missing_field("No file provided")
        if env_id is not None and env_id not in engine.store.environments:
            raise ApiError(404, "Environment not found", "ENVIRONMENT_NOT_FOUND")
    except BaseException:
        # Deleting a few temp files is quick; doing it inline also works while cancelled.
        remove_files([record.path for record in records])
        raise
    for record in records:
        record.environment_id = env_id
        engine.store.files[record.file_id] = record
    return json_response({"success": True, "files": [record.to_json() for record in records]})


async def _spool_file(engine: Engine, parts: Parts, part: BodyPartReader) -> FileRecord:
    file_id = new_hex_id()
    path = tmp_path(engine, f"file-{file_id}")
    try:
        size = await spool_part(parts, part, path, engine.config.max_upload_bytes)
    except BaseException:
        remove_files([path])
        raise
    return FileRecord(
        file_id=file_id,
        original_name=part.filename or "file",
        size=size,
        path=path,
        created_at=time.time(),
        created_mono=engine.now(),
    )


async def download_task_file(request: web.Request) -> web.StreamResponse:
    """GET /_emulator/files/{fileId}/{filename}: deterministic bytes, generated in chunks."""
    engine = engine_of(request)
    record = engine.store.task_files.get(request.match_info["fileId"])
    if record is None or record.filename != request.match_info["filename"]:
        raise ApiError(404, "File not found", "FILE_NOT_FOUND")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{record.filename}"',
        }
    )
    response.content_length = record.size
    await response.prepare(request)
    block = content_block(record.file_id)
    remaining = record.size
    while remaining > 0:
        piece = block[: min(remaining, len(block))]
        await response.write(piece)
        remaining -= len(piece)
    await response.write_eof()
    return response


def content_block(file_id: str) -> bytes:
    """The 64 KiB pattern a generated file repeats: its bytes depend only on its id."""
    seed = hashlib.sha256(file_id.encode()).hexdigest()
    line = f"webrun emulator file {file_id} {seed}\n".encode()
    return (line * (_CONTENT_BLOCK // len(line) + 1))[:_CONTENT_BLOCK]
