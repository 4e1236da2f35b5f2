"""The account's things: profiles, environments, task files, models and the service's health.

Listings print one line per item (a header too when stdout is a terminal), or JSON with
``--json``. Commands that create something print its id alone, so that a script can keep it:
``ID=$(webrun profiles create work)``.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec

from webrun_async import AsyncWebRun, InvalidParameterError
from webrun_async.types import Environment, EnvironmentFile, UploadedFile

from ._console import CommandError, Console, TransferProgress, format_date, format_size, is_terminal

__all__ = [
    "environment_files",
    "environments_create",
    "environments_delete",
    "environments_delete_file",
    "environments_list",
    "environments_upload",
    "files_download",
    "files_upload",
    "health",
    "models",
    "profiles_create",
    "profiles_delete",
    "profiles_download",
    "profiles_list",
    "profiles_sync",
    "profiles_upload",
]


@contextlib.contextmanager
def _about_files(name: str) -> Iterator[None]:
    """Word the SDK's complaints about local files for the command line.

    ``archive: is not a gzip file`` becomes ``p.tar.gz is not a gzip file``, and the advice to
    pass ``overwrite=True`` names the ``--overwrite`` flag instead.
    """
    try:
        yield
    except InvalidParameterError as exc:
        if exc.parameter not in _FILE_PARAMETERS and not exc.parameter.startswith("files["):
            raise
        problem = exc.problem.replace("overwrite=True", "--overwrite")
        if problem.startswith(("is ", "exceeds ")):
            problem = f"{name} {problem}"
        raise CommandError(problem) from exc


_FILE_PARAMETERS = frozenset({"archive", "destination", "chrome_profile_dir"})


def _json(console: Console, value: Any) -> None:
    console.print(msgspec.json.encode(value).decode())


def _table(
    console: Console, header: Sequence[str], rows: Sequence[Sequence[str]], empty: str
) -> None:
    """Aligned columns, one line per row; the header only for a person at a terminal.

    An empty list says so (`empty`, e.g. "no profiles"): on stdout to a person, on stderr
    through a pipe, where stdout holds rows only.
    """
    person = is_terminal(console.out)
    if not rows:
        console.print(empty, err=not person)
        return
    # Whitespace inside a cell (a name with a newline, say) must not break the one-line rule.
    rows = [[" ".join(cell.split()) for cell in row] for row in rows]
    if person:
        rows = [list(header), *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        console.print("  ".join([*cells, row[-1]]).rstrip())


def _size(value: int | None) -> str:
    return "-" if value is None else format_size(value)


def _environment_rows(items: Sequence[Environment]) -> list[list[str]]:
    return [
        [
            item.id,
            item.name,
            str(item.status),
            _size(item.blob_size),
            format_date(item.created_at),
            format_date(item.blob_uploaded_at),
            item.description or "",
        ]
        for item in items
    ]


_ENVIRONMENT_HEADER = ("ID", "NAME", "STATUS", "SIZE", "CREATED", "UPLOADED", "DESCRIPTION")


def _print_environments(
    console: Console, items: Sequence[Environment], as_json: bool, noun: str
) -> None:
    if as_json:
        _json(console, items)
    else:
        _table(console, _ENVIRONMENT_HEADER, _environment_rows(items), f"no {noun}s")


def _print_uploaded(console: Console, item: Environment) -> None:
    console.print(f"{item.id}  {item.status}  {_size(item.blob_size)}")


# -- profiles ---------------------------------------------------------------------------------


async def profiles_list(client: AsyncWebRun, args: argparse.Namespace, console: Console) -> None:
    """List the account's browser profiles."""
    _print_environments(console, await client.profiles.list(), args.json, "profile")


async def profiles_create(client: AsyncWebRun, args: argparse.Namespace, console: Console) -> None:
    """Create an empty profile and print its id."""
    profile = await client.profiles.create(args.name, description=args.description)
    console.print(profile.id)


async def profiles_delete(client: AsyncWebRun, args: argparse.Namespace, console: Console) -> None:
    """Delete a profile and its stored browser data."""
    await client.profiles.delete(args.id)
    console.print(f"deleted {args.id}")


async def profiles_download(
    client: AsyncWebRun, args: argparse.Namespace, console: Console
) -> None:
    """Download a profile's archive and print where it went."""
    progress = TransferProgress(console, f"downloading profile {args.id}")
    with _about_files(args.dest), progress:
        path = await client.profiles.download(
            args.id, args.dest, progress=progress, overwrite=args.overwrite
        )
    console.print(str(path))


async def profiles_upload(client: AsyncWebRun, args: argparse.Namespace, console: Console) -> None:
    """Upload a ``.tar.gz`` archive into a profile (checked before anything is sent)."""
    progress = TransferProgress(console, f"uploading {Path(args.archive).name}")
    with _about_files(args.archive), progress:
        profile = await client.profiles.upload(args.id, args.archive, progress=progress)
    _print_uploaded(console, profile)


async def profiles_sync(client: AsyncWebRun, args: argparse.Namespace, console: Console) -> None:
    """Package the local Chrome profile, upload it, and print the environment's id."""
    progress = TransferProgress(console, "uploading the Chrome profile")
    try:
        with _about_files(args.dir or "the Chrome profile"), progress:
            environment = await client.profiles.sync(
                chrome_profile_dir=args.dir,
                environment_id=args.environment,
                profile=args.profile,
                name=args.name,
                progress=progress,
            )
    except CommandError as exc:
        if args.dir is not None:
            raise
        raise CommandError(f"{exc}; name the profile's directory with --dir DIR") from exc
    console.print(environment.id)


# -- environments -----------------------------------------------------------------------------


async def environments_list(
    client: AsyncWebRun, args: argparse.Namespace, console: Console
) -> None:
    """List the account's environments."""
    _print_environments(console, await client.environments.list(), args.json, "environment")


async def environments_create(
    client: AsyncWebRun, args: argparse.Namespace, console: Console
) -> None:
    """Create an empty environment and print its id."""
    environment = await client.environments.create(args.name, description=args.description)
    console.print(environment.id)


async def environments_delete(
    client: AsyncWebRun, args: argparse.Namespace, console: Console
) -> None:
    """Delete an environment with its profile data and files."""
    await client.environments.delete(args.id)
    console.print(f"deleted {args.id}")


async def environments_upload(
    client: AsyncWebRun, args: argparse.Namespace, console: Console
) -> None:
    """Upload a ``.tar.gz`` browser profile archive into an environment."""
    progress = TransferProgress(console, f"uploading {Path(args.archive).name}")
    with _about_files(args.archive), progress:
        environment = await client.environments.upload(args.id, args.archive, progress=progress)
    _print_uploaded(console, environment)


async def environment_files(
    client: AsyncWebRun, args: argparse.Namespace, console: Console
) -> None:
    """List the files attached to an environment."""
    files = await client.environments.list_files(args.id)
    if args.json:
        _json(console, files)
        return
    rows = [_file_row(item) for item in files]
    _table(console, ("FILE ID", "SIZE", "CREATED", "NAME"), rows, "no files in this environment")


def _file_row(item: EnvironmentFile) -> list[str]:
    return [item.file_id, format_size(item.size), format_date(item.created_at), item.original_name]


async def environments_delete_file(
    client: AsyncWebRun, args: argparse.Namespace, console: Console
) -> None:
    """Remove one file from an environment."""
    await client.environments.delete_file(args.id, args.file_id)
    console.print(f"deleted {args.file_id}")


# -- task files -------------------------------------------------------------------------------


async def files_upload(client: AsyncWebRun, args: argparse.Namespace, console: Console) -> None:
    """Upload files for tasks; print one line per file: its id, size and name."""
    label = f"uploading {Path(args.paths[0]).name}"
    if len(args.paths) > 1:
        label = f"uploading {len(args.paths)} files"
    with _about_files(args.paths[0]), TransferProgress(console, label) as progress:
        uploaded: list[UploadedFile] = await client.files.upload(
            *args.paths, environment_id=args.environment, progress=progress
        )
    rows = [[item.file_id, format_size(item.size), item.original_name] for item in uploaded]
    _table(console, ("FILE ID", "SIZE", "NAME"), rows, "no files uploaded")


async def files_download(client: AsyncWebRun, args: argparse.Namespace, console: Console) -> None:
    """Download a file a task produced (by its URL) and print where it went."""
    name = PurePosixPath(unquote(urlsplit(args.url).path)).name or "file"
    progress = TransferProgress(console, f"downloading {name}")
    with _about_files(args.dest), progress:
        path = await client.files.download(
            args.url, args.dest, progress=progress, overwrite=args.overwrite
        )
    console.print(str(path))


# -- the service ------------------------------------------------------------------------------


async def health(client: AsyncWebRun, args: argparse.Namespace, console: Console) -> None:
    """Print the service's health; fail unless it says it is healthy."""
    state = await client.health()
    if args.json:
        _json(console, state)
    else:
        line = state.status or "unknown"
        if state.instance_count is not None:
            line += f", {state.instance_count} instances available"
        elif state.instances_available is not None:
            line += ", instances available" if state.instances_available else ", no instances"
        console.print(line)
    if not state.success or state.status != "healthy":
        raise CommandError(f"the service reports {state.status or 'no status'!r}, not 'healthy'")


async def models(client: AsyncWebRun, args: argparse.Namespace, console: Console) -> None:
    """List the model ids the chat endpoint accepts."""
    items = await client.models.list()
    if args.json:
        _json(console, items)
        return
    rows = [[item.id, item.owned_by] for item in items]
    _table(console, ("MODEL", "OWNED BY"), rows, "no models")
