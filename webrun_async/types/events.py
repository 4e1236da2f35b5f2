"""Live events of tasks and sessions, pushed over socket.io (and synthesised from polls).

A task's events are its progress (:class:`ResponseUpdate`, :class:`AgentThought`,
:class:`BrowserAction`) followed by exactly one final state, the same typed states a poll returns
(:class:`~webrun_async.types.TaskResult`, :class:`~webrun_async.types.TaskFailure`,
:class:`~webrun_async.types.TaskTerminated`, or :class:`~webrun_async.types.TaskGuardrail` when
the agent asks for input). A session's events add the session-level notices.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeAlias

import msgspec

from ._base import Response
from .tasks import TaskFailure, TaskGuardrail, TaskResult, TaskTerminated

__all__ = [
    "ActionData",
    "AgentThought",
    "BrowserAction",
    "InstanceDisconnected",
    "InstanceReconnected",
    "ResponseUpdate",
    "SessionEnded",
    "SessionEvent",
    "TaskEvent",
    "UnknownEvent",
    "UpdateData",
]


class AgentThought(Response, kw_only=True, frozen=True):
    """The agent's reasoning, as it thinks (``type: "agent"``)."""

    kind: ClassVar[str] = "agent"

    content: str = ""


class ActionData(Response, kw_only=True, frozen=True):
    """What a browser action did and to what."""

    name: str = ""
    target: str | None = None


class BrowserAction(Response, kw_only=True, frozen=True):
    """A browser action the agent took (``type: "action"``), e.g. ``CLICK`` on a button."""

    kind: ClassVar[str] = "action"

    data: ActionData = msgspec.field(default_factory=ActionData)

    @property
    def name(self) -> str:
        """The action's name."""
        return self.data.name

    @property
    def target(self) -> str | None:
        """What it acted on, when the server said."""
        return self.data.target


class UpdateData(Response, kw_only=True, frozen=True):
    """The text of a status update."""

    message: str = ""


class ResponseUpdate(Response, kw_only=True, frozen=True):
    """A status update, such as "Starting task..." (``type: "response_update"``)."""

    kind: ClassVar[str] = "response_update"

    data: UpdateData = msgspec.field(default_factory=UpdateData)

    @property
    def message(self) -> str:
        """The update's text."""
        return self.data.message


class SessionEnded(Response, kw_only=True, frozen=True):
    """The session ended (the named ``end_session`` event).

    Attributes:
        reason: ``terminated``, ``expired``, ``terminateOnCompletion``, ``instance_lost`` or
            ``completed``.
    """

    kind: ClassVar[str] = "end_session"

    reason: str | None = None
    message: str | None = None


class InstanceDisconnected(Response, kw_only=True, frozen=True):
    """The browser instance was lost; the server tries to recover it within ``grace_period``.

    Attributes:
        grace_period: Milliseconds the server waits for the instance to come back.
    """

    kind: ClassVar[str] = "instance:disconnected"

    message: str | None = None
    grace_period: int | None = None


class InstanceReconnected(Response, kw_only=True, frozen=True):
    """The browser instance came back; the task goes on."""

    kind: ClassVar[str] = "instance:reconnected"

    message: str | None = None


class UnknownEvent(Response, kw_only=True, frozen=True):
    """An event this SDK does not know, passed through raw.

    Attributes:
        name: The socket.io event name.
        type: The payload's ``type``, if any.
        raw: The payload as decoded.
    """

    kind: ClassVar[str] = "unknown"

    name: str
    type: str | None = None
    raw: Any = None


TaskEvent: TypeAlias = (
    ResponseUpdate
    | AgentThought
    | BrowserAction
    | TaskGuardrail
    | TaskResult[Any]
    | TaskFailure
    | TaskTerminated
)
"""An event of one task: progress, then its final state."""

SessionEvent: TypeAlias = (
    TaskEvent | SessionEnded | InstanceDisconnected | InstanceReconnected | UnknownEvent
)
"""An event of a session: its tasks' events and the session's own notices."""
