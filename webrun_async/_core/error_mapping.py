"""How failed requests become the SDK's errors: aiohttp exceptions and error answers.

aiohttp's exceptions are translated in exactly one place, :func:`translate`; an error answer's
status and body become a typed :class:`APIStatusError` in :func:`status_error`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import aiohttp
import msgspec

from webrun_async._core.exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    GuardrailTriggered,
    InsufficientBalanceError,
    InternalServerError,
    NoInstancesAvailableError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    WebRunError,
)
from webrun_async._core.ratelimit import parse_retry_after

__all__ = [
    "AttemptFailed",
    "ErrorAnswer",
    "own_error",
    "should_retry_status",
    "status_error",
    "translate",
    "translate_error",
]

_STATUS_CLASSES: Final[dict[int, type[APIStatusError]]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientBalanceError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
    503: NoInstancesAvailableError,
}


class _ErrorObject(msgspec.Struct, kw_only=True):
    message: str | None = None
    type: str | None = None
    code: str | int | None = None


class _ErrorBody(msgspec.Struct, kw_only=True):
    message: str | None = None
    error: str | _ErrorObject | None = None
    code: str | int | None = None
    details: dict[str, Any] | None = None
    balance: float | None = None


_error_decoder = msgspec.json.Decoder(_ErrorBody)


class ErrorAnswer(Exception):
    """An attempt answered with an error status; turned into a typed error by the retry loop."""

    def __init__(
        self, status: int, reason: str | None, headers: Mapping[str, str], data: bytes
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.data = data


class AttemptFailed(Exception):
    """An attempt that got no answer; ``maybe_sent`` says whether the server may have acted."""

    def __init__(self, error: APIConnectionError, maybe_sent: bool) -> None:
        self.error = error
        self.maybe_sent = maybe_sent


def own_error(exc: BaseException) -> WebRunError | None:
    """The SDK's own error behind an aiohttp one (raised by a request body as it was sent)."""
    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 10:
        if isinstance(cause, WebRunError):
            return cause
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return None


def translate(exc: BaseException, method: str, path: str) -> AttemptFailed:
    """The one place where aiohttp's exceptions become the SDK's."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return AttemptFailed(
            APITimeoutError("timed out connecting", method=method, path=path), maybe_sent=False
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return AttemptFailed(
            APIConnectionError(
                f"could not connect: {exc.strerror or exc}", method=method, path=path
            ),
            maybe_sent=False,
        )
    if isinstance(exc, TimeoutError):  # sock_read (SocketTimeoutError) or the total limit
        return AttemptFailed(
            APITimeoutError("timed out waiting for the answer", method=method, path=path),
            maybe_sent=True,
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        text = "the server closed the connection before answering"
    elif isinstance(exc, aiohttp.ClientPayloadError):
        text = "the answer was cut short"
    else:
        text = f"connection error: {type(exc).__name__}"
    return AttemptFailed(APIConnectionError(text, method=method, path=path), maybe_sent=True)


def translate_error(exc: BaseException, method: str, path: str) -> APIConnectionError:
    """The SDK error for an aiohttp exception raised while reading an answer."""
    return translate(exc, method, path).error


def status_error(
    method: str, path: str, status: int, reason: str | None, headers: Mapping[str, str], data: bytes
) -> APIError | GuardrailTriggered:
    """Build the typed error for an error answer from its status, headers and body."""
    try:
        body = _error_decoder.decode(data) if data else _ErrorBody()
    except (msgspec.DecodeError, msgspec.ValidationError):
        body = _ErrorBody()
    error_obj = body.error if isinstance(body.error, _ErrorObject) else None
    if error_obj is not None and (
        error_obj.type == "guardrail_error" or error_obj.code == "guardrail_triggered"
    ):
        # The OpenAI-compatible endpoint reports a guardrail as an error; its session is over.
        text = error_obj.message or ""
        return GuardrailTriggered(text.removeprefix("Guardrail triggered: "), kind="guardrail")
    message = body.message or (body.error if isinstance(body.error, str) else None)
    if not message and error_obj is not None:
        message = error_obj.message
    if not message:
        message = reason or "error"
    code = body.code if body.code is not None else (error_obj.code if error_obj else None)
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else APIStatusError
    err = cls(
        message,
        status=status,
        method=method,
        path=path,
        code=str(code) if code is not None else None,
        details=body.details,
    )
    if isinstance(err, RateLimitError):
        err.retry_after = parse_retry_after(headers)
    elif isinstance(err, InsufficientBalanceError):
        err.balance = body.balance
    return err


def should_retry_status(status: int, idempotent: bool) -> bool:
    """Whether an error answer may be retried (``idempotent``: sending twice is harmless)."""
    if status in (429, 503):  # the server provably did not start the work
        return True
    return idempotent and (status == 408 or status >= 500)
