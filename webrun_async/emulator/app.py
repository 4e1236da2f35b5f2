"""The aiohttp application: route table, per-route policy, and the middleware chain.

Middlewares, outermost first: request counting, error rendering, fault injection (between the
two, so that injected errors render like real ones), then the policy (auth and rate limits, in
the documented order). The socket.io server attaches to
the returned application; its routes carry no policy and pass straight through, and are not
counted (socket activity has counters of its own).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from .errors import ApiError
from .faults import FaultPlan
from .http.ratelimit import SlidingWindow
from .http.request import ENGINE_KEY, RATE_HEADERS_KEY, engine_of, json_response
from .routes.environments import (
    ENVIRONMENT,
    PROFILE,
    delete_environment_file,
    download_blob,
    environment_files,
)
from .routes.files import download_task_file, upload_files
from .routes.openai import chat_completions, list_models
from .routes.service import emulator_state, health, stream_page, whep_stub
from .routes.tasks import poll_task, run_task, send_message, start_session
from .sim.engine import Engine

__all__ = ["Policy", "build_app", "route_key"]

logger = logging.getLogger("webrun_async.emulator")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_JSON_BODY_LIMIT = 16 * 1024 * 1024


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


_OPEN = Policy("none")
_OPTIONAL = Policy("optional")
_TASK = Policy("required", "endpoint")
_OBJECTS = Policy("required", "ip", "task:create")


def _routes() -> list[tuple[str, str, Handler, Policy]]:
    routes: list[tuple[str, str, Handler, Policy]] = [
        ("GET", "/start/health", health, _OPTIONAL),
        ("POST", "/start/start-session", start_session, _TASK),
        ("POST", "/start/run-task", run_task, _TASK),
        ("POST", "/start/send-message", send_message, _TASK),
        ("GET", "/task/{sessionId}/{taskId}", poll_task, _OPTIONAL),
        ("POST", "/files/upload", upload_files, _TASK),
        ("GET", "/v1/models", list_models, Policy("required")),
        ("POST", "/v1/chat/completions", chat_completions, _TASK),
    ]
    for kind in (PROFILE, ENVIRONMENT):
        base = f"/{kind.plural}"
        routes += [
            ("GET", base, kind.handle_list(), _OBJECTS),
            ("POST", base, kind.handle_create(), _OBJECTS),
            ("DELETE", base + "/{id}", kind.handle_delete(), _OBJECTS),
            ("POST", base + "/{id}/upload", kind.handle_upload(), _OBJECTS),
        ]
    routes += [
        ("GET", "/profiles/{id}/download", PROFILE.handle_download(), _OBJECTS),
        ("GET", "/environments/{id}/files", environment_files, _OBJECTS),
        ("DELETE", "/environments/{id}/files/{fileId}", delete_environment_file, _OBJECTS),
        ("GET", "/_emulator/state", emulator_state, _OPEN),
        ("GET", "/_emulator/files/{fileId}/{filename}", download_task_file, _OPEN),
        ("GET", "/_emulator/blobs/{id}.tar.gz", download_blob, _OPEN),
        ("GET", "/_emulator/stream/{sessionId}", stream_page, _OPEN),
        ("*", "/_emulator/stream/{sessionId}/whep", whep_stub, _OPEN),
    ]
    return routes


@dataclass(slots=True)
class _Guards:
    policies: dict[web.AbstractRoute, Policy]
    per_endpoint: SlidingWindow | None
    per_ip: SlidingWindow | None


_GUARDS_KEY = web.AppKey("webrun_emulator_guards", _Guards)


def build_app(engine: Engine) -> web.Application:
    """The whole emulated API on one application."""
    app = web.Application(
        middlewares=[_count, _render_errors, _inject_faults, _enforce_policy],
        client_max_size=_JSON_BODY_LIMIT,
    )
    app[ENGINE_KEY] = engine
    config = engine.config
    policies: dict[web.AbstractRoute, Policy] = {}
    for method, path, handler, policy in _routes():
        policies[app.router.add_route(method, path, handler)] = policy
    app[_GUARDS_KEY] = _Guards(
        policies,
        SlidingWindow(*config.rate_limit) if config.rate_limit else None,
        SlidingWindow(*config.account_rate_limit) if config.account_rate_limit else None,
    )
    app.on_response_prepare.append(_add_rate_headers)
    return app


def route_key(request: web.Request) -> str:
    """`"METHOD /route/pattern"`, or `"unmatched"` when no route matched."""
    match = request.match_info
    if match.http_exception is not None:
        return "unmatched"
    resource = match.route.resource
    return f"{request.method} {resource.canonical}" if resource is not None else "unmatched"


@web.middleware
async def _count(request: web.Request, handler: Handler) -> web.StreamResponse:
    match = request.match_info
    # Only the API's own routes and unmatched requests: not socket.io's transport requests.
    if match.http_exception is not None or match.route in request.app[_GUARDS_KEY].policies:
        engine_of(request).store.request_counts[route_key(request)] += 1
    return await handler(request)


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
        logger.exception("unhandled error in %s", route_key(request))
        error = ApiError(500, "Internal server error", "INTERNAL_ERROR")
    body = error.openai_body() if request.path.startswith("/v1/") else error.native_body()
    return json_response(body, error.status, headers=error.headers)


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
    if route not in request.app[_GUARDS_KEY].policies or request.path.startswith("/_emulator/"):
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
    guards = request.app[_GUARDS_KEY]
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


async def _add_rate_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    headers = request.get(RATE_HEADERS_KEY)
    if headers:
        response.headers.update(headers)
