"""``AsyncWebRun``: the client, its lifecycle and the sessions it must not leak."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar, Unpack, overload
from urllib.parse import urlsplit

import anyio

from ._config import RateLimits, RetryPolicy, Timeouts
from ._exceptions import (
    APIStatusError,
    ClientClosedError,
    ConfigurationError,
    InvalidParameterError,
    OutputValidationError,
    SessionTerminated,
    TaskFailed,
    UsageError,
)
from ._params import TaskOptions, session_fields
from ._transport import Transport
from .resources._base import decoder, encode
from .resources.chat import Chat, Completions
from .resources.environments import Environments, Profiles
from .resources.files import Files
from .resources.models import Models
from .resources.sessions import SEND_MESSAGE, Sessions, new_task, start_session
from .resources.tasks import Tasks, task_deadline
from .types.common import Ack
from .types.models import Health
from .types.sessions import SendMessageRequest, StartSessionRequest, StateChange
from .types.tasks import Proxy, ReachOutMode, TaskResult

__all__ = ["DEFAULT_BASE_URL", "AsyncWebRun"]

logger = logging.getLogger("webrun_async")

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_BASE_URL = "https://connect.webrun.ai"

_decode_health = decoder(Health)
_decode_ack = decoder(Ack)
_TERMINATE = StateChange(new_state="terminate")


class AsyncWebRun:
    """The asyncio client of the WebRun API.

    One client holds one connection pool; share it across your application. Use it as
    ``async with AsyncWebRun() as client:`` so that every session it started is terminated
    and the pool closed on the way out, whatever happens inside the block.

    Args:
        api_key: Your API key; ``WEBRUN_API_KEY`` when not given.
        base_url: The API root; ``WEBRUN_BASE_URL``, else ``https://connect.webrun.ai``.
        timeout: A :class:`Timeouts`, or one number used as the read limit.
        max_retries: Retries after a failed attempt (overrides ``retry.max_retries``).
        retry: The full :class:`RetryPolicy`.
        rate_limit: The client-side :class:`RateLimits`; ``None`` turns the limiter off.
        max_connections: The connection pool size (requests beyond it queue in order).
        poll_interval: Seconds between polls of a running task (plus up to 50% jitter).
        cleanup_timeout: Seconds that closing may spend terminating sessions.
        default_headers: Extra headers for every request.

    Raises:
        ConfigurationError: No API key, or an invalid option.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: Timeouts | float | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        rate_limit: RateLimits | None = RateLimits(),  # noqa: B008 - frozen, shared safely
        max_connections: int = 100,
        poll_interval: float = 2.0,
        cleanup_timeout: float = 15.0,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("WEBRUN_API_KEY")
        if not key or not key.strip():
            raise ConfigurationError(
                "no API key: pass AsyncWebRun(api_key=...) or set WEBRUN_API_KEY "
                "(or run against the built-in emulator: webrun_async.emulator.Emulator)"
            )
        url = base_url or os.environ.get("WEBRUN_BASE_URL") or DEFAULT_BASE_URL
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(f"base_url must be an http(s) URL, got {url!r}")
        if parts.query or parts.fragment:
            raise ConfigurationError("base_url must not have a query or fragment")
        policy = retry if retry is not None else RetryPolicy()
        if max_retries is not None:
            policy = RetryPolicy(
                max_retries=max_retries,
                initial_backoff=policy.initial_backoff,
                max_backoff=policy.max_backoff,
                max_retry_after=policy.max_retry_after,
                max_elapsed=policy.max_elapsed,
                wait=policy.wait,
            )
        if rate_limit is not None and not isinstance(rate_limit, RateLimits):
            raise ConfigurationError("rate_limit must be a RateLimits or None")
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise ConfigurationError("max_connections must be an int")
        if max_connections < 1:
            raise ConfigurationError("max_connections must be 1 or more")
        for name, value in (("poll_interval", poll_interval), ("cleanup_timeout", cleanup_timeout)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigurationError(f"{name} must be a positive number of seconds")
        self._transport = Transport(
            base_url=url,
            api_key=key,
            timeouts=Timeouts.of(timeout),
            retry=policy,
            rate_limits=rate_limit,
            max_connections=max_connections,
            headers=default_headers,
        )
        self._poll_interval = float(poll_interval)
        self._cleanup_timeout = float(cleanup_timeout)
        self._live: dict[str, None] = {}  # insertion-ordered set of sessions to terminate
        self._orphans: set[asyncio.Future[Any]] = set()  # see _create_safely
        self._entered = False

        self.sessions = Sessions(self)
        """Persistent sessions."""
        self.tasks = Tasks(self)
        """One-shot tasks and task status."""
        self.files = Files(self)
        """Task file uploads."""
        self.profiles = Profiles(self)
        """Browser profiles."""
        self.environments = Environments(self)
        """Environments."""
        self.models = Models(self)
        """Models of the OpenAI-compatible API."""
        self.chat = Chat(Completions(self))
        """The OpenAI-compatible chat API."""

    def __repr__(self) -> str:
        state = "closed" if self._transport.closed else "open"
        return f"AsyncWebRun(base_url={self._transport.base_url!r}, {state})"

    @property
    def base_url(self) -> str:
        """The API root this client talks to."""
        return self._transport.base_url

    @property
    def live_sessions(self) -> list[str]:
        """Sessions this client started (or attached) and will terminate when it closes."""
        return list(self._live)

    async def __aenter__(self) -> AsyncWebRun:
        if self._transport.closed:
            raise ClientClosedError("the client is closed; create a new AsyncWebRun")
        if self._entered:
            raise UsageError("this client is already in use by an 'async with' block")
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Terminate every session this client still looks after, then close the pool.

        Idempotent. Shielded from cancellation and bounded by ``cleanup_timeout``.
        """
        if self._transport.closed:
            return
        try:
            if self._orphans:  # requests whose caller went away: let them finish, then reap
                with anyio.CancelScope(shield=True), anyio.move_on_after(self._cleanup_timeout):
                    while self._orphans:
                        await asyncio.wait(set(self._orphans))
            live = list(self._live)
            if live:
                with anyio.CancelScope(shield=True), anyio.move_on_after(self._cleanup_timeout):
                    async with anyio.create_task_group() as tg:
                        for session_id in live:
                            tg.start_soon(self._end_session, session_id)
                left = list(self._live)
                if left:
                    logger.error(
                        "could not confirm termination of %d session(s) within %.0f s: %s",
                        len(left),
                        self._cleanup_timeout,
                        ", ".join(left),
                    )
        finally:
            await self._transport.aclose()

    async def health(self) -> Health:
        """The service's health (no API key needed)."""
        return await self._transport.request("GET", "/start/health", _decode_health)

    @overload
    async def run_task(
        self,
        task_details: str,
        *,
        output_schema: type[T],
        environment_id: str | None = ...,
        profile_id: str | None = ...,
        proxy: Proxy | None = ...,
        policy_id: str | None = ...,
        reach_out_mode: ReachOutMode | None = ...,
        **options: Unpack[TaskOptions],
    ) -> TaskResult[T]: ...

    @overload
    async def run_task(
        self,
        task_details: str,
        *,
        output_schema: dict[str, Any] | list[str] | None = ...,
        environment_id: str | None = ...,
        profile_id: str | None = ...,
        proxy: Proxy | None = ...,
        policy_id: str | None = ...,
        reach_out_mode: ReachOutMode | None = ...,
        **options: Unpack[TaskOptions],
    ) -> TaskResult[Any]: ...

    async def run_task(
        self,
        task_details: str,
        *,
        output_schema: Any = None,
        environment_id: str | None = None,
        profile_id: str | None = None,
        proxy: Proxy | None = None,
        policy_id: str | None = None,
        reach_out_mode: ReachOutMode | None = None,
        **options: Unpack[TaskOptions],
    ) -> TaskResult[Any]:
        """Run one task in its own session, wait for it, and return its result.

        The answer comes inline when the task finishes within the server's 50 s hold, else by
        polling. The session ends with the task. If this call is cancelled or fails before
        the task is over, the session is terminated so that it stops costing money.

        Args:
            task_details: What the agent should do.
            output_schema: A type to decode structured output into (its JSON schema is
                sent), a JSON schema dict, or a list of CSV column names.
            environment_id: An environment (or profile) whose browser state to load.
            profile_id: Sent as ``profileId`` instead, for servers that expect that name.
            proxy: A proxy for the browser.
            policy_id: A policy that limits what the agent may do.
            reach_out_mode: ``"off"``, ``"guardrail_only"`` or ``"full"``.
            **options: Task options (:class:`TaskOptions`), e.g. ``starting_url``,
                ``max_duration`` (seconds), ``secrets``, ``files``.

        Raises:
            InvalidParameterError: Bad input; nothing was sent.
            TaskFailed: The task failed; ``.code`` says why.
            GuardrailTriggered: The agent asked for human input. A one-shot task cannot be
                answered, so its session is terminated; use a session to answer guardrails.
            SessionTerminated: The session ended first.
            TaskTimeoutError: The task outlived its deadline (and was terminated).
            OutputValidationError: The output does not match ``output_schema``.
            APIError: A request failed.
        """
        session = session_fields(
            environment_id=environment_id,
            profile_id=profile_id,
            proxy=proxy,
            policy_id=policy_id,
            reach_out_mode=reach_out_mode,
        )
        if options.get("terminate_on_completion", True) is not True:
            raise InvalidParameterError(
                "terminate_on_completion", "a one-shot task always ends its session; use a session"
            )
        message, spec = new_task(
            task_details, output_schema, {**options, "terminate_on_completion": True}
        )
        # start-session answers at once with the session id, so that whatever happens while
        # the task runs, the session can be terminated; run-task would reveal it only with its
        # held answer, up to 50 s later.
        info = await start_session(self, StartSessionRequest(**session))
        session_id = info.session_id
        try:
            status = await self.sessions.send(session_id, message)
            result = await self.tasks.until_final(
                status, spec, task_deadline(message.max_duration), responder=None
            )
        except BaseException as exc:
            if isinstance(exc, TaskFailed | SessionTerminated | OutputValidationError):
                self._untrack(session_id)  # the task is over: the session ended itself
            else:
                # Cancelled, timed out, cut off, or paused on a guardrail nobody can answer:
                # the session would run on and cost money.
                await self._end_session(session_id)
            raise
        self._untrack(session_id)  # completed: the session ended itself
        return result

    # -- session bookkeeping -----------------------------------------------------------------

    async def _create_safely(
        self, request: Awaitable[R], session_of: Callable[[R], str | None]
    ) -> R:
        """Await a request that creates a session so that cancelling the caller cannot leak it.

        The request runs in a task of its own. If the caller is cancelled before the answer
        arrives, the request is left to finish and the session it created is terminated then;
        :meth:`aclose` waits for that (within ``cleanup_timeout``).
        """
        task = asyncio.ensure_future(request)
        try:
            return await asyncio.shield(task)
        except BaseException:
            if not task.done():
                self._orphans.add(task)
                task.add_done_callback(functools.partial(self._orphan_done, session_of))
            raise

    def _orphan_done(
        self, session_of: Callable[[Any], str | None], task: asyncio.Task[Any]
    ) -> None:
        self._orphans.discard(task)
        if task.cancelled() or task.exception() is not None:
            return
        session_id = session_of(task.result())
        if session_id is not None:
            reaper = asyncio.ensure_future(self._end_session(session_id))
            self._orphans.add(reaper)
            reaper.add_done_callback(self._orphans.discard)

    def _track(self, session_id: str) -> None:
        if self._transport.closed:
            logger.error("session %s started while the client was closing", session_id)
        self._live[session_id] = None

    def _untrack(self, session_id: str, *, detached: bool = False) -> None:
        was_live = session_id in self._live
        self._live.pop(session_id, None)
        if was_live and detached:
            logger.info("session %s detached; it keeps running (and costing)", session_id)

    async def _cleanup(self, work: Awaitable[object], what: str) -> None:
        """Run clean-up work shielded from cancellation, bounded, logging (not raising) errors."""
        with anyio.CancelScope(shield=True):
            try:
                with anyio.fail_after(self._cleanup_timeout):
                    await work
            except Exception as exc:
                logger.error("clean-up failed while %s: %s", what, exc)

    async def _end_session(self, session_id: str) -> None:
        """Terminate a session as clean-up work; an already ended session counts as done."""
        if session_id not in self._live:
            return  # already terminated (e.g. by aclose), ended by itself, or detached

        async def terminate() -> None:
            try:
                # Clean-up skips the client-side rate limiter: leaving a session running is
                # worse than one request over the budget, which the server may still refuse.
                await self._transport.request(
                    "POST",
                    "/start/send-message",
                    _decode_ack,
                    body=encode(SendMessageRequest(session_id=session_id, message=_TERMINATE)),
                )
            except APIStatusError as exc:
                if exc.status not in (401, 404):  # 401/404: the session is already gone
                    raise
            self._untrack(session_id)
            logger.debug("terminated session %s (%s)", session_id, SEND_MESSAGE)

        await self._cleanup(terminate(), f"terminating session {session_id}")

