"""HTTP errors of the emulated API and how they are rendered.

Handlers raise `ApiError`; one middleware renders it in the native shape
`{"success": false, "message", "code"}` of the errors reference or, under `/v1/`, in the
OpenAI shape `{"error": {"message", "type", "code"}}`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "ConfigError",
    "bad_param",
    "missing_field",
    "openai_error_body",
]

# OpenAI error `type` by HTTP status, for `/v1/*` answers.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class ApiError(Exception):
    """An error answer of the emulated API.

    Args:
        status: HTTP status.
        message: Human-readable text (the `message` field).
        code: Machine-readable code in the native upper-case spelling.
        extra: Additional top-level fields of the native body (e.g. `balance` on 402).
        headers: Extra response headers (e.g. `Retry-After`).
        openai_type: Overrides the OpenAI error `type` derived from the status.
        openai_code: Overrides the OpenAI error `code` (default: `code` in lower case).
    """

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        openai_type: str | None = None,
        openai_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = extra or {}
        self.headers = headers or {}
        self.openai_type = openai_type
        self.openai_code = openai_code

    def native_body(self) -> dict[str, Any]:
        """The native `{"success": false, "message", "code", ...}` body."""
        return {"success": False, "message": self.message, "code": self.code, **self.extra}

    def openai_body(self) -> dict[str, Any]:
        """The OpenAI-style `{"error": {...}}` body."""
        kind = self.openai_type or _OPENAI_TYPES.get(self.status, "server_error")
        return openai_error_body(self.message, kind, self.openai_code or self.code.lower())


class ConfigError(ValueError):
    """An invalid `EmulatorConfig` value.

    `field` names the offending option so that the CLI can point at the matching flag.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field
        self.problem = problem


def openai_error_body(message: str, kind: str, code: str) -> dict[str, Any]:
    """An OpenAI error object, also used as an in-stream SSE event."""
    return {"error": {"message": message, "type": kind, "code": code}}


def bad_param(name: str, problem: str) -> ApiError:
    """400 `INVALID_PARAMETER` naming the field, in the errors-reference wording."""
    return ApiError(400, f"Invalid parameter '{name}': {problem}", "INVALID_PARAMETER")


def missing_field(message: str) -> ApiError:
    """400 `MISSING_REQUIRED_FIELD` with the documented text."""
    return ApiError(400, message, "MISSING_REQUIRED_FIELD")
