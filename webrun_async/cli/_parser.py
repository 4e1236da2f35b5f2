"""The ``webrun`` argument parser: global options, then one subcommand per job.

Every leaf command sets ``handler`` (``async def (client, args, console)``) in its defaults;
one may also set ``prepare`` (``def (args) -> dict``), run before the client exists, to check
its input and return options for the client (``webrun batch`` does).
``webrun emulator`` takes no arguments here: whatever follows it goes to the emulator's own
parser, so that the flags of ``webrun emulator`` and ``python -m webrun_async.emulator`` are
one and the same.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TypeAlias

from webrun_async import DEFAULT_BASE_URL, __version__

from . import _batch, _manage, _task
from ._options import add_task_flags

__all__ = ["EMULATOR", "build_parser"]

EMULATOR = "emulator"
DEFAULT_MODEL = "enigma-browser-1"

Handler: TypeAlias = Callable[..., Awaitable[None]]
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _leaf(commands: Commands, name: str, handler: Handler, summary: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=summary[0].upper() + summary[1:] + "."
    )
    parser.set_defaults(handler=handler)
    return parser


def _group(commands: Commands, name: str, summary: str) -> Commands:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=summary[0].upper() + summary[1:] + "."
    )
    return parser.add_subparsers(dest="action", metavar="ACTION", required=True)


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")


def _add_run(commands: Commands) -> None:
    run = _leaf(commands, "run", _task.run, "run one task and print its events and result")
    run.add_argument("task", metavar="TASK", help="what the agent should do")
    add_task_flags(run)
    run.add_argument(
        "--file",
        metavar="PATH",
        action="append",
        dest="files",
        help="upload this file and give it to the agent; repeatable",
    )
    run.add_argument(
        "--hide-answers",
        action="store_true",
        help="never echo answers typed at a question (they are hidden anyway when the question "
        "asks for a password, code or the like)",
    )
    run.add_argument(
        "--json",
        action="store_true",
        help="print only the outcome, as one JSON object, also when the task fails (events go "
        "to stderr on a terminal)",
    )
    _batch.add_batch(
        _leaf(commands, "batch", _batch.batch, "run many tasks from a file, one JSON line each")
    )
    chat = _leaf(commands, "chat", _task.chat, "ask a question and stream the answer")
    chat.add_argument("question", metavar="QUESTION", help="the question (one browser task)")
    chat.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"the model id (default: {DEFAULT_MODEL})"
    )


def _add_archives(commands: Commands, noun: str, handlers: dict[str, Handler]) -> Commands:
    """The actions profiles and environments share: list, create, delete, upload."""
    group = _group(commands, f"{noun}s", f"manage {noun}s")
    _json_flag(_leaf(group, "list", handlers["list"], f"list the {noun}s"))
    create = _leaf(group, "create", handlers["create"], f"create an empty {noun}; prints its id")
    create.add_argument("name", metavar="NAME", help="at most 100 characters")
    create.add_argument("--description", metavar="D", help="at most 500 characters")
    delete = _leaf(group, "delete", handlers["delete"], f"delete a {noun} and its data")
    delete.add_argument("id", metavar="ID")
    upload = _leaf(group, "upload", handlers["upload"], f"upload a .tar.gz profile into a {noun}")
    upload.add_argument("id", metavar="ID")
    upload.add_argument("archive", metavar="ARCHIVE", help="a .tar.gz browser profile archive")
    return group


def _add_profiles(commands: Commands) -> None:
    handlers: dict[str, Handler] = {
        "list": _manage.profiles_list,
        "create": _manage.profiles_create,
        "delete": _manage.profiles_delete,
        "upload": _manage.profiles_upload,
    }
    group = _add_archives(commands, "profile", handlers)
    download = _leaf(
        group, "download", _manage.profiles_download, "download a profile's .tar.gz archive"
    )
    download.add_argument("id", metavar="ID")
    download.add_argument(
        "dest", metavar="DEST", nargs="?", default=".", help="a file or directory (default: .)"
    )
    download.add_argument("--overwrite", action="store_true", help="replace an existing file")
    sync = _leaf(
        group, "sync", _manage.profiles_sync, "upload your local Chrome profile; prints the id"
    )
    sync.add_argument(
        "--dir", metavar="DIR", help="the Chrome user data or profile directory (default: found)"
    )
    sync.add_argument(
        "--environment", metavar="ID", help="the environment to replace (default: a new one)"
    )
    sync.add_argument(
        "--profile", default="Default", help="the profile inside a user data directory"
    )
    sync.add_argument("--name", help="the new environment's name (default: names this machine)")


def _add_environments(commands: Commands) -> None:
    handlers: dict[str, Handler] = {
        "list": _manage.environments_list,
        "create": _manage.environments_create,
        "delete": _manage.environments_delete,
        "upload": _manage.environments_upload,
    }
    group = _add_archives(commands, "environment", handlers)
    files = _leaf(group, "files", _manage.environment_files, "list an environment's files")
    files.add_argument("id", metavar="ID")
    _json_flag(files)
    delete_file = _leaf(
        group, "delete-file", _manage.environments_delete_file, "remove a file from an environment"
    )
    delete_file.add_argument("id", metavar="ID")
    delete_file.add_argument("file_id", metavar="FILE_ID")


def _add_files(commands: Commands) -> None:
    group = _group(commands, "files", "upload task files and download what tasks produced")
    upload = _leaf(group, "upload", _manage.files_upload, "upload files; prints their ids")
    upload.add_argument("paths", metavar="PATH", nargs="+")
    upload.add_argument(
        "--environment", metavar="ID", help="keep them in this environment (default: temporary)"
    )
    download = _leaf(group, "download", _manage.files_download, "download a task's file by URL")
    download.add_argument("url", metavar="URL", help="the file's download URL")
    download.add_argument(
        "dest", metavar="DEST", nargs="?", default=".", help="a file or directory (default: .)"
    )
    download.add_argument("--overwrite", action="store_true", help="replace an existing file")


def build_parser() -> argparse.ArgumentParser:
    """The whole ``webrun`` command line."""
    parser = argparse.ArgumentParser(
        prog="webrun",
        description="Run natural-language tasks in real browsers with WebRun.",
        epilog=(
            "No account? Start a local emulator with 'webrun emulator --api-key KEY' and set "
            "WEBRUN_BASE_URL to the URL it prints and WEBRUN_API_KEY to KEY."
        ),
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help="your API key (default: $WEBRUN_API_KEY, which keeps it out of process lists)",
    )
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help=f"the API root (default: $WEBRUN_BASE_URL, else {DEFAULT_BASE_URL})",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug logging on errors"
    )
    parser.add_argument("--version", action="version", version=f"webrun {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_run(commands)
    _add_profiles(commands)
    _add_environments(commands)
    _add_files(commands)
    _json_flag(_leaf(commands, "health", _manage.health, "check the service"))
    _json_flag(_leaf(commands, "models", _manage.models, "list the chat models"))
    commands.add_parser(
        EMULATOR,
        help="run the built-in emulator of the API (see 'webrun emulator --help')",
        add_help=False,  # its own parser answers --help, with its own flags
    )
    return parser
