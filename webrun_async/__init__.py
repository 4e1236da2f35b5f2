"""Asyncio-first Python SDK for WebRun.

Start with :class:`AsyncWebRun`; every Struct lives in :mod:`webrun_async.types`, and a local
emulator of the whole API in :mod:`webrun_async.emulator`.
"""

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

from ._client import DEFAULT_BASE_URL, AsyncWebRun
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
