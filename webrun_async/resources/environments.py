"""Environments and browser profiles: create, list, delete, upload archives, manage files."""

from __future__ import annotations

import builtins
import os
import socket
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import anyio

from webrun_async._core.codec import decoder, encode
from webrun_async._core.exceptions import InvalidParameterError
from webrun_async._core.params import check_id
from webrun_async._core.profile_sync import (
    archive_members,
    find_chrome_profile,
    profile_archive,
    warn_if_in_use,
)
from webrun_async._core.ratelimit import ACCOUNT_BUCKET
from webrun_async._core.transfers import (
    MAX_ARCHIVE_BYTES,
    Progress,
    Source,
    UploadSource,
    archive_source,
    form,
)
from webrun_async.resources._base import Resource
from webrun_async.resources.files import download, stream_url
from webrun_async.types.common import Ack
from webrun_async.types.environments import (
    CreateEnvironmentRequest,
    Environment,
    Profile,
    ProfileDownload,
    _EnvironmentAnswer,
    _EnvironmentList,
    _ProfileAnswer,
    _ProfileList,
)
from webrun_async.types.files import EnvironmentFile, _EnvironmentFilesAnswer

__all__ = ["Environments", "Profiles"]


MAX_NAME = 100
MAX_DESCRIPTION = 500

_decode_ack = decoder(Ack)
_decode_env = decoder(_EnvironmentAnswer)
_decode_envs = decoder(_EnvironmentList)
_decode_profile = decoder(_ProfileAnswer)
_decode_profiles = decoder(_ProfileList)
_decode_download = decoder(ProfileDownload)
_decode_env_files = decoder(_EnvironmentFilesAnswer)


def _create_body(name: object, description: object) -> bytes:
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterError("name", "must be a non-empty string")
    if len(name) > MAX_NAME:
        raise InvalidParameterError("name", f"must be at most {MAX_NAME} characters")
    if description is not None:
        if not isinstance(description, str):
            raise InvalidParameterError("description", "must be a string")
        if len(description) > MAX_DESCRIPTION:
            raise InvalidParameterError(
                "description", f"must be at most {MAX_DESCRIPTION} characters"
            )
    return encode(CreateEnvironmentRequest(name=name, description=description))


class _Archives(Resource):
    """What profiles and environments share: both are the same objects on the server."""

    __slots__ = ()
    _root = ""

    async def _upload(
        self, object_id: str, archive: UploadSource, parse: Any, progress: Progress | None
    ) -> Any:
        oid = check_id("id", object_id)
        source = await archive_source(archive)
        return await self._upload_source(self._root, oid, source, parse, progress)

    async def _upload_source(
        self, root: str, object_id: str, source: Source, parse: Any, progress: Progress | None
    ) -> Any:
        body = form(
            "file", [source], {}, progress=progress, limit=MAX_ARCHIVE_BYTES, name="archive"
        )
        return await self._transport.request(
            "POST",
            f"{root}/{check_id('id', object_id)}/upload",
            parse,
            body=body,
            bucket=ACCOUNT_BUCKET,
            retryable=source.reopenable,
        )

    async def _delete(self, object_id: str) -> None:
        oid = check_id("id", object_id)
        await self._transport.request(
            "DELETE", f"{self._root}/{oid}", _decode_ack, bucket=ACCOUNT_BUCKET
        )


class Environments(_Archives):
    """Environments. Reach it as ``client.environments``."""

    __slots__ = ()
    _root = "/environments"

    async def create(self, name: str, *, description: str | None = None) -> Environment:
        """Create an empty environment (at most 20 per account).

        Raises:
            InvalidParameterError: The name is empty or longer than 100 characters, or the
                description is longer than 500; nothing was sent.
            BadRequestError: The account already has 20.
        """
        answer = await self._transport.request(
            "POST",
            "/environments",
            _decode_env,
            body=_create_body(name, description),
            bucket=ACCOUNT_BUCKET,
        )
        return answer.environment

    async def list(self) -> list[Environment]:
        """Every environment of the account."""
        answer = await self._transport.request(
            "GET", "/environments", _decode_envs, bucket=ACCOUNT_BUCKET
        )
        return answer.environments

    async def delete(self, environment_id: str) -> None:
        """Delete an environment with its profile data and files."""
        await self._delete(environment_id)

    async def upload(
        self, environment_id: str, archive: UploadSource, *, progress: Progress | None = None
    ) -> Environment:
        """Upload a ``.tar.gz`` browser profile archive (at most 500 MB) into an environment.

        The archive streams from a path, bytes, a file object or an async iterable of bytes;
        it is checked before any byte goes out (a real gzip'd tar, at most 500 MB).

        Raises:
            InvalidParameterError: Not a gzip'd tar, or larger than 500 MB; nothing was sent.
        """
        answer: _EnvironmentAnswer = await self._upload(
            environment_id, archive, _decode_env, progress
        )
        return answer.environment

    async def list_files(self, environment_id: str) -> builtins.list[EnvironmentFile]:
        """The files attached to an environment."""
        eid = check_id("environment_id", environment_id)
        answer = await self._transport.request(
            "GET", f"/environments/{eid}/files", _decode_env_files, bucket=ACCOUNT_BUCKET
        )
        return answer.files

    async def delete_file(self, environment_id: str, file_id: str) -> None:
        """Remove one file from an environment."""
        eid = check_id("environment_id", environment_id)
        fid = check_id("file_id", file_id)
        await self._transport.request(
            "DELETE", f"/environments/{eid}/files/{fid}", _decode_ack, bucket=ACCOUNT_BUCKET
        )


class Profiles(_Archives):
    """Browser profiles. Reach it as ``client.profiles``."""

    __slots__ = ()
    _root = "/profiles"

    async def list(self) -> list[Profile]:
        """Every profile of the account, newest first."""
        answer = await self._transport.request(
            "GET", "/profiles", _decode_profiles, bucket=ACCOUNT_BUCKET
        )
        return answer.profiles

    async def create(self, name: str, *, description: str | None = None) -> Profile:
        """Create an empty profile (at most 20 per account; see :meth:`Environments.create`)."""
        answer = await self._transport.request(
            "POST",
            "/profiles",
            _decode_profile,
            body=_create_body(name, description),
            bucket=ACCOUNT_BUCKET,
        )
        return answer.profile

    async def delete(self, profile_id: str) -> None:
        """Delete a profile and its stored browser data."""
        await self._delete(profile_id)

    async def download_url(self, profile_id: str) -> ProfileDownload:
        """A signed URL to the profile's archive, valid for about an hour.

        Raises:
            BadRequestError: The profile has no data yet.
        """
        pid = check_id("profile_id", profile_id)
        return await self._transport.request(
            "GET", f"/profiles/{pid}/download", _decode_download, bucket=ACCOUNT_BUCKET
        )

    async def upload(
        self, profile_id: str, archive: UploadSource, *, progress: Progress | None = None
    ) -> Profile:
        """Upload a ``.tar.gz`` browser profile archive (at most 500 MB), replacing its data.

        See :meth:`Environments.upload` for the sources accepted and the checks made.
        """
        answer: _ProfileAnswer = await self._upload(profile_id, archive, _decode_profile, progress)
        return answer.profile

    async def sync(
        self,
        chrome_profile_dir: str | os.PathLike[str] | None = None,
        environment_id: str | None = None,
        *,
        profile: str = "Default",
        name: str | None = None,
        progress: Progress | None = None,
    ) -> Environment:
        """Package a local Chrome or Chromium profile and upload it (the profile sync tool).

        The profile is streamed as a ``.tar.gz`` built on the fly, without its caches, lock
        files and other data the browser rebuilds, and without ever being written to disk or
        held in memory. A profile open in a running browser gets a
        :class:`~webrun_async.ProfileInUseWarning` (the archive may catch half-written files).

        Args:
            chrome_profile_dir: A user data directory (with ``Local State``) or a single
                profile directory (with ``Preferences``); the usual Chrome and Chromium
                locations of this platform are searched when not given.
            environment_id: The environment to replace the profile of; a new environment is
                created when not given (and deleted again if the upload fails).
            profile: The profile to take from a user data directory.
            name: The new environment's name (by default it names this machine).
            progress: ``progress(bytes_sent, None)`` as the archive uploads.

        Returns:
            The environment, with its new archive.

        Raises:
            InvalidParameterError: No profile found, or the directory is not a Chrome profile.
        """
        if chrome_profile_dir is None:
            directory = await anyio.to_thread.run_sync(find_chrome_profile)
        else:
            directory = await anyio.to_thread.run_sync(Path(chrome_profile_dir).expanduser)
        members = await anyio.to_thread.run_sync(archive_members, directory, profile)
        warn_if_in_use(directory)
        environments = Environments(self._ctx)
        created = None
        if environment_id is None:
            label = name or f"Chrome profile from {socket.gethostname()}"[:MAX_NAME]
            created = await environments.create(label)
            environment_id = created.id
        source = Source("profile.tar.gz", None, True, lambda: profile_archive(members))
        try:
            answer: _EnvironmentAnswer = await self._upload_source(
                "/environments", environment_id, source, _decode_env, progress
            )
        except BaseException:
            if created is not None:
                await self._runtime.cleanup(
                    environments.delete(created.id), f"deleting environment {created.id}"
                )
            raise
        return answer.environment

    async def stream(
        self, profile_id: str, *, progress: Progress | None = None
    ) -> AsyncGenerator[bytes, None]:
        """The profile's archive as it arrives, through its signed URL (``async for chunk``)."""
        signed = await self.download_url(profile_id)
        async for chunk in stream_url(self._transport, signed.download_url, progress=progress):
            yield chunk

    async def download(
        self,
        profile_id: str,
        destination: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Download the profile's archive through its signed URL.

        Args:
            profile_id: The profile.
            destination: A file path, or a directory (an existing one, or a path ending in
                ``/``, created when missing; the file is then named
                ``profile-<id>.tar.gz``).
            progress: ``progress(bytes_received, total_or_None)``.
            overwrite: Replace an existing file.

        Returns:
            The path written; it appears only once the download is complete.

        Raises:
            BadRequestError: The profile has no data yet.
        """
        signed = await self.download_url(profile_id)
        return await download(
            self._transport,
            signed.download_url,
            destination,
            filename=f"profile-{profile_id}.tar.gz",
            progress=progress,
            overwrite=overwrite,
        )
