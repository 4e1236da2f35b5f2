"""What every resource shares: a narrow context of the client's transport and task runtime."""

from __future__ import annotations

from dataclasses import dataclass

from webrun_async._core.transport import Transport
from webrun_async._tasks.runtime import Runtime

__all__ = ["Resource", "ResourceContext"]


@dataclass(frozen=True, slots=True)
class ResourceContext:
    """The parts of a client a resource may use: requests, and the task machinery."""

    transport: Transport
    runtime: Runtime


class Resource:
    """A group of API operations bound to one client's context."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: ResourceContext) -> None:
        self._ctx = ctx

    @property
    def _transport(self) -> Transport:
        return self._ctx.transport

    @property
    def _runtime(self) -> Runtime:
        return self._ctx.runtime
