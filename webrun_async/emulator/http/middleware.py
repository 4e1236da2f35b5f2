"""The middleware chain and the per-route policy it enforces.

Middlewares, outermost first: request counting, error rendering, fault injection (between the
two, so that injected errors render like real ones), then the policy (auth and rate limits, in
the documented order). socket.io's own routes carry no policy and pass straight through, and
are not counted (socket activity has counters of its own).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from webrun_async.emulator.errors import ApiError
from webrun_async.emulator.faults import FaultPlan
from webrun_async.emulator.http.connections import CONNECTIONS_KEY
from webrun_async.emulator.http.ratelimit import SlidingWindow
from webrun_async.emulator.http.request import RATE_HEADERS_KEY, engine_of, json_response

__all__ = [
    "GUARDS_KEY",
    "MIDDLEWARES",
    "Guards",
    "Handler",
    "Policy",
    "add_rate_headers",
    "route_key",
]

logger = logging.getLogger("webrun_async.emulator")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Policy:
    """What a route demands before its handler runs.

    Args:
        auth: `"required"`, `"optional"` (a key, when sent, must be valid) or `"none"`.
        limit: `"endpoint"` (a window per endpoint for the account), `"ip"` (one window for all
            profile and environment routes, per client IP) or `None`.
        permission: A key permission the route needs.
    """

    auth: Literal["required", "optional", "none"] = "required"
    limit: Literal["endpoint", "ip"] | None = None
    permission: str | None = None


@dataclass(slots=True)
class Guards:
    """The policy of each API route and the rate-limit windows."""

    policies: dict[web.AbstractRoute, Policy]
    per_endpoint: SlidingWindow | None
    per_ip: SlidingWindow | None


GUARDS_KEY = web.AppKey("webrun_emulator_guards", Guards)


def route_key(request: web.Request) -> str:
    """`"METHOD /route/pattern"`, or `"unmatched"` when no route matched."""
    match = request.match_info
    if match.http_exception is not None:
        return "unmatched"
    resource = match.route.resource
    return f"{request.method} {resource.canonical}" if resource is not None else "unmatched"


@web.middleware
async def _count(request: web.Request, handler: Handler) -> web.StreamResponse:
    ended = request.app[CONNECTIONS_KEY].started(request)
    try:
        match = request.match_info
        # Only the API's own routes and unmatched requests: not socket.io's transport requests.
        if match.http_exception is not None or match.route in request.app[GUARDS_KEY].policies:
            engine_of(request).store.request_counts[route_key(request)] += 1
        return await handler(request)
    finally:
        ended()


@web.middleware
async def _render_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        error = exc
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = _from_http(exc)
    except ConnectionResetError:
        raise
    except Exception:
        transport = request.transport
        if transport is None or transport.is_closing():
            # The client went away mid-answer: nothing to tell it, and nothing went wrong here.
            logger.debug("%s: the client disconnected", route_key(request), exc_info=True)
            raise ConnectionResetError("the client disconnected") from None
        logger.exception("unhandled error in %s", route_key(request))
        error = ApiError(500, "Internal server error", "INTERNAL_ERROR")
    body = error.openai_body() if request.path.startswith("/v1/") else error.native_body()
    response = json_response(body, error.status, headers=error.headers)
    if error.status == 408:
        response.force_close()  # the rest of a stalled body is not waited for
    return response


def _from_http(exc: web.HTTPException) -> ApiError:
    known = {
        404: ("Not found", "NOT_FOUND"),
        405: ("Method not allowed", "METHOD_NOT_ALLOWED"),
        413: ("Request body too large", "PAYLOAD_TOO_LARGE"),
    }
    message, code = known.get(exc.status, (exc.reason, f"HTTP_{exc.status}"))
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return ApiError(exc.status, message, code, headers=headers)


_INJECTED_STATUS = {
    "500": ("Internal server error", "INTERNAL_ERROR"),
    "502": ("Bad gateway", "BAD_GATEWAY"),
    "503": ("Service temporarily unavailable", "SERVICE_UNAVAILABLE"),
    "504": ("Gateway timeout", "GATEWAY_TIMEOUT"),
}


@web.middleware
async def _inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Misbehave as the engine's fault plan says (see `faults`); API routes only."""
    route = request.match_info.route
    if route not in request.app[GUARDS_KEY].policies or request.path.startswith("/_emulator/"):
        return await handler(request)
    faults = engine_of(request).faults
    kind = faults.draw("http", route_key(request))
    if kind is None:
        return await handler(request)
    logger.debug("injecting %s into %s", kind, route_key(request))
    return await _misbehave(kind, request, handler, faults.plan)


async def _misbehave(
    kind: str, request: web.Request, handler: Handler, plan: FaultPlan
) -> web.StreamResponse:
    if kind in _INJECTED_STATUS:
        message, code = _INJECTED_STATUS[kind]
        raise ApiError(int(kind), message, code)
    if kind == "429":
        raise ApiError(
            429,
            "Rate limit exceeded. Please try again later.",
            "RATE_LIMIT_EXCEEDED",
            headers={"Retry-After": f"{plan.retry_after:g}"},
        )
    if kind == "slow":
        await asyncio.sleep(plan.slow)
        return await handler(request)
    if kind == "malformed":
        return web.Response(
            body=b'{"success": true, "sessionId": "a1b2', content_type="application/json"
        )
    if kind == "oversized":
        head, tail = b'{"success":true,"padding":"', b'"}'
        filler = b"x" * max(0, plan.oversized_bytes - len(head) - len(tail))
        body = head + filler + tail
        return web.Response(body=body, content_type="application/json")
    if kind == "reset_after":
        response = await handler(request)
        if response.prepared:
            return response  # a streamed answer is already on its way: nothing to withhold
    return await _reset(request)


async def _reset(request: web.Request) -> web.StreamResponse:
    """Drop the connection with no answer; the handler is then cancelled by aiohttp."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    await asyncio.sleep(0)  # the loss is noticed here and this handler cancelled
    return web.Response(status=204)  # not sent: the connection is gone


@web.middleware
async def _enforce_policy(request: web.Request, handler: Handler) -> web.StreamResponse:
    guards = request.app[GUARDS_KEY]
    policy = guards.policies.get(request.match_info.route)
    if policy is not None:
        _authenticate(request, policy)
        window = {"endpoint": guards.per_endpoint, "ip": guards.per_ip}.get(policy.limit or "")
        if window is not None:
            key = route_key(request) if policy.limit == "endpoint" else request.remote or "?"
            decision = window.hit(key, engine_of(request).now())
            request[RATE_HEADERS_KEY] = decision.headers
            if not decision.allowed:
                raise ApiError(
                    429, "Rate limit exceeded. Please try again later.", "RATE_LIMIT_EXCEEDED"
                )
    return await handler(request)


def _authenticate(request: web.Request, policy: Policy) -> None:
    """Check the Bearer key (never logged) against the store, in the documented order."""
    if policy.auth == "none":
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    if not token:
        if policy.auth == "optional":
            return
        raise ApiError(401, "API key required", "UNAUTHORIZED")
    store = engine_of(request).store
    permissions = store.api_keys.get(token)
    if permissions is None:
        raise ApiError(401, "Invalid or revoked API key", "INVALID_API_KEY")
    if not store.account.active:
        raise ApiError(403, "Account is deactivated", "ACCOUNT_DEACTIVATED")
    if policy.permission is not None and policy.permission not in permissions:
        raise ApiError(
            403,
            f"API key missing required permission: {policy.permission}",
            "PERMISSION_DENIED",
        )


async def add_rate_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    headers = request.get(RATE_HEADERS_KEY)
    if headers:
        response.headers.update(headers)


MIDDLEWARES = (_count, _render_errors, _inject_faults, _enforce_policy)
