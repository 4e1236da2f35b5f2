"""The emulator's configuration: one frozen dataclass shared by Python callers and the CLI."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from .errors import ConfigError
from .faults import FaultPlan

__all__ = ["Dialect", "EmulatorConfig"]

Dialect = Literal["canonical", "legacy"]

_DIALECTS = ("canonical", "legacy")
# An origin as browsers send it: scheme, host and an optional port, nothing after.
_ORIGIN = re.compile(r"https?://(\[[0-9a-fA-F:.]+\]|[^/\s:\[\]]+)(:[0-9]{1,5})?")


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Every knob of the emulator. Each option has a CLI flag with the same meaning.

    Args:
        host: Bind address.
        port: TCP port; 0 picks a free one.
        api_key: The accepted Bearer token; `None` generates `wr_emu_<32 hex>`.
        inline_wait: Seconds run-task and newTask hold the request before answering pending.
        rate_limit: `(count, seconds)` sliding window per task endpoint, or `None` for no limit.
        account_rate_limit: `(count, seconds)` window shared by the profile and environment
            endpoints, per client IP, or `None`.
        instances: Browser pool size (each live session holds one); `None` is unlimited.
        task_duration: Simulated seconds a task runs without a `[[duration=…]]` directive.
        session_timeout: Seconds of inactivity after which an idle session expires.
        balance: Starting account balance in USD.
        dialect: `"canonical"` answers, or the `"legacy"` documented shapes.
        strict: Reject out-of-range values and queueing instead of being lenient.
        max_upload_bytes: Cap on each uploaded file and profile archive.
        signed_url_ttl: Seconds a profile download URL stays valid.
        instance_grace: Seconds a session survives a lost browser instance before it ends with
            reason `instance_lost` (announced as `gracePeriod` in milliseconds).
        sockets: Accept socket.io connections; when false every connection is refused with
            "Socket connections are disabled" (REST is unaffected).
        cors_origins: Origins (`scheme://host[:port]`) whose web pages may open socket.io
            connections, for browser demos; `("*",)` allows any. By default only pages served
            by the emulator itself (same origin); clients that send no `Origin` (servers,
            scripts) are never affected.
        header_timeout: Seconds a client has, from the first byte of a request, to send all of
            its headers; the connection is closed otherwise.
        body_timeout: Seconds a request body may pause between two reads before the answer is
            408 `REQUEST_TIMEOUT` and the connection is closed.
        faults: Misbehaviour to inject (errors, resets, slow or malformed answers, dropped,
            duplicated or reordered socket events, lost instances, cut streams); see
            `FaultPlan`. It can also be changed while running: `Emulator.faults`.
    """

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str | None = None
    inline_wait: float = 50.0
    rate_limit: tuple[int, float] | None = (10, 60.0)
    account_rate_limit: tuple[int, float] | None = (100, 900.0)
    instances: int | None = None
    task_duration: float = 1.0
    session_timeout: float = 300.0
    balance: float = 100.0
    dialect: Dialect = "canonical"
    strict: bool = False
    max_upload_bytes: int = 500 * 1024 * 1024
    signed_url_ttl: float = 3600.0
    instance_grace: float = 300.0
    sockets: bool = True
    cors_origins: tuple[str, ...] = ()
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    faults: FaultPlan | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError("port", "must be between 0 and 65535")
        if self.api_key is not None and (not self.api_key or self.api_key != self.api_key.strip()):
            raise ConfigError("api_key", "must be a non-empty token without surrounding spaces")
        _non_negative("inline_wait", self.inline_wait)
        _window("rate_limit", self.rate_limit)
        _window("account_rate_limit", self.account_rate_limit)
        if self.instances is not None and self.instances < 0:
            raise ConfigError("instances", "must be >= 0")
        _non_negative("task_duration", self.task_duration)
        _non_negative("session_timeout", self.session_timeout)
        if self.session_timeout == 0:
            raise ConfigError("session_timeout", "must be > 0")
        if not math.isfinite(self.balance):
            raise ConfigError("balance", "must be a finite number")
        if self.dialect not in _DIALECTS:
            raise ConfigError("dialect", f"must be one of {', '.join(_DIALECTS)}")
        if self.max_upload_bytes < 1:
            raise ConfigError("max_upload_bytes", "must be >= 1")
        _non_negative("signed_url_ttl", self.signed_url_ttl)
        _non_negative("instance_grace", self.instance_grace)
        _positive("header_timeout", self.header_timeout)
        _positive("body_timeout", self.body_timeout)
        given: object = self.cors_origins  # a caller may pass one string by mistake
        if isinstance(given, str):
            raise ConfigError("cors_origins", "must be a sequence of origins, not one string")
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        for origin in self.cors_origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ConfigError(
                    "cors_origins", f"{origin!r} is not an origin like http://localhost:3000"
                )


def _non_negative(field: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ConfigError(field, "must be a finite number >= 0")


def _positive(field: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(field, "must be a finite number > 0")


def _window(field: str, value: tuple[int, float] | None) -> None:
    if value is None:
        return
    count, seconds = value
    if count < 1:
        raise ConfigError(field, "count must be >= 1")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(field, "window must be > 0 seconds")
