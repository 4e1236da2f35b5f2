"""Session requests, the start-session answer and every send-message action."""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

from ._base import Request, Response
from .tasks import Proxy, ReachOutMode, TaskConfig

__all__ = [
    "Click",
    "Dimensions",
    "DoubleClick",
    "GuardrailReply",
    "Interaction",
    "InteractionAction",
    "KeyPress",
    "NewTask",
    "ReleaseControl",
    "SendMessageRequest",
    "SessionInfo",
    "SessionMessage",
    "StartSessionRequest",
    "StateChange",
    "Streaming",
    "TakeOverControl",
    "TypeText",
]


class StartSessionRequest(Request, kw_only=True):
    """The body of ``POST /start/start-session``.

    ``environment_id`` and ``profile_id`` name the same kind of object; send one of them.
    """

    environment_id: str | None = None
    profile_id: str | None = None
    mode: str | None = None
    initial_task: TaskConfig | None = None
    policy_id: str | None = None
    proxy: Proxy | None = None
    reach_out_mode: ReachOutMode | None = None


class Dimensions(Response, kw_only=True, frozen=True):
    """The browser viewport size in pixels."""

    width: int
    height: int


class Streaming(Response, kw_only=True, frozen=True):
    """Where to watch the session's browser live.

    Attributes:
        web_rtc_url: The WHEP endpoint for a WebRTC player.
        web_view_url: An embeddable player page.
        dimensions: The video size.
    """

    web_rtc_url: str | None = msgspec.field(default=None, name="webRTCURL")
    web_view_url: str | None = msgspec.field(default=None, name="webViewURL")
    dimensions: Dimensions | None = None


class SessionInfo(Response, kw_only=True, frozen=True):
    """The answer of ``POST /start/start-session``.

    Attributes:
        session_id: The new session.
        socket_url: Where to connect socket.io for live events.
        streaming: Live video endpoints.
        initial_prompt: The initial task's text, echoed.
        expires_in: Inactivity expiry in milliseconds.
        balance: The account balance in USD.
        task_id: The initial task's id, when the server reports one.
    """

    session_id: str
    socket_url: str | None = msgspec.field(default=None, name="socketURL")
    streaming: Streaming | None = None
    initial_prompt: str | None = None
    expires_in: int | None = None
    balance: float | None = None
    message: str | None = None
    task_id: str | None = None


class NewTask(TaskConfig, tag_field="actionType", tag="newTask", kw_only=True):
    """Start a task in the session (it queues behind a running one)."""

    # A default_factory keeps "newState" on the wire even though defaults are omitted: the
    # documentation marks it required for newTask.
    new_state: Literal["start"] = msgspec.field(default_factory=lambda: "start")


class StateChange(Request, tag_field="actionType", tag="state"):
    """Pause, resume or stop the current task, or terminate the session."""

    new_state: Literal["pause", "resume", "stop", "terminate"]


class GuardrailReply(Request, tag_field="actionType", tag="guardrail", kw_only=True):
    """Answer a guardrail: ``resume`` with the text, or ``stop`` the task."""

    task_details: str
    new_state: Literal["resume", "stop"] = msgspec.field(default_factory=lambda: "resume")

    def __repr__(self) -> str:
        # The reply often carries credentials the agent asked for.
        return f"GuardrailReply(task_details=<redacted>, new_state={self.new_state!r})"


class TakeOverControl(Request, tag_field="type", tag="takeOverControl"):
    """Switch the browser to manual control (pauses the agent)."""


class ReleaseControl(Request, tag_field="type", tag="releaseControl"):
    """Hand control back to the agent."""


class Click(Request, tag_field="type", tag="CLICK"):
    """Click at viewport coordinates (add 155 px to y for the browser chrome)."""

    x: float
    y: float


class DoubleClick(Request, tag_field="type", tag="DOUBLE_CLICK"):
    """Double-click at viewport coordinates."""

    x: float
    y: float


class TypeText(Request, tag_field="type", tag="TYPE"):
    """Type text into the focused element, optionally at a human pace."""

    text: str
    human_like: bool | None = None

    def __repr__(self) -> str:
        # Typed text is often a password.
        return f"TypeText(text=<redacted>, human_like={self.human_like!r})"


class KeyPress(Request, tag_field="type", tag="KEY_PRESS"):
    """Press a key, such as ``"Enter"`` or ``"ArrowDown"``."""

    key: str


InteractionAction: TypeAlias = (
    TakeOverControl | ReleaseControl | Click | DoubleClick | TypeText | KeyPress
)
"""One manual browser action."""


class Interaction(Request, tag_field="actionType", tag="interaction"):
    """Manual browser control."""

    action: InteractionAction


SessionMessage: TypeAlias = NewTask | StateChange | Interaction | GuardrailReply
"""Anything ``POST /start/send-message`` (or the socket's ``message`` emit) accepts."""


class SendMessageRequest(Request, kw_only=True):
    """The body of ``POST /start/send-message``."""

    session_id: str
    message: SessionMessage
