"""A recording socket.io client for the emulator's push-channel tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import socketio  # type: ignore[import-untyped, unused-ignore]

from tests.support import WAIT
from webrun_async.emulator import Emulator

SENT = {"success": True, "message": "Message sent successfully"}
NOT_FOUND_401 = {
    "success": False,
    "message": "Session not found or unauthorized",
    "code": "SESSION_NOT_FOUND",
}
WEBSOCKET = ("websocket",)
POLLING = ("polling",)

Entry = tuple[str, Any]


class Probe:
    """A `socketio.AsyncClient` that records what it sees, in arrival order.

    `log` holds `("connect", None)`, `("disconnect", reason)`, `("connect_error", data)`,
    `("ack", data)` for acknowledgements asked with `emit_with_ack`, and `(event, payload)` for
    every server event. Handlers are synchronous, so the log keeps the order of delivery.
    """

    def __init__(self, *, reconnection: bool = False) -> None:
        self.client: Any = socketio.AsyncClient(
            reconnection=reconnection,
            reconnection_delay=0.02,
            reconnection_delay_max=0.05,
            randomization_factor=0,
            handle_sigint=False,
        )
        self.log: list[Entry] = []
        self._changed = asyncio.Event()
        self.client.on("connect", lambda: self._record("connect", None))
        self.client.on("disconnect", lambda reason: self._record("disconnect", reason))
        self.client.on("connect_error", lambda data: self._record("connect_error", data))
        self.client.on("*", self._record)

    def _record(self, event: str, payload: Any) -> None:
        self.log.append((event, payload))
        self._changed.set()

    async def connect(
        self, emu: Emulator, session_id: str, transports: Sequence[str] | None = WEBSOCKET
    ) -> None:
        """Connect with the session id as auth; a refusal raises `ConnectionError`."""
        await self.client.connect(
            emu.base_url,
            auth={"sessionId": session_id},
            transports=list(transports) if transports is not None else None,
            wait_timeout=WAIT,
        )

    async def call(self, message: Any) -> Any:
        """Emit `message` and wait for the acknowledgement."""
        return await self.client.call("message", message, timeout=WAIT)

    async def emit_with_ack(self, message: Any) -> None:
        """Emit `message`; its acknowledgement is logged as `("ack", body)` when it comes."""
        await self.client.emit("message", message, callback=lambda body: self._record("ack", body))

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds, woken by each entry; fails after `WAIT` seconds."""
        async with asyncio.timeout(WAIT):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_entry(self, event: str, count: int = 1) -> None:
        """Wait until `event` was logged `count` times."""
        await self.wait_for(lambda: len(self.entries(event)) >= count)

    async def wait_type(self, kind: str, count: int = 1) -> None:
        """Wait until `count` `message` events of this `type` arrived."""
        await self.wait_for(lambda: self.types().count(kind) >= count)

    def entries(self, event: str) -> list[Any]:
        """Payloads of one logged event name, in order."""
        return [payload for name, payload in self.log if name == event]

    def messages(self) -> list[dict[str, Any]]:
        """Payloads of the `message` events, in order."""
        return self.entries("message")

    def types(self) -> list[str]:
        """`type` of each `message` event, in order."""
        return [str(payload.get("type")) for payload in self.messages()]

    def names(self) -> list[str]:
        """Every logged entry name, in order (`message` entries by their `type`)."""
        return [
            str(payload.get("type")) if name == "message" else name for name, payload in self.log
        ]

    async def close(self) -> None:
        """Disconnect, or stop reconnecting."""
        await self.client.shutdown()


MakeProbe = Callable[..., Probe]


@asynccontextmanager
async def probe_factory() -> AsyncIterator[MakeProbe]:
    """Make probes that are all shut down on the way out."""
    made: list[Probe] = []

    def make(*, reconnection: bool = False) -> Probe:
        probe = Probe(reconnection=reconnection)
        made.append(probe)
        return probe

    try:
        yield make
    finally:
        for probe in made:
            await probe.close()
