"""What every resource shares: the client it is bound to."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from webrun_async._client import AsyncWebRun
    from webrun_async._core.transport import Transport

__all__ = ["Resource"]


class Resource:
    """A group of API operations bound to one client."""

    __slots__ = ("_client",)

    def __init__(self, client: AsyncWebRun) -> None:
        self._client = client

    @property
    def _transport(self) -> Transport:
        return self._client._transport
