"""Asyncio-first Python SDK for WebRun.

Start with :class:`AsyncWebRun`; every Struct lives in :mod:`webrun_async.types`, and a local
emulator of the whole API in :mod:`webrun_async.emulator`.
"""

from ._chat_stream import ChatCompletionStream
from ._client import DEFAULT_BASE_URL, AsyncWebRun
from ._config import RateLimit, RateLimits, RetryPolicy, Timeouts
from ._exceptions import (
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
from ._handles import GuardrailCallback, HandleStatus, TaskHandle
from ._params import TaskOptions
from ._profile_sync import ProfileInUseWarning
from ._runtime import Mode
from ._version import __version__
from .resources.sessions import Session, SessionStarter
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
    "ConfigurationError",
    "GuardrailCallback",
    "GuardrailTriggered",
    "HandleStatus",
    "InsufficientBalanceError",
    "InternalServerError",
    "InvalidParameterError",
    "Mode",
    "NoInstancesAvailableError",
    "NotFoundError",
    "OutputValidationError",
    "PermissionDeniedError",
    "ProfileInUseWarning",
    "RateLimit",
    "RateLimitError",
    "RateLimits",
    "RetryPolicy",
    "Session",
    "SessionStarter",
    "SessionTerminated",
    "TaskCancelled",
    "TaskError",
    "TaskFailed",
    "TaskHandle",
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
