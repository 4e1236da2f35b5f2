"""Task requests and the typed task states a poll or a held request can return."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Generic, Literal, TypeAlias, TypeVar

import msgspec

from ._base import Request, Response
from .common import Usage

__all__ = [
    "NetworkCapture",
    "NetworkURL",
    "OutputType",
    "Proxy",
    "ReachOutMode",
    "RunTaskRequest",
    "TaskConfig",
    "TaskFailure",
    "TaskFile",
    "TaskGuardrail",
    "TaskPending",
    "TaskRef",
    "TaskResult",
    "TaskRunning",
    "TaskSecret",
    "TaskStatus",
    "TaskTerminated",
    "TaskUnknownStatus",
    "Webhook",
]

OutputT = TypeVar("OutputT")

OutputType: TypeAlias = Literal["text", "structured_json", "structured_csv"]
"""How the agent formats its answer: markdown text, JSON matching a schema, or CSV columns."""

ReachOutMode: TypeAlias = Literal["off", "guardrail_only", "full"]
"""Whether guardrails (and results, with ``"full"``) are forwarded to the environment's chat."""

_REDACTED = "<redacted>"


class TaskSecret(Request, kw_only=True):
    """Credentials the agent may type on matching sites; never stored, logged or shown.

    Attributes:
        match: ``"*.example.com"`` (subdomains), ``"example.com"`` (exact) or ``"all"``.
        fields: Names to values, e.g. ``{"email": ..., "password": ...}``.
    """

    match: str
    fields: dict[str, str]

    def __repr__(self) -> str:
        return f"TaskSecret(match={self.match!r}, fields={_REDACTED})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [("match", self.match), ("fields", _REDACTED)]


class Webhook(Request, kw_only=True):
    """Where the server posts the result when the task completes.

    Attributes:
        name: A label for the webhook.
        url: The URL that receives the POST.
        auth: Sent verbatim as the ``Authorization`` header (treated as a secret).
        submitted_data: ``"ai_response"``, ``"full_response"`` or ``"just_ping"``.
    """

    name: str
    url: str
    auth: str | None = None
    submitted_data: Literal["ai_response", "full_response", "just_ping"] | None = None

    def __repr__(self) -> str:
        auth = _REDACTED if self.auth is not None else None
        return (
            f"Webhook(name={self.name!r}, url={self.url!r}, auth={auth}, "
            f"submitted_data={self.submitted_data!r})"
        )


class Proxy(Request, kw_only=True):
    """A proxy for the session's browser: WebRun's own (by country) or a custom one.

    Attributes:
        source: ``"WebRun"`` or ``"custom"``.
        country: ISO 3166 alpha-2 code or ``"random"`` (WebRun proxies).
        type: ``"http"`` or ``"socks"`` (custom proxies).
        host: Custom proxy host.
        port: Custom proxy port, as a string (as the API expects).
        username: Custom proxy user.
        password: Custom proxy password (treated as a secret).
    """

    source: Literal["WebRun", "custom"]
    country: str | None = None
    type: Literal["http", "socks"] | None = None
    host: str | None = None
    port: str | None = None
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:
        password = _REDACTED if self.password is not None else None
        return (
            f"Proxy(source={self.source!r}, country={self.country!r}, type={self.type!r}, "
            f"host={self.host!r}, port={self.port!r}, username={self.username!r}, "
            f"password={password})"
        )


class _TaskFields(Request, kw_only=True):
    """Task-level parameters common to every way of starting a task."""

    max_duration: int | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    avoid_domains: list[str] | None = None
    terminate_on_completion: bool | None = None
    output_type: OutputType | None = None
    output_schema: dict[str, Any] | list[str] | None = None
    secrets: list[TaskSecret] | None = None
    files: list[str] | None = None
    webhook: Webhook | None = None


class TaskConfig(_TaskFields, kw_only=True):
    """A task inside a session: the ``initialTask`` of start-session and the body of newTask.

    ``max_duration`` is in milliseconds here, as on the wire; the SDK's methods take seconds.
    """

    task_details: str = ""
    starting_point: str | None = None


class RunTaskRequest(_TaskFields, kw_only=True):
    """The body of ``POST /start/run-task`` (a one-shot task in its own session)."""

    task_details: str
    starting_url: str | None = None
    environment_id: str | None = None
    profile_id: str | None = None
    mode: str | None = None
    policy_id: str | None = None
    proxy: Proxy | None = None
    reach_out_mode: ReachOutMode | None = None


class TaskRef(msgspec.Struct, kw_only=True, frozen=True):
    """Where a running task lives, to follow it again later (``client.tasks.attach(ref)``).

    It is plain data: store it (``msgspec.json.encode(ref)``) and resume elsewhere.
    """

    session_id: str
    task_id: str


class TaskFile(Response, kw_only=True, frozen=True, gc=False):
    """A file the agent downloaded during the task.

    Attributes:
        download_url: Where to fetch it.
        filename: Its name.
        source: The URL it came from.
        timestamp: When it was captured, in ms since the epoch.
    """

    download_url: str
    filename: str = ""
    source: str | None = None
    timestamp: float | None = None


class NetworkURL(Response, kw_only=True, frozen=True, gc=False):
    """One URL the browser requested."""

    url: str
    timestamp: float | None = None


class NetworkCapture(Response, kw_only=True, frozen=True, gc=False):
    """Network requests captured during the task."""

    id: str | None = None
    task_id: str | None = None
    urls: list[NetworkURL] = msgspec.field(default_factory=list)


class TaskResult(Response, Generic[OutputT], kw_only=True, frozen=True):
    """A completed task.

    Attributes:
        session_id: The session it ran in.
        task_id: The task.
        message: The agent's answer: markdown text, or the raw JSON/CSV of structured output.
        files: Files the agent downloaded.
        network: Network requests captured.
        usage: Tokens, time and cost.
        completed_at: When it completed, when the server said.
        output: The structured output decoded into the requested type (``None`` for text).
    """

    state: ClassVar[str] = "completed"
    terminal: ClassVar[bool] = True

    session_id: str
    task_id: str
    message: str = ""
    files: list[TaskFile] = msgspec.field(default_factory=list)
    network: list[NetworkCapture] = msgspec.field(default_factory=list)
    usage: Usage = msgspec.field(default_factory=Usage)
    completed_at: datetime | None = None
    output: OutputT | None = None


class TaskPending(Response, kw_only=True, frozen=True):
    """The held request ended before the task did; poll ``poll_url`` (or the task) for it."""

    state: ClassVar[str] = "pending"
    terminal: ClassVar[bool] = False

    session_id: str
    task_id: str
    poll_url: str | None = None
    message: str | None = None
    usage: Usage = msgspec.field(default_factory=Usage)


class TaskRunning(Response, kw_only=True, frozen=True):
    """The task is still running.

    Attributes:
        status: The server's own word for it (``"running"``, ``"active"``, ...).
        usage: Tokens, time and cost so far.
    """

    state: ClassVar[str] = "running"
    terminal: ClassVar[bool] = False

    session_id: str
    task_id: str
    status: str = "running"
    usage: Usage = msgspec.field(default_factory=Usage)


class TaskGuardrail(Response, kw_only=True, frozen=True):
    """The agent paused and needs human input before it can go on.

    Attributes:
        value: What it asks for.
        kind: The guardrail type (``"human_input_needed"``).
    """

    state: ClassVar[str] = "guardrail"
    terminal: ClassVar[bool] = False

    session_id: str
    task_id: str
    value: str
    kind: str | None = None
    usage: Usage = msgspec.field(default_factory=Usage)


class TaskFailure(Response, kw_only=True, frozen=True):
    """The task failed.

    Attributes:
        error: The server's description.
        code: The failure code, e.g. ``"NAVIGATION_TIMEOUT"``.
    """

    state: ClassVar[str] = "failed"
    terminal: ClassVar[bool] = True

    session_id: str
    task_id: str
    error: str
    code: str | None = None
    usage: Usage = msgspec.field(default_factory=Usage)


class TaskTerminated(Response, kw_only=True, frozen=True):
    """The session ended before the task finished."""

    state: ClassVar[str] = "terminated"
    terminal: ClassVar[bool] = True

    session_id: str
    task_id: str
    error: str | None = None
    usage: Usage = msgspec.field(default_factory=Usage)


class TaskUnknownStatus(Response, kw_only=True, frozen=True):
    """An answer in a shape or status this SDK does not know; treated as not finished.

    Attributes:
        status: The ``status`` (or ``type``) the server sent, if any.
        raw: The whole decoded body, for inspection.
    """

    state: ClassVar[str] = "unknown"
    terminal: ClassVar[bool] = False

    session_id: str
    task_id: str
    status: str | None = None
    raw: dict[str, Any] = msgspec.field(default_factory=dict)


TaskStatus: TypeAlias = (
    TaskResult[Any]
    | TaskPending
    | TaskRunning
    | TaskGuardrail
    | TaskFailure
    | TaskTerminated
    | TaskUnknownStatus
)
"""Any state a task can be reported in; ``status.terminal`` tells whether it is final."""
