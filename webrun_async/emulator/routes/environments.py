"""Handlers of `/profiles` and `/environments`: two views of the same objects.

The docs call the same stored browser state a profile on one page and an environment on
another; both routes read and write one collection."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import BodyPartReader, web

from webrun_async.emulator.errors import ApiError, missing_field
from webrun_async.emulator.http.request import engine_of, json_response, read_json_object
from webrun_async.emulator.http.uploads import (
    FILE_FIELDS,
    Parts,
    TarGzSniffer,
    open_multipart,
    spool_part,
)
from webrun_async.emulator.sim.engine import Engine
from webrun_async.emulator.sim.ids import iso, new_hex_id, remove_files
from webrun_async.emulator.sim.store import EmulatedEnvironment

from .files import tmp_path

__all__ = [
    "ENVIRONMENT",
    "PROFILE",
    "Kind",
    "delete_environment_file",
    "download_blob",
    "environment_files",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_OBJECTS = 20
MAX_NAME = 100
MAX_DESCRIPTION = 500
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


@dataclass(frozen=True, slots=True)
class Kind:
    """Which API view a request uses: the wording and JSON keys differ, the objects do not."""

    label: str
    key: str
    plural: str

    def not_found(self) -> ApiError:
        """404 for an unknown id, worded for this view."""
        return ApiError(404, f"{self.label} not found", "NOT_FOUND")

    def lookup(self, engine: Engine, request: web.Request) -> EmulatedEnvironment:
        """The object named by the `{id}` path segment, or 404."""
        env = engine.store.environments.get(request.match_info["id"])
        if env is None:
            raise self.not_found()
        return env

    def handle_list(self) -> Handler:
        """GET /{plural}: newest first."""

        async def handler(request: web.Request) -> web.StreamResponse:
            store = engine_of(request).store
            items = [env.to_json() for env in store.environments_newest_first()]
            return json_response({"success": True, self.plural: items})

        return handler

    def handle_create(self) -> Handler:
        """POST /{plural} `{name, description?}`."""

        async def handler(request: web.Request) -> web.StreamResponse:
            engine = engine_of(request)
            body = await read_json_object(request)
            name, description = body.get("name"), body.get("description")
            if not isinstance(name, str) or not name.strip():
                raise missing_field(f"{self.label} name is required")
            name = name.strip()
            if len(name) > MAX_NAME:
                raise _invalid(f"{self.label} name must be at most {MAX_NAME} characters")
            if description is not None and not isinstance(description, str):
                raise _invalid(f"{self.label} description must be a string")
            if description is not None and len(description) > MAX_DESCRIPTION:
                raise _invalid(
                    f"{self.label} description must be at most {MAX_DESCRIPTION} characters"
                )
            store = engine.store
            if len(store.environments) >= MAX_OBJECTS:
                raise ApiError(
                    400, f"Maximum of {MAX_OBJECTS} {self.plural} allowed", "LIMIT_REACHED"
                )
            now = time.time()
            env = EmulatedEnvironment(
                env_id=new_hex_id(),
                user_id=store.account.user_id,
                name=name,
                description=description or "",
                created_at=now,
                updated_at=now,
            )
            store.environments[env.env_id] = env
            return json_response(
                {"success": True, "message": f"{self.label} created", self.key: env.to_json()}
            )

        return handler

    def handle_delete(self) -> Handler:
        """DELETE /{plural}/{id}: the object, its archive and its files."""

        async def handler(request: web.Request) -> web.StreamResponse:
            engine = engine_of(request)
            env = self.lookup(engine, request)
            store = engine.store
            del store.environments[env.env_id]
            attached = store.environment_files(env.env_id)
            for record in attached:
                del store.files[record.file_id]
            paths = [record.path for record in attached]
            if env.blob_path is not None:
                paths.append(env.blob_path)
            await asyncio.to_thread(remove_files, paths)
            return json_response({"success": True, "message": f"{self.label} deleted"})

        return handler

    def handle_upload(self) -> Handler:
        """POST /{plural}/{id}/upload: a `.tar.gz` browser profile archive."""

        async def handler(request: web.Request) -> web.StreamResponse:
            engine = engine_of(request)
            env = self.lookup(engine, request)
            parts = await open_multipart(request)
            async for part in parts:
                if part.name in FILE_FIELDS and part.filename:
                    await _receive_archive(engine, self, env, parts, part)
                    return json_response(
                        {
                            "success": True,
                            "message": "Profile uploaded successfully",
                            self.key: env.to_json(),
                        }
                    )
            raise missing_field("No file provided")

        return handler

    def handle_download(self) -> Handler:
        """GET /{plural}/{id}/download: a signed, expiring URL to the archive."""

        async def handler(request: web.Request) -> web.StreamResponse:
            engine = engine_of(request)
            env = self.lookup(engine, request)
            if env.status != "ready" or env.blob_path is None:
                raise ApiError(400, f"{self.label} has no data to download", "NO_DATA")
            expires = math.floor(time.time() + engine.config.signed_url_ttl)
            signature = _sign(engine, env.env_id, expires)
            url = (
                f"{engine.base_url}/_emulator/blobs/{env.env_id}.tar.gz"
                f"?expires={expires}&signature={signature}"
            )
            return json_response({"success": True, "downloadUrl": url, "expiresAt": iso(expires)})

        return handler


PROFILE = Kind("Profile", "profile", "profiles")
ENVIRONMENT = Kind("Environment", "environment", "environments")


async def _receive_archive(
    engine: Engine, kind: Kind, env: EmulatedEnvironment, parts: Parts, part: BodyPartReader
) -> None:
    """Store the archive of `part` as the profile's data, once the whole body is read."""
    filename = (part.filename or "").lower()
    if not filename.endswith(_ARCHIVE_SUFFIXES):
        raise _bad_archive()
    path = tmp_path(engine, f"blob-{env.env_id}-{new_hex_id()}.tar.gz")
    sniffer = TarGzSniffer()
    env.status = "uploading"
    try:
        size = await spool_part(parts, part, path, engine.config.max_upload_bytes, sniffer.feed)
        if not sniffer.is_tar_gz:
            raise _bad_archive()
        await parts.finish()
        if env.env_id not in engine.store.environments:
            raise kind.not_found()  # deleted while the upload streamed
    except BaseException:
        env.status = "ready" if env.blob_path is not None else "empty"
        remove_files([path])
        raise
    old = env.blob_path
    now = time.time()
    env.blob_path, env.blob_size, env.blob_uploaded_at = path, size, now
    env.status, env.updated_at = "ready", now
    if old is not None:
        remove_files([old])


async def environment_files(request: web.Request) -> web.StreamResponse:
    """GET /environments/{id}/files."""
    engine = engine_of(request)
    env = ENVIRONMENT.lookup(engine, request)
    files = [
        record.to_json(with_created=True) for record in engine.store.environment_files(env.env_id)
    ]
    return json_response({"success": True, "files": files})


async def delete_environment_file(request: web.Request) -> web.StreamResponse:
    """DELETE /environments/{id}/files/{file_id}."""
    engine = engine_of(request)
    env = ENVIRONMENT.lookup(engine, request)
    record = engine.store.files.get(request.match_info["fileId"])
    if record is None or record.environment_id != env.env_id:
        raise ApiError(404, "File not found", "FILE_NOT_FOUND")
    del engine.store.files[record.file_id]
    remove_files([record.path])
    return json_response({"success": True, "message": "File deleted"})


async def download_blob(request: web.Request) -> web.StreamResponse:
    """GET /_emulator/blobs/{id}.tar.gz: the archive, when the signed URL is valid."""
    engine = engine_of(request)
    env_id = request.match_info["id"]
    try:
        expires = int(request.query.get("expires", ""))
    except ValueError:
        expires = 0
    signature = request.query.get("signature", "")
    valid = hmac.compare_digest(signature, _sign(engine, env_id, expires))
    if not valid or time.time() >= expires:
        raise ApiError(403, "Invalid or expired signature", "INVALID_SIGNATURE")
    env = engine.store.environments.get(env_id)
    if env is None or env.blob_path is None:
        raise PROFILE.not_found()
    return web.FileResponse(
        env.blob_path,
        headers={
            "Content-Type": "application/gzip",
            "Content-Disposition": f'attachment; filename="{env_id}.tar.gz"',
        },
    )


def _sign(engine: Engine, env_id: str, expires: int) -> str:
    message = f"{env_id}:{expires}".encode()
    return hmac.new(engine.url_secret, message, hashlib.sha256).hexdigest()


def _invalid(message: str) -> ApiError:
    return ApiError(400, message, "INVALID_PARAMETER")


def _bad_archive() -> ApiError:
    return ApiError(400, "Only .tar.gz files are allowed", "INVALID_FILE_TYPE")
