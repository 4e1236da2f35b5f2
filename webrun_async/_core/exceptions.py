"""The SDK's errors, in one tree.

::

    WebRunError
    ├── APIError                        a request did not produce a usable answer
    │   ├── APIStatusError              the server answered with an error status
    │   │   ├── BadRequestError              400
    │   │   ├── AuthenticationError          401
    │   │   ├── InsufficientBalanceError     402
    │   │   ├── PermissionDeniedError        403
    │   │   ├── NotFoundError                404
    │   │   ├── RateLimitError               429
    │   │   ├── InternalServerError          500 and any other 5xx but 503
    │   │   └── NoInstancesAvailableError    503
    │   ├── APIConnectionError          no answer: refused, reset, closed early
    │   │   └── APITimeoutError         no answer in time
    │   └── APIResponseValidationError  an answer that does not decode
    ├── TaskError                       a task ended without a result
    │   ├── TaskFailed                  the task failed; ``.code`` says why
    │   ├── GuardrailTriggered          the agent needs a human: ``.value``, ``respond()``
    │   ├── SessionTerminated           the session ended before the task did
    │   ├── BudgetExceeded              a cost limit was crossed
    │   ├── TaskCancelled               the task was cancelled through its handle
    │   └── TaskTimeoutError            the task outlived its own deadline
    ├── OutputValidationError           structured output did not match the schema
    ├── ConfigurationError              the client was configured wrongly (also a ValueError)
    ├── InvalidParameterError           a call was given bad input (also a ValueError)
    └── UsageError                      the SDK was used out of order (also a RuntimeError)
        └── ClientClosedError           the client was used after ``aclose()``

No error message, ``repr`` or attribute ever holds the API key or task secrets: errors are
built from the request's method and path and from the server's error body only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from webrun_async.types.common import Usage
    from webrun_async.types.tasks import TaskResult

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceeded",
    "ClientClosedError",
    "ConfigurationError",
    "GuardrailTriggered",
    "InsufficientBalanceError",
    "InternalServerError",
    "InvalidParameterError",
    "NoInstancesAvailableError",
    "NotFoundError",
    "OutputValidationError",
    "PermissionDeniedError",
    "RateLimitError",
    "SessionTerminated",
    "TaskCancelled",
    "TaskError",
    "TaskFailed",
    "TaskTimeoutError",
    "UsageError",
    "WebRunError",
]


_E = TypeVar("_E", bound="WebRunError")


def _rebuild(cls: type[_E], args: tuple[Any, ...]) -> _E:
    """An error of ``cls`` with ``args``, made without ``__init__`` (pickle restores the rest)."""
    error = cls.__new__(cls)
    error.args = args
    return error


class WebRunError(Exception):
    """Base class of every error this SDK raises on purpose.

    Every error pickles and copies with its attributes (the keyword-only arguments of the
    subclasses are not in ``args``, so an error is rebuilt from its state, not by calling
    ``__init__`` again).
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self.args), self.__dict__ or None


class APIError(WebRunError):
    """A request did not produce a usable answer.

    Attributes:
        message: What went wrong, in the server's words where it gave any.
        method: The HTTP method of the request.
        path: The request path (never the query string, never headers).
    """

    def __init__(self, message: str, *, method: str, path: str) -> None:
        self.message = message
        self.method = method
        self.path = path
        super().__init__(f"{message} [{method} {path}]")


class APIStatusError(APIError):
    """The server answered with an error status.

    Attributes:
        status: The HTTP status code.
        code: The machine-readable error code from the body, when it had one.
        details: Extra structured detail from the body, when it had any.
    """

    status: int

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str,
        path: str,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.details = details
        self.message = message
        self.method = method
        self.path = path
        text = f"{status} {message}"
        if code:
            text += f" ({code})"
        Exception.__init__(self, f"{text} [{method} {path}]")


class BadRequestError(APIStatusError):
    """400: the request was malformed or a parameter was invalid."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, invalid or revoked (or the session is unknown)."""


class InsufficientBalanceError(APIStatusError):
    """402: the account's balance cannot pay for the work.

    Attributes:
        balance: The balance the server reported, in USD, when it reported one.
    """

    balance: float | None = None


class PermissionDeniedError(APIStatusError):
    """403: the account is deactivated or the key lacks a permission."""


class NotFoundError(APIStatusError):
    """404: the session, task, profile, environment or file does not exist."""


class RateLimitError(APIStatusError):
    """429: too many requests.

    Attributes:
        retry_after: Seconds the server asked to wait, when it said.
    """

    retry_after: float | None = None


class InternalServerError(APIStatusError):
    """A 5xx answer other than 503."""


class NoInstancesAvailableError(APIStatusError):
    """503: no browser instance is free to start the work."""


class APIConnectionError(APIError):
    """No answer arrived: the connection was refused, reset or closed early."""


class APITimeoutError(APIConnectionError):
    """No answer arrived in time."""


class APIResponseValidationError(APIError):
    """The server's answer could not be decoded into the expected type.

    Attributes:
        status: The HTTP status of the answer.
    """

    def __init__(self, message: str, *, method: str, path: str, status: int) -> None:
        self.status = status
        super().__init__(message, method=method, path=path)


class TaskError(WebRunError):
    """A task ended without producing a result.

    Attributes:
        session_id: The session the task ran in.
        task_id: The task, when the server named it.
        usage: Tokens, time and cost spent so far, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        session_id: str | None = None,
        task_id: str | None = None,
        usage: Usage | None = None,
    ) -> None:
        self.message = message
        self.session_id = session_id
        self.task_id = task_id
        self.usage = usage
        super().__init__(message)


class TaskFailed(TaskError):
    """The task failed.

    Attributes:
        code: The server's failure code, such as ``"NAVIGATION_TIMEOUT"``.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        session_id: str | None = None,
        task_id: str | None = None,
        usage: Usage | None = None,
    ) -> None:
        self.code = code
        super().__init__(message, session_id=session_id, task_id=task_id, usage=usage)

    def __str__(self) -> str:
        return f"{self.message} ({self.code})" if self.code else self.message


Responder = Callable[[str, bool], Awaitable[None]]


class GuardrailTriggered(TaskError):
    """The agent paused and asks a human for input.

    Attributes:
        value: What the agent asks for, e.g. ``"I need login credentials to proceed"``.
        kind: The guardrail type the server reported (``"human_input_needed"``).
    """

    def __init__(
        self,
        value: str,
        *,
        kind: str | None = None,
        session_id: str | None = None,
        task_id: str | None = None,
        usage: Usage | None = None,
        responder: Responder | None = None,
    ) -> None:
        self.value = value
        self.kind = kind
        self._responder = responder
        super().__init__(
            f"Guardrail triggered: {value}", session_id=session_id, task_id=task_id, usage=usage
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # The responder reaches a session of this process: an unpickled error cannot answer.
        state = {**self.__dict__, "_responder": None}
        return _rebuild, (type(self), self.args), state

    def __copy__(self) -> GuardrailTriggered:
        clone = _rebuild(type(self), self.args)
        clone.__dict__.update(self.__dict__)  # a copy in this process still answers
        return clone

    @property
    def can_respond(self) -> bool:
        """Whether :meth:`respond` can still reach the paused task."""
        return self._responder is not None

    async def respond(self, text: str, *, stop: bool = False) -> None:
        """Answer the agent so the paused task resumes (or stop it with ``stop=True``).

        Raises:
            UsageError: The session this guardrail came from has already ended.
        """
        if self._responder is None:
            raise UsageError(
                "this guardrail can no longer be answered: its session has ended "
                "(use a session, or answer guardrails while the task runs)"
            )
        await self._responder(text, stop)


class SessionTerminated(TaskError):
    """The session ended before the task finished."""


class BudgetExceeded(TaskError):
    """The work was stopped because a cost limit was crossed.

    The service reports a task's cost only once it names the task: when the held request
    answers (up to 50 s after the start) or when the task ends. Until then the SDK knows only a
    floor, the compute time at the documented $0.02 a minute, and stops the work when that
    floor crosses the limit. A task that finishes inside the 50 s hold may therefore cost more
    than the limit: it then raises this error with its :attr:`result` attached.

    Attributes:
        limit: The limit that was crossed, in USD.
        spent: The cost observed when it was crossed, in USD.
        result: The task's result when it completed before the crossing could be seen.
    """

    def __init__(
        self,
        message: str,
        *,
        limit: float,
        spent: float,
        session_id: str | None = None,
        task_id: str | None = None,
        usage: Usage | None = None,
        result: TaskResult[Any] | None = None,
    ) -> None:
        self.limit = limit
        self.spent = spent
        self.result = result
        super().__init__(message, session_id=session_id, task_id=task_id, usage=usage)


class TaskCancelled(TaskError):
    """The task was cancelled through its handle (``handle.cancel()``) and stopped."""


class TaskTimeoutError(TaskError, TimeoutError):
    """The task was still unfinished past its own deadline (its ``max_duration`` plus a margin).

    The SDK stops the remote work before raising this.
    """


class OutputValidationError(WebRunError):
    """The task completed but its output does not match the requested schema.

    Attributes:
        result: The completed result, with the raw text in ``result.message``.
    """

    def __init__(self, message: str, *, result: TaskResult[Any]) -> None:
        self.result = result
        super().__init__(message)


class ConfigurationError(WebRunError, ValueError):
    """The client was configured wrongly (missing API key, bad base URL, bad option)."""


class InvalidParameterError(WebRunError, ValueError):
    """A call was given bad input; nothing was sent.

    Attributes:
        parameter: The name of the offending parameter.
        problem: What is wrong with it.
    """

    def __init__(self, parameter: str, problem: str) -> None:
        self.parameter = parameter
        self.problem = problem
        super().__init__(f"{parameter}: {problem}")


class UsageError(WebRunError, RuntimeError):
    """The SDK was used out of order, such as entering a client twice."""


class ClientClosedError(UsageError):
    """The client was used after it was closed."""
