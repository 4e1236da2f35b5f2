"""``AsyncWebRun``: the client, its options and lifecycle."""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, Unpack, overload
from urllib.parse import urlsplit

from webrun_async._core.backend import require_asyncio
from webrun_async._core.config import RateLimits, RetryPolicy, Timeouts
from webrun_async._core.exceptions import (
    ClientClosedError,
    ConfigurationError,
    GuardrailTriggered,
    UsageError,
)
from webrun_async._core.params import TaskOptions
from webrun_async._core.transport import Transport
from webrun_async._tasks.handle import GuardrailCallback, TaskHandle
from webrun_async._tasks.runtime import FollowMode, Runtime, RuntimeOptions
from webrun_async._tasks.work import uncancellable

from ._core.codec import decoder
from .resources._base import ResourceContext
from .resources.chat import Chat, Completions
from .resources.environments import Environments, Profiles
from .resources.files import Files
from .resources.models import Models
from .resources.sessions import Sessions
from .resources.tasks import Tasks
from .types.models import Health
from .types.tasks import Proxy, ReachOutMode, TaskResult

__all__ = ["DEFAULT_BASE_URL", "AsyncWebRun", "ClientStats"]

T = TypeVar("T")

DEFAULT_BASE_URL = "https://connect.webrun.ai"

_decode_health = decoder(Health)
_MODES = ("auto", "socket", "poll")


@dataclass(frozen=True, slots=True)
class ClientStats:
    """What a client is doing now (``client.stats``), for status lines and dashboards.

    Attributes:
        live_sessions: Sessions it looks after (terminated when it closes).
        followed_tasks: Handles still waiting for their outcome.
        spent: USD spent so far by tasks run through handles.
        rate_limit_waiting: Requests the client-side rate limiter holds back now.
        rate_limit_wait: Seconds until the current hold ends (0 when nothing is held).
        rate_limit_waited: Seconds requests spent held back so far, added up.
        rate_limit_held: Requests that had to wait so far.
        unreachable_for: Seconds the API has not accepted connections (0 while it does).
    """

    live_sessions: int
    followed_tasks: int
    spent: float
    rate_limit_waiting: int
    rate_limit_wait: float
    rate_limit_waited: float
    rate_limit_held: int
    unreachable_for: float


def _positive(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"{name} must be a positive number, got {value!r}")


def _count(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an int of 1 or more, got {value!r}")


class AsyncWebRun:
    """The asyncio client of the WebRun API.

    One client holds one connection pool and one task group for background work; share it
    across your application. Use it as ``async with AsyncWebRun() as client:`` so that every
    session it started is terminated, and its pool and sockets closed, on the way out,
    whatever happens inside the block. (Without ``async with``, call :meth:`aclose`.)

    Args:
        api_key: Your API key; ``WEBRUN_API_KEY`` when not given.
        base_url: The API root; ``WEBRUN_BASE_URL``, else ``https://connect.webrun.ai``.
        timeout: A :class:`Timeouts`, or one number used as the read limit.
        max_retries: Retries after a failed attempt (overrides ``retry.max_retries``).
        retry: The full :class:`RetryPolicy`.
        rate_limit: The client-side :class:`RateLimits`; ``None`` turns the limiter off.
        max_connections: The connection pool size (requests beyond it queue in order).
        mode: How handles learn about their tasks: ``"auto"`` (socket.io while fewer than
            ``max_sockets`` are open, else polling), ``"socket"`` or ``"poll"``.
        max_sockets: The most socket.io connections open at once in ``"auto"`` mode. Each costs
            about 26 KB of client memory (``benchmarks/bench_fanout.py``); the default, 500,
            takes about 13 MB and stays, with the connection pool, under the common limit of
            1,024 open files. Raise both together for more.
        max_sessions: The most sessions this client runs at once; more wait their turn.
        max_cost: Stop all work once the tasks run through handles have cost this many USD.
        on_guardrail: ``async def(prompt) -> str | None`` answering the agents' questions by
            default (``None`` stops the task).
        poll_interval: Seconds between polls of a running task (plus up to 50% jitter).
        safety_poll_interval: Seconds between the safety-net polls of a task whose socket is
            connected (``"auto"`` mode).
        cleanup_timeout: Seconds that closing (and each other clean-up) may take.
        unreachable_timeout: Seconds the API may stay unreachable (no connection opens)
            before the handles waiting on it fail with :class:`APIConnectionError`; one
            warning is logged when it stops answering, one line when it is back.
        default_headers: Extra headers for every request.
        max_response_size: The largest answer, in bytes, read into memory (downloads and
            streams aside); a larger one raises :class:`APIResponseValidationError`.

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
        mode: FollowMode = "auto",
        max_sockets: int = 500,
        max_sessions: int | None = None,
        max_cost: float | None = None,
        on_guardrail: GuardrailCallback | None = None,
        poll_interval: float = 2.0,
        safety_poll_interval: float = 30.0,
        cleanup_timeout: float = 15.0,
        unreachable_timeout: float = 60.0,
        default_headers: Mapping[str, str] | None = None,
        max_response_size: int = 64 * 1024 * 1024,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("WEBRUN_API_KEY")
        if not isinstance(key, str) or not key.strip():
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
        if parts.path.rstrip("/").endswith("/v1"):
            # The OpenAI-compatible habit; here every endpoint but chat lives at the root.
            root = url.rstrip("/").removesuffix("/v1")
            raise ConfigurationError(
                f"base_url ends in /v1: give the API root ({root!r}); the SDK adds /v1 itself "
                "for chat, and the other endpoints live at the root"
            )
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
        if mode not in _MODES:
            raise ConfigurationError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
        _count("max_connections", max_connections)
        _count("max_sockets", max_sockets)
        _count("max_response_size", max_response_size)
        _count("max_sessions", max_sessions, allow_none=True)
        _positive("max_cost", max_cost, allow_none=True)
        _positive("poll_interval", poll_interval)
        _positive("safety_poll_interval", safety_poll_interval)
        _positive("cleanup_timeout", cleanup_timeout)
        _positive("unreachable_timeout", unreachable_timeout)
        if on_guardrail is not None and not callable(on_guardrail):
            raise ConfigurationError("on_guardrail must be an async callable")
        self._transport = Transport(
            base_url=url,
            api_key=key,
            timeouts=Timeouts.of(timeout),
            retry=policy,
            rate_limits=rate_limit,
            max_connections=max_connections,
            headers=default_headers,
            max_response_size=max_response_size,
        )
        self._runtime = Runtime(
            self._transport,
            RuntimeOptions(
                mode=mode,
                max_sockets=max_sockets,
                max_sessions=max_sessions,
                max_cost=None if max_cost is None else float(max_cost),
                on_guardrail=on_guardrail,
                poll_interval=float(poll_interval),
                safety_poll_interval=float(safety_poll_interval),
                cleanup_timeout=float(cleanup_timeout),
                unreachable_timeout=float(unreachable_timeout),
            ),
        )
        self._entered = False

        ctx = ResourceContext(self._transport, self._runtime)
        self.sessions = Sessions(ctx)
        """Persistent sessions."""
        self.tasks = Tasks(ctx)
        """Task handles, one-shot tasks and task status."""
        self.files = Files(ctx)
        """Task file uploads."""
        self.profiles = Profiles(ctx)
        """Browser profiles."""
        self.environments = Environments(ctx)
        """Environments."""
        self.models = Models(ctx)
        """Models of the OpenAI-compatible API."""
        self.chat = Chat(Completions(ctx))
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
        """Sessions this client looks after and will terminate when it closes."""
        return self._runtime.live_sessions()

    @property
    def stats(self) -> ClientStats:
        """What the client is doing now: sessions, handles, money, rate-limit waits."""
        limiter = self._transport.limiter_stats()
        down = self._transport.unreachable()
        runtime = self._runtime
        return ClientStats(
            live_sessions=len(runtime.live_sessions_states()),
            followed_tasks=runtime.followed(),
            spent=runtime.spent,
            rate_limit_waiting=limiter.waiting,
            rate_limit_wait=limiter.wait,
            rate_limit_waited=limiter.waited,
            rate_limit_held=limiter.held,
            unreachable_for=down[0] if down is not None else 0.0,
        )

    @property
    def spent(self) -> float:
        """USD spent so far by the tasks run through handles (``run_task`` included)."""
        return self._runtime.spent

    async def __aenter__(self) -> AsyncWebRun:
        require_asyncio()
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
        """Stop background work, terminate every session still looked after, close the pool.

        Idempotent. Runs to its end even when the caller is cancelled meanwhile (the cancel is
        raised afterwards); each step is bounded by ``cleanup_timeout``.
        Handles still waiting then raise :class:`SessionTerminated`.
        """
        if self._transport.closed:
            return
        await uncancellable(self._close())

    async def _close(self) -> None:
        try:
            await self._runtime.aclose()
        finally:
            await self._transport.aclose()

    async def health(self) -> Health:
        """The service's health. The endpoint needs no key, so none is sent."""
        return await self._transport.request("GET", "/start/health", _decode_health, auth=False)

    @overload
    async def run_task(
        self,
        task_details: str,
        *,
        output_schema: type[T],
        max_cost: float | None = ...,
        on_guardrail: GuardrailCallback | None = ...,
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
        max_cost: float | None = ...,
        on_guardrail: GuardrailCallback | None = ...,
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
        max_cost: float | None = None,
        on_guardrail: GuardrailCallback | None = None,
        environment_id: str | None = None,
        profile_id: str | None = None,
        proxy: Proxy | None = None,
        policy_id: str | None = None,
        reach_out_mode: ReachOutMode | None = None,
        **options: Unpack[TaskOptions],
    ) -> TaskResult[Any]:
        """Run one task in its own session, wait for it, and return its result.

        ``client.tasks.submit(...)`` then ``await``: the answer comes from the held request,
        the session's socket or a poll, whichever is first. If this call is cancelled, or
        fails before the task is over, the task's session is terminated so that it stops
        costing money.

        Args:
            task_details: What the agent should do.
            output_schema: A type to decode structured output into (its JSON schema is
                sent), a JSON schema dict, or a list of CSV column names.
            max_cost: Stop the task once it has cost more than this many USD.
            on_guardrail: Answers the agent's questions; without one (here or on the client),
                a question ends the task's session and raises :class:`GuardrailTriggered`.
            environment_id: An environment (or profile) whose browser state to load.
            profile_id: Sent as ``profileId`` instead, for servers that expect that name.
            proxy: A proxy for the browser.
            policy_id: A policy that limits what the agent may do.
            reach_out_mode: ``"off"``, ``"guardrail_only"`` or ``"full"``.
            **options: Task options (:class:`TaskOptions`), e.g. ``starting_url``,
                ``max_duration`` (seconds), ``secrets``, ``files``.

        Raises:
            InvalidParameterError: Bad input; nothing was started.
            TaskFailed: The task failed; ``.code`` says why.
            GuardrailTriggered: The agent asked for input and nothing answered it.
            SessionTerminated: The session ended first.
            BudgetExceeded: A ``max_cost`` was crossed (the work was stopped).
            TaskTimeoutError: The task outlived its deadline (it was stopped).
            OutputValidationError: The output does not match ``output_schema``.
            APIError: A request failed.
        """
        handle = self.tasks.submit(
            task_details,
            output_schema=output_schema,
            max_cost=max_cost,
            on_guardrail=on_guardrail,
            environment_id=environment_id,
            profile_id=profile_id,
            proxy=proxy,
            policy_id=policy_id,
            reach_out_mode=reach_out_mode,
            **options,
        )
        try:
            return await handle
        except GuardrailTriggered as exc:
            # Nobody can answer a one-shot task here: end it rather than let it wait and cost.
            await handle.terminate()
            raise GuardrailTriggered(
                exc.value,
                kind=exc.kind,
                session_id=exc.session_id,
                task_id=exc.task_id,
                usage=exc.usage,
            ) from None
        except BaseException:
            if not handle.final:  # this call was cancelled: the task must not run on
                await handle.cancel()
            raise

    async def as_completed(self, handles: Iterable[TaskHandle[T]]) -> AsyncIterator[TaskHandle[T]]:
        """Yield the handles as they complete (or fail); ``await`` each for its outcome.

        Leaving the loop early (``break``, an error, a cancel) leaves the other handles
        running, and they no longer report to this iterator.
        """
        pending = list(dict.fromkeys(handles))
        ready: deque[TaskHandle[T]] = deque()
        seen: set[int] = set()
        wake: asyncio.Future[None] | None = None

        def done(handle: TaskHandle[T]) -> None:
            nonlocal wake
            if id(handle) not in seen:
                seen.add(id(handle))
                ready.append(handle)
                if wake is not None and not wake.done():
                    wake.set_result(None)

        for handle in pending:
            handle.add_done_callback(done)
        try:
            for _ in pending:
                while not ready:
                    wake = asyncio.get_running_loop().create_future()
                    await wake
                yield ready.popleft()
        finally:
            for handle in pending:
                handle.remove_done_callback(done)

    async def gather(self, *handles: TaskHandle[Any], return_exceptions: bool = False) -> list[Any]:
        """Wait for every handle; results in the order given.

        Args:
            return_exceptions: Put errors in the list instead of raising the first one.

        Raises:
            The first error to arrive, unless ``return_exceptions``; the other handles keep
            running.
        """
        async for handle in self.as_completed(handles):
            if not return_exceptions and handle.done():
                try:
                    await handle
                except Exception:
                    raise  # the first error to arrive
        results: list[Any] = []
        for handle in handles:
            try:
                results.append(await handle)
            except Exception as exc:
                if not return_exceptions:
                    raise
                results.append(exc)
        return results
