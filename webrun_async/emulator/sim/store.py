"""The in-memory store: account, keys, sessions, tasks, files and environments."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ids import iso, new_hex_id
from .session import EmulatedSession, Task

__all__ = [
    "Account",
    "EmulatedEnvironment",
    "EmulatedTaskFile",
    "FileRecord",
    "Store",
]

DEFAULT_PERMISSIONS = frozenset({"task:create"})


@dataclass
class Account:
    """The single emulated account, shared by all keys. Tests may change both fields."""

    balance: float
    active: bool = True
    user_id: str = field(default_factory=new_hex_id)


@dataclass
class FileRecord:
    """An uploaded file (`POST /files/upload`), orphan or attached to an environment."""

    file_id: str
    original_name: str
    size: int
    path: Path
    created_at: float
    created_mono: float
    environment_id: str | None = None

    def to_json(self, *, with_created: bool = False) -> dict[str, Any]:
        """The documented file object."""
        body: dict[str, Any] = {
            "fileId": self.file_id,
            "originalName": self.original_name,
            "size": self.size,
        }
        if with_created:
            body["createdAt"] = iso(self.created_at)
        return body


@dataclass
class EmulatedTaskFile:
    """A file a simulated task "downloaded"; its bytes are generated on request."""

    file_id: str
    filename: str
    size: int


@dataclass
class EmulatedEnvironment:
    """An environment, which the profiles API exposes as a profile (the same object)."""

    env_id: str
    user_id: str
    name: str
    description: str
    created_at: float
    updated_at: float
    status: str = "empty"
    blob_path: Path | None = None
    blob_size: int | None = None
    blob_uploaded_at: float | None = None
    last_used_at: float | None = None
    usage_count: int = 0

    def to_json(self) -> dict[str, Any]:
        """The profile/environment object with every documented field."""
        return {
            "_id": self.env_id,
            "userId": self.user_id,
            "name": self.name,
            "description": self.description,
            "status": self.status,
            "blobSize": self.blob_size,
            "blobUploadedAt": iso(self.blob_uploaded_at),
            "lastUsedAt": iso(self.last_used_at),
            "usageCount": self.usage_count,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }


class Store:
    """Everything the emulator knows, for the handlers and for inspection from tests."""

    def __init__(self, *, api_key: str, balance: float) -> None:
        self.account = Account(balance=balance)
        self.api_keys: dict[str, frozenset[str]] = {api_key: DEFAULT_PERMISSIONS}
        self.sessions: dict[str, EmulatedSession] = {}
        self.live: dict[str, EmulatedSession] = {}
        self.peak_live = 0  # the most sessions live at once so far
        self.tasks: dict[str, Task] = {}
        self.files: dict[str, FileRecord] = {}
        self.task_files: dict[str, EmulatedTaskFile] = {}
        self.environments: dict[str, EmulatedEnvironment] = {}
        self.request_counts: Counter[str] = Counter()
        # socket.io: the open sockets (socket id -> session id) and the connection counters.
        self.sockets: dict[str, str] = {}
        self.socket_connections = 0
        self.socket_refused = 0

    def environments_newest_first(self) -> list[EmulatedEnvironment]:
        """Environments sorted by creation time, newest first (insertion order breaks ties)."""
        ordered = list(self.environments.values())
        ordered.reverse()
        return sorted(ordered, key=lambda env: env.created_at, reverse=True)

    def environment_files(self, env_id: str) -> list[FileRecord]:
        """Files attached to one environment, oldest first."""
        return [record for record in self.files.values() if record.environment_id == env_id]
