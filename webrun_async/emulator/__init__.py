"""A local emulator of the whole WebRun API, for developing and testing with no account.

REST, the OpenAI-compatible chat API and the socket.io push channel (`/socket.io/`, auth
`{"sessionId": ...}`) are all served on one port.

    from webrun_async.emulator import Emulator

    async with Emulator(inline_wait=0.5, rate_limit=None) as emu:
        ...  # point a client at emu.base_url with emu.api_key

Or from a shell: `python -m webrun_async.emulator --port 8765`.

Task text may carry directives that script the simulation: `[[duration=SECONDS]]`,
`[[fail=CODE]]`, `[[guardrail=TEXT]]`, `[[files=N]]`, `[[file_size=BYTES]]`, `[[events=N]]`.

It misbehaves on request (`FaultPlan`, the `faults` option, the `--fault*` flags): error
answers, 429 storms, slow answers, connection resets, malformed or oversized JSON, dropped,
duplicated or reordered socket events, lost instances and cut chat streams.

The names exported here are the emulator's public API; the subpackages (`http`, `routes`,
`sim`, `push`) and modules behind them are internal and may change.
"""

from __future__ import annotations

import typing as _typing

from webrun_async._aliases import deprecated_names as _deprecated_names

from .config import EmulatorConfig
from .errors import ConfigError
from .faults import FAULT_KINDS, FaultPlan
from .server import Emulator
from .sim.engine import Engine
from .sim.session import EmulatedSession, EmulatedTaskStatus, EmulatedUsage, Listener, Task
from .sim.store import Account, EmulatedEnvironment, EmulatedTaskFile, FileRecord, Store

__all__ = [
    "FAULT_KINDS",
    "Account",
    "ConfigError",
    "EmulatedEnvironment",
    "EmulatedSession",
    "EmulatedTaskFile",
    "EmulatedTaskStatus",
    "EmulatedUsage",
    "Emulator",
    "EmulatorConfig",
    "Engine",
    "FaultPlan",
    "FileRecord",
    "Listener",
    "Store",
    "Task",
]

# The old names shadowed the SDK's own (webrun_async.Session, webrun_async.types.Usage, ...);
# they stay importable for one release, with a warning naming the new one.
_DEPRECATED_ALIASES = {
    "Environment": "EmulatedEnvironment",
    "Session": "EmulatedSession",
    "TaskFile": "EmulatedTaskFile",
    "TaskStatus": "EmulatedTaskStatus",
    "Usage": "EmulatedUsage",
}

if not _typing.TYPE_CHECKING:  # type checkers would accept any name of the module otherwise
    __getattr__ = _deprecated_names(__name__, _DEPRECATED_ALIASES, globals())
