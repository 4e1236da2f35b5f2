"""Asyncio-first Python SDK for WebRun.

Start with :class:`AsyncWebRun`; every Struct lives in :mod:`webrun_async.types`, and a local
emulator of the whole API in :mod:`webrun_async.emulator`.
"""

import logging as _logging
import typing as _typing

from webrun_async._aliases import deprecated_names as _deprecated_names
from webrun_async._api.chat_stream import ChatCompletionStream
from webrun_async._core.config import RateLimit, RateLimits, RetryPolicy, Timeouts
from webrun_async._core.exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceeded,
    ClientClosedError,
    ConfigurationError,
    GuardrailTriggered,
    InsufficientBalanceError,
    InternalServerError,
    InvalidParameterError,
    NoInstancesAvailableError,
    NotFoundError,
    OutputValidationError,
    PermissionDeniedError,
    RateLimitError,
    SessionTerminated,
    TaskCancelled,
    TaskError,
    TaskFailed,
    TaskTimeoutError,
    UsageError,
    WebRunError,
)
from webrun_async._core.params import TaskOptions
from webrun_async._core.profile_sync import ProfileInUseWarning
from webrun_async._tasks.handle import GuardrailCallback, TaskHandle, TaskHandleStatus
from webrun_async._tasks.runtime import FollowMode

from ._client import DEFAULT_BASE_URL, AsyncWebRun, ClientStats
from ._version import __version__
from .resources.sessions import PendingSession, Session
from .types import TaskRef, TaskResult, TaskSecret, Usage

__all__ = [
    "DEFAULT_BASE_URL",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncWebRun",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceeded",
    "ChatCompletionStream",
    "ClientClosedError",
    "ClientStats",
    "ConfigurationError",
    "FollowMode",
    "GuardrailCallback",
    "GuardrailTriggered",
    "InsufficientBalanceError",
    "InternalServerError",
    "InvalidParameterError",
    "NoInstancesAvailableError",
    "NotFoundError",
    "OutputValidationError",
    "PendingSession",
    "PermissionDeniedError",
    "ProfileInUseWarning",
    "RateLimit",
    "RateLimitError",
    "RateLimits",
    "RetryPolicy",
    "Session",
    "SessionTerminated",
    "TaskCancelled",
    "TaskError",
    "TaskFailed",
    "TaskHandle",
    "TaskHandleStatus",
    "TaskOptions",
    "TaskRef",
    "TaskResult",
    "TaskSecret",
    "TaskTimeoutError",
    "Timeouts",
    "Usage",
    "UsageError",
    "WebRunError",
    "__version__",
]

# Renamed names, still importable for one release: each access warns and names the new one.
_DEPRECATED_ALIASES = {
    "HandleStatus": "TaskHandleStatus",
    "Mode": "FollowMode",
    "SessionStarter": "PendingSession",
}

if not _typing.TYPE_CHECKING:  # type checkers would accept any name of the package otherwise
    __getattr__ = _deprecated_names(__name__, _DEPRECATED_ALIASES, globals())


def _publish() -> None:
    """Give the exports the public path (``webrun_async.AsyncWebRun``, not the private module
    that defines them) in reprs, tracebacks, docs and pickles.

    Only classes and functions have a module to rewrite: typing aliases (``FollowMode``,
    ``GuardrailCallback``, ...) do not. The Structs of :mod:`webrun_async.types` keep theirs,
    which is public already.
    """
    import inspect

    public_modules = {"types", "sse"}
    for name in __all__:
        obj = globals()[name]
        if inspect.isclass(obj) or inspect.isfunction(obj):
            root, _, rest = obj.__module__.partition(".")
            if root == __name__ and rest and rest.partition(".")[0] not in public_modules:
                obj.__module__ = __name__


_publish()
del _publish

# A library does not print: without logging configured by the program, the SDK's records go
# nowhere (rather than to Python's last-resort stderr handler). See the README's "Logging".
_logging.getLogger("webrun_async").addHandler(_logging.NullHandler())
