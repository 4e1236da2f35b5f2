"""HTTP transport: one aiohttp session, fair admission, rate limits, retries, typed errors.

Every request of the SDK goes through :meth:`Transport.request` (whole answers) or
:meth:`Transport.stream` (answers read as they arrive). aiohttp exceptions are translated into
the SDK's error tree in exactly one place, :func:`~webrun_async._core.error_mapping.translate`.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, TypeVar
from urllib.parse import urlsplit

import aiohttp
import anyio
import msgspec

from webrun_async._core.backend import require_asyncio
from webrun_async._core.config import RateLimits, RetryPolicy, Timeouts
from webrun_async._core.error_mapping import (
    AttemptFailed,
    ErrorAnswer,
    own_error,
    should_retry_status,
    status_error,
    translate,
    translate_error,
)
from webrun_async._core.exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    ClientClosedError,
    GuardrailTriggered,
)
from webrun_async._core.gate import FifoGate
from webrun_async._core.ratelimit import LimiterStats, RateLimiter, parse_retry_after
from webrun_async._core.reachability import Reachability
from webrun_async._version import __version__

__all__ = ["Body", "OpenResponse", "Transport", "translate_error"]

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger("webrun_async")

Body = bytes | aiohttp.FormData | Callable[[], aiohttp.FormData] | None
"""A request body: JSON bytes, or a multipart form (a factory when it must be rebuilt per try)."""

_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "DELETE", "PUT", "OPTIONS"})
_JSON_HEADERS: Final = {"Content-Type": "application/json"}


class OpenResponse:
    """A response whose body is read as it arrives; it holds its pool place until closed."""

    __slots__ = ("_gate", "_response", "method", "path")

    def __init__(
        self, response: aiohttp.ClientResponse, gate: FifoGate, method: str, path: str
    ) -> None:
        self._response = response
        self._gate: FifoGate | None = gate
        self.method = method
        self.path = path

    @property
    def content_length(self) -> int | None:
        """The announced size of the body, if any."""
        return self._response.content_length

    @property
    def content_type(self) -> str:
        """The media type of the answer, e.g. ``text/event-stream``."""
        return self._response.content_type

    async def read_chunk(self) -> bytes:
        """The next bytes of the body as they arrive; ``b""`` at the end.

        Raises:
            APIConnectionError: The connection broke or timed out.
        """
        try:
            return await self._response.content.readany()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise translate_error(exc, self.method, self.path) from exc

    async def read_all(self) -> bytes:
        """The rest of the body (for error answers)."""
        try:
            return await self._response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise translate_error(exc, self.method, self.path) from exc

    def close(self, *, complete: bool = False) -> None:
        """Give back the pool place; a body not read to the end closes its connection."""
        if complete:
            self._response.release()
        else:
            self._response.close()
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.release()


class Transport:
    """Owns the client's one aiohttp session and sends every request through it."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeouts: Timeouts,
        retry: RetryPolicy,
        rate_limits: RateLimits | None,
        max_connections: int,
        headers: Mapping[str, str] | None = None,
        max_response_size: int = 64 * 1024 * 1024,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_response_size = max_response_size
        self.timeouts = timeouts
        self.retry = retry
        self._limiter = RateLimiter(rate_limits) if rate_limits is not None else None
        self._refusing = False
        self.reachability = Reachability(base_url)
        self.max_connections = max_connections
        self._gate = FifoGate(max_connections)
        self._headers = {
            **(headers or {}),
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": (
                f"webrun-async/{__version__} python/{platform.python_version()} "
                f"aiohttp/{aiohttp.__version__}"
            ),
        }
        self._anonymous = {k: v for k, v in self._headers.items() if k != "Authorization"}
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._timeouts: dict[tuple[float | None, bool], aiohttp.ClientTimeout] = {}

    def __repr__(self) -> str:
        return f"Transport(base_url={self.base_url!r})"

    def _timeout_for(self, read_timeout: float | None, upload: bool) -> aiohttp.ClientTimeout:
        """The aiohttp limits of one attempt: an answer must arrive within the read limit of
        the attempt's start (one timer per request; a per-read limit re-arms a timer on every
        read, a cost on the hot path), while an upload's applies between reads of the answer.
        """
        key = (read_timeout, upload)
        timeout = self._timeouts.get(key)
        if timeout is None:
            limits = self.timeouts
            read = limits.read if read_timeout is None else read_timeout
            if upload:
                timeout = aiohttp.ClientTimeout(
                    total=limits.total, sock_connect=limits.connect, sock_read=read
                )
            else:
                total = read if limits.total is None else min(read or limits.total, limits.total)
                timeout = aiohttp.ClientTimeout(total=total, sock_connect=limits.connect)
            self._timeouts[key] = timeout
        return timeout

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    def unreachable(self) -> tuple[float, APIConnectionError] | None:
        """``(seconds, last error)`` while no connection to the API could be opened lately."""
        return self.reachability.down()

    def refuse_new_work(self) -> None:
        """From now on, send no request that starts work (those in a rate-limit window:
        start-session, send-message, run-task, uploads, chat); requests waiting in the limiter
        and later ones raise :class:`ClientClosedError`. Clean-up (terminating, polls) goes on.
        """
        self._refusing = True
        if self._limiter is not None:
            self._limiter.close()

    def check_may_start(self, bucket: str | None) -> None:
        """Raise :class:`ClientClosedError` for a request that starts work once closing."""
        if bucket is not None and self._refusing:
            raise ClientClosedError("the client is closing: this request was not sent")

    def limiter_stats(self) -> LimiterStats:
        """What the client-side rate limiter is doing (all zero without one)."""
        return self._limiter.stats() if self._limiter is not None else LimiterStats()

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared aiohttp session, opened on first use.

        Raises:
            ClientClosedError: The transport was closed.
        """
        if self._closed:
            raise ClientClosedError("the client is closed; create a new AsyncWebRun")
        if self._session is None:
            require_asyncio()
            # The FIFO gate bounds concurrent requests to max_connections. The connector itself
            # is unbounded: the session's socket.io websockets share it and each holds its
            # connection for as long as it is open, so a shared limit would let open sockets
            # starve every request (and the gate already serves requests in arrival order).
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout_for(None, False), raise_for_status=False
            )
        return self._session

    async def aclose(self) -> None:
        """Close the connection pool. Idempotent."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            with anyio.CancelScope(shield=True):
                await session.close()

    async def request(
        self,
        method: str,
        path: str,
        parse: Callable[[bytes], T],
        *,
        body: Body = None,
        read_timeout: float | None = None,
        bucket: str | None = None,
        auth: bool = True,
        retryable: bool = True,
        idempotent: bool | None = None,
        min_retries: int = 0,
    ) -> T:
        """Send a request with retries and decode its answer with ``parse``.

        Args:
            method: The HTTP method.
            path: The path under the base URL (already validated by the caller).
            parse: Turns the answer's bytes into the result; msgspec errors it raises become
                :class:`APIResponseValidationError`.
            body: JSON bytes or a multipart form.
            read_timeout: A longer read limit for endpoints that stay silent while they work
                (see :meth:`Timeouts.read_for`); the configured one otherwise.
            bucket: The rate-limit window the request counts against.
            auth: Send the API key.
            retryable: ``False`` when the body cannot be sent twice (a single-use stream).
            idempotent: Whether sending the request twice is harmless (e.g. terminating a
                session), which allows the retries of a GET; by default, from the method.
            min_retries: Retry at least this many times, whatever the policy's ``max_retries``
                (for clean-up, which must not give up early); ``max_elapsed`` still applies.

        Raises:
            APIError: The request failed for good (a subclass says how).
        """

        started = time.monotonic()
        failed: AttemptFailed | ErrorAnswer | None = None
        try:
            # The first attempt is made directly: most requests need no retry, and every
            # coroutine frame a waiting request holds costs the garbage collector later.
            status, data = await self._exchange(method, path, body, read_timeout, bucket, auth)
        except (AttemptFailed, ErrorAnswer) as exc:
            failed = exc
        if failed is not None:  # outside the handler: the final error has no internal context

            async def attempt() -> tuple[int, bytes]:
                return await self._exchange(method, path, body, read_timeout, bucket, auth)

            status, data = await self._retrying(
                method,
                path,
                attempt,
                retryable=retryable,
                idempotent=idempotent,
                min_retries=min_retries,
                first_failure=failed,
                started=started,
            )
        try:
            return parse(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise APIResponseValidationError(
                f"could not decode the answer: {exc}", method=method, path=path, status=status
            ) from None

    def same_origin(self, url: str) -> bool:
        """Whether ``url`` is on the API's own scheme, host and port (the key may go there)."""
        here, there = urlsplit(self.base_url), urlsplit(url)
        return (here.scheme, here.netloc) == (there.scheme, there.netloc)

    async def stream(
        self,
        method: str,
        path: str,
        *,
        body: Body = None,
        first_byte_timeout: float | None = None,
        bucket: str | None = None,
        auth: bool = True,
    ) -> OpenResponse:
        """Send a request with retries until its headers arrive; the body is read later.

        ``path`` may also be an absolute URL (a signed download URL, say): errors then name its
        path only, never its query. The caller must :meth:`OpenResponse.close` the answer.
        Retries follow the same rules as :meth:`request`; none once the headers are in.

        Raises:
            APIError: The request failed for good (a subclass says how).
        """
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        path = urlsplit(url).path or "/"
        base_headers = self._headers if auth else self._anonymous
        limiter = self._limiter if bucket is not None else None
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeouts.connect, sock_read=first_byte_timeout
        )

        async def attempt() -> OpenResponse:
            if limiter is not None:
                await limiter.acquire(bucket)  # type: ignore[arg-type]
            self.check_may_start(bucket)
            session = self.session
            headers = base_headers
            if isinstance(body, bytes):
                headers = {**headers, **_JSON_HEADERS}
            data = body() if callable(body) else body
            await self._gate.acquire()
            try:
                response = await session.request(
                    method, url, data=data, headers=headers, timeout=timeout
                )
            except BaseException as exc:
                self._gate.release()
                if isinstance(exc, aiohttp.ClientError | TimeoutError | OSError):
                    raise translate(exc, method, path) from exc
                raise
            opened = OpenResponse(response, self._gate, method, path)
            if limiter is not None:
                limiter.observe(bucket, response.status, response.headers)  # type: ignore[arg-type]
            if response.status >= 400:
                try:
                    payload = await opened.read_all()
                finally:
                    opened.close()
                raise ErrorAnswer(response.status, response.reason, response.headers, payload)
            return opened

        return await self._retrying(method, path, attempt)

    async def _retrying(
        self,
        method: str,
        path: str,
        attempt: Callable[[], Awaitable[R]],
        *,
        retryable: bool = True,
        idempotent: bool | None = None,
        min_retries: int = 0,
        first_failure: AttemptFailed | ErrorAnswer | None = None,
        started: float | None = None,
    ) -> R:
        """Run ``attempt`` until it succeeds or the retry policy gives up (``first_failure``:
        an attempt already made, at ``started``, failed)."""
        if idempotent is None:
            idempotent = method in _IDEMPOTENT
        if started is None:
            started = time.monotonic()
        max_retries = max(self.retry.max_retries, min_retries)
        retry = 0
        failed = first_failure
        while True:
            if failed is None:
                try:
                    result = await attempt()
                except (AttemptFailed, ErrorAnswer) as exc:
                    failed = exc
                else:
                    self.reachability.answered()
                    return result
            failure: APIError | GuardrailTriggered
            if isinstance(failed, AttemptFailed):
                failure = failed.error
                can_retry = idempotent or not failed.maybe_sent
                retry_after = None
                if not failed.maybe_sent:
                    self.reachability.failed(failure)
            else:
                self.reachability.answered()
                failure = status_error(
                    method, path, failed.status, failed.reason, failed.headers, failed.data
                )
                can_retry = should_retry_status(failed.status, idempotent)
                retry_after = parse_retry_after(failed.headers)
            failed = None
            delay = self.retry.delay(retry, retry_after)
            elapsed = time.monotonic() - started
            if (
                not retryable
                or not can_retry
                or retry >= max_retries
                or elapsed + delay > self.retry.max_elapsed
            ):
                raise failure
            retry += 1
            logger.log(
                logging.DEBUG if self.reachability.is_down else logging.WARNING,
                "%s %s failed (%s); retry %d of %d in %.2f s",
                method,
                path,
                failure,
                retry,
                max_retries,
                delay,
            )
            await anyio.sleep(delay)

    async def _read_capped(self, resp: aiohttp.ClientResponse, method: str, path: str) -> bytes:
        """The whole answer, refused once it passes ``max_response_size`` (a misbehaving
        server or proxy must not exhaust the client's memory)."""
        limit = self.max_response_size
        length = resp.content_length
        if length is not None and length <= limit:
            return await resp.read()  # the usual case: the size is known and reasonable
        if length is None:
            parts: list[bytes] = []
            size = 0
            while chunk := await resp.content.readany():
                size += len(chunk)
                if size > limit:
                    break
                parts.append(chunk)
            else:
                return b"".join(parts)
        raise APIResponseValidationError(
            f"the answer is larger than max_response_size ({limit:,} bytes)",
            method=method,
            path=path,
            status=resp.status,
        )

    async def _exchange(
        self,
        method: str,
        path: str,
        body: Body,
        read_timeout: float | None,
        bucket: str | None,
        auth: bool,
    ) -> tuple[int, bytes]:
        """One attempt: wait for the rate limit and a pool place, send, read the whole answer.

        Raises:
            AttemptFailed: No answer arrived.
            ErrorAnswer: The answer has an error status.
        """
        limiter = self._limiter if bucket is not None else None
        if limiter is not None:
            await limiter.acquire(bucket)  # type: ignore[arg-type]
        self.check_may_start(bucket)
        session = self.session
        headers = self._headers if auth else None
        if isinstance(body, bytes):
            headers = {**(headers or {}), **_JSON_HEADERS}
        data = body() if callable(body) else body
        timeout = self._timeout_for(read_timeout, upload=isinstance(data, aiohttp.FormData))
        started = time.perf_counter()
        await self._gate.acquire()
        try:
            async with session.request(
                method,
                self.base_url + path,
                data=data,
                headers=headers,
                timeout=timeout,
            ) as resp:
                status, reason, resp_headers = resp.status, resp.reason, resp.headers
                payload = await self._read_capped(resp, method, path)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            own = own_error(exc)
            if own is not None:
                raise own from None  # e.g. an upload's source broke a limit while being sent
            raise translate(exc, method, path) from exc
        finally:
            self._gate.release()
        if limiter is not None:
            limiter.observe(bucket, status, resp_headers)  # type: ignore[arg-type]
        if logger.isEnabledFor(logging.DEBUG):
            elapsed_ms = (time.perf_counter() - started) * 1e3
            logger.debug("%s %s -> %d in %.1f ms", method, path, status, elapsed_ms)
        if status >= 400:
            raise ErrorAnswer(status, reason, resp_headers, payload)
        return status, payload
