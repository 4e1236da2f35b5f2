"""Environments and browser profiles: create, list, delete, upload archives, manage files."""

from __future__ import annotations

import builtins
import os
from contextlib import ExitStack
from typing import Any

from webrun_async._exceptions import InvalidParameterError
from webrun_async._params import check_id
from webrun_async._ratelimit import ACCOUNT_BUCKET
from webrun_async.resources._base import Resource, decoder, encode
from webrun_async.resources.files import _checked, form_for
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

__all__ = ["ArchiveInput", "Environments", "Profiles"]

ArchiveInput = str | os.PathLike[str] | tuple[str, bytes]
"""A ``.tar.gz`` profile archive: a path, or a ``(filename, content)`` pair."""

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

    async def _upload(self, object_id: str, archive: ArchiveInput, parse: Any) -> Any:
        oid = check_id("id", object_id)
        item = _checked(archive, "archive")
        with ExitStack() as opened:
            return await self._transport.request(
                "POST",
                f"{self._root}/{oid}/upload",
                parse,
                body=form_for("file", [item], {}, opened),
                bucket=ACCOUNT_BUCKET,
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

    async def upload(self, environment_id: str, archive: ArchiveInput) -> Environment:
        """Upload a ``.tar.gz`` browser profile archive (at most 500 MB) into an environment."""
        answer: _EnvironmentAnswer = await self._upload(environment_id, archive, _decode_env)
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

    async def upload(self, profile_id: str, archive: ArchiveInput) -> Profile:
        """Upload a ``.tar.gz`` browser profile archive (at most 500 MB), replacing its data."""
        answer: _ProfileAnswer = await self._upload(profile_id, archive, _decode_profile)
        return answer.profile
