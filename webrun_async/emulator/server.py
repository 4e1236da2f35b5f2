"""`Emulator`: the whole WebRun API served from this process on a local port."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import secrets
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from .app import build_app
from .config import EmulatorConfig
from .faults import FaultPlan
from .http.connections import CONNECTIONS_KEY, GuardedSite
from .push.hub import SocketHub
from .sim.engine import Engine
from .sim.instance import disconnect_instance
from .sim.session import EmulatedSession
from .sim.store import DEFAULT_PERMISSIONS, Account, Store

__all__ = ["Emulator"]

logger = logging.getLogger("webrun_async.emulator")

# Held requests are answered before shutdown, so the server has little left to wait for.
_SHUTDOWN_TIMEOUT = 2.0
_BACKLOG = 2048
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")


class Emulator:
    """A faithful local WebRun API for development and tests, with no account needed.

    Use it as an async context manager, or call `start()` and `aclose()`::

        async with Emulator(inline_wait=0.5, rate_limit=None) as emu:
            client = AsyncWebRun(api_key=emu.api_key, base_url=emu.base_url)

    Args:
        config: A full configuration; keyword `options` override its fields.
        **options: Any `EmulatorConfig` field, e.g. `api_key="k"` or `instances=2`.
    """

    def __init__(self, config: EmulatorConfig | None = None, **options: Any) -> None:
        config = config or EmulatorConfig()
        if options:
            config = dataclasses.replace(config, **options)
        self.config = config
        self.api_key: str = config.api_key or f"wr_emu_{secrets.token_hex(16)}"
        self.state = Store(api_key=self.api_key, balance=config.balance)
        self._engine = Engine(config, self.state)
        # Built up front so that the socket.io server is attached before `start()`.
        self.app: web.Application = build_app(self._engine)
        self._sockets = SocketHub(self._engine, self.app)
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._closed = False

    @property
    def engine(self) -> Engine:
        """The engine driving sessions and tasks (for attaching other transports)."""
        return self._engine

    @property
    def base_url(self) -> str:
        """`http://<host>:<port>` once started."""
        if self._base_url is None:
            raise RuntimeError("the emulator is not started")
        return self._base_url

    @property
    def account(self) -> Account:
        """The emulated account: `balance` (USD) and `active`; tests may change both."""
        return self.state.account

    @property
    def request_counts(self) -> dict[str, int]:
        """Requests seen, keyed `"METHOD /route/pattern"` (unknown routes: `"unmatched"`).

        Messages emitted by socket.io clients count as `"SOCKET message"`; socket.io's own
        transport requests are not counted.
        """
        return dict(self.state.request_counts)

    def live_sessions(self) -> list[str]:
        """Ids of the sessions that have not ended."""
        return list(self.state.live)

    def add_api_key(self, key: str, permissions: frozenset[str] = DEFAULT_PERMISSIONS) -> None:
        """Accept another Bearer key with the given permissions."""
        if not key or key != key.strip():
            raise ValueError("an API key must be a non-empty token without surrounding spaces")
        self.state.api_keys[key] = frozenset(permissions)

    def revoke_api_key(self, key: str) -> None:
        """Refuse `key` from now on (401 "Invalid or revoked API key")."""
        self.state.api_keys.pop(key, None)

    # -- fault injection -------------------------------------------------------------------

    @property
    def faults(self) -> FaultPlan:
        """The fault plan in force (`EmulatorConfig.faults`, or none).

        Assign another plan (or `None`) to change it while running; its draws and positions
        start over from then.
        """
        return self._engine.faults.plan

    @faults.setter
    def faults(self, plan: FaultPlan | None) -> None:
        self._engine.faults.plan = plan or FaultPlan()

    @property
    def faults_injected(self) -> dict[str, int]:
        """How many faults of each kind were injected so far."""
        return dict(self._engine.faults.injected)

    @property
    def sessions_created(self) -> int:
        """Sessions the emulator created so far (ended ones included): billable work."""
        return len(self.state.sessions)

    @property
    def peak_live_sessions(self) -> int:
        """The most sessions that were live at once so far (see :meth:`reset_peak`)."""
        return self.state.peak_live

    def reset_peak(self) -> None:
        """Start counting :attr:`peak_live_sessions` again from the sessions live now."""
        self.state.peak_live = len(self.state.live)

    # -- socket.io and instance test hooks -------------------------------------------------

    def open_sockets(self, session_id: str | None = None) -> int:
        """socket.io connections open now: all of them, or those of one session."""
        return self._sockets.open_sockets(session_id)

    @property
    def socket_connections(self) -> int:
        """socket.io connections accepted so far (reconnections included)."""
        return self.state.socket_connections

    @property
    def socket_refused(self) -> int:
        """socket.io connections refused so far (with a `connect_error`)."""
        return self.state.socket_refused

    async def drop_sockets(self, session_id: str, *, refuse_reconnect: bool = False) -> int:
        """Cut the session's socket connections abruptly, as a network failure would.

        The clients get no socket.io disconnect, only a lost transport, so a client with
        reconnection enabled reconnects. With `refuse_reconnect`, the session's connection
        attempts are refused until `allow_sockets(session_id)`.

        Returns:
            How many connections were cut.

        Raises:
            KeyError: No session has this id.
        """
        if session_id not in self.state.sessions:
            raise KeyError(session_id)
        return await self._sockets.drop(session_id, refuse_reconnect=refuse_reconnect)

    def allow_sockets(self, session_id: str) -> None:
        """Accept the session's socket connections again (after `refuse_reconnect`)."""
        self._sockets.allow(session_id)

    async def disconnect_instance(
        self, session_id: str, *, reconnect_after: float | None = None
    ) -> None:
        """Lose the session's browser instance: `instance:disconnected` and a paused task.

        After `reconnect_after` seconds, `instance:reconnected` follows and the task goes on.
        With `None` (or a delay beyond the grace period) the session ends with reason
        `instance_lost` once `instance_grace` seconds have passed. Returns at once; the rest
        happens in the background.

        Raises:
            KeyError: No live session has this id.
            RuntimeError: The session's instance is already disconnected.
            ValueError: `reconnect_after` is negative or not finite.
        """
        disconnect_instance(self._engine, self._live_session(session_id), reconnect_after)

    def _live_session(self, session_id: str) -> EmulatedSession:
        session = self.state.live.get(session_id)
        if session is None:
            raise KeyError(session_id)
        return session

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the port and start serving; calling it again is a no-op."""
        if self._closed:
            raise RuntimeError("a closed emulator cannot be restarted")
        if self._runner is not None:
            return
        tmp = await asyncio.to_thread(tempfile.mkdtemp, prefix="webrun-emulator-")
        self._engine.tmp_dir = Path(tmp)
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
            # How long the unread rest of a body is read (and dropped) after the answer, before
            # the connection closes: a stalled client gets no more than a stalled body would.
            lingering_time=self.config.body_timeout,
        )
        self._runner = runner
        try:
            await runner.setup()
            connections = self.app[CONNECTIONS_KEY]
            site = GuardedSite(
                runner, self.config.host, self.config.port, connections, backlog=_BACKLOG
            )
            await site.start()
        except BaseException:
            await self.aclose()
            raise
        port = runner.addresses[0][1]
        self._base_url = f"http://{_url_host(self.config.host)}:{port}"
        if not _is_loopback(self.config.host):
            logger.warning(
                "the emulator listens on %s:%d, which other machines can reach: anyone who "
                "can reach it and knows its API key can use it (bind 127.0.0.1 otherwise)",
                self.config.host or "*",
                port,
            )
        self._engine.base_url = self._base_url
        self._engine.start()

    async def aclose(self) -> None:
        """Disconnect every socket, stop serving, cancel simulations, delete files (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._sockets.aclose()
            await self._engine.aclose()
            if self._runner is not None:
                await self._runner.cleanup()
        finally:
            tmp = self._engine.tmp_dir
            if tmp is not None:
                await asyncio.to_thread(shutil.rmtree, tmp, True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a wildcard ("") or a name: assume it is reachable


def _url_host(host: str) -> str:
    if host in _WILDCARD_HOSTS:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
