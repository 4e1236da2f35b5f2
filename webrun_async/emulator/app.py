"""The aiohttp application: the route table, each route's policy, and the middleware chain.

The socket.io server attaches to the returned application (see `push.hub`).
"""

from __future__ import annotations

from aiohttp import web

from webrun_async.emulator.http.connections import CONNECTIONS_KEY, Connections
from webrun_async.emulator.http.limits import JSON_BODY_LIMIT
from webrun_async.emulator.http.middleware import (
    GUARDS_KEY,
    MIDDLEWARES,
    Guards,
    Handler,
    Policy,
    add_rate_headers,
)
from webrun_async.emulator.http.ratelimit import SlidingWindow
from webrun_async.emulator.http.request import ENGINE_KEY
from webrun_async.emulator.routes.environments import (
    ENVIRONMENT,
    PROFILE,
    delete_environment_file,
    download_blob,
    environment_files,
)
from webrun_async.emulator.routes.files import download_task_file, upload_files
from webrun_async.emulator.routes.openai import chat_completions, list_models, retrieve_model
from webrun_async.emulator.routes.service import emulator_state, health, stream_page, whep_stub
from webrun_async.emulator.routes.tasks import poll_task, run_task, send_message, start_session
from webrun_async.emulator.sim.engine import Engine

__all__ = ["build_app"]

_OPEN = Policy("none")
_OPTIONAL = Policy("optional")
_KEYED = Policy("required")
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
        ("GET", "/v1/models", list_models, _KEYED),
        ("GET", "/v1/models/{model}", retrieve_model, _KEYED),
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
        # Inspection lists live session ids, the only credential of their sockets: key needed.
        ("GET", "/_emulator/state", emulator_state, _KEYED),
        # Capability URLs handed out in answers (unguessable ids, a signature for blobs), like
        # the storage and player URLs of the real service: no key.
        ("GET", "/_emulator/files/{fileId}/{filename}", download_task_file, _OPEN),
        ("GET", "/_emulator/blobs/{id}.tar.gz", download_blob, _OPEN),
        ("GET", "/_emulator/stream/{sessionId}", stream_page, _OPEN),
        ("*", "/_emulator/stream/{sessionId}/whep", whep_stub, _OPEN),
    ]
    return routes


def build_app(engine: Engine) -> web.Application:
    """The whole emulated API on one application."""
    app = web.Application(
        middlewares=MIDDLEWARES,
        client_max_size=JSON_BODY_LIMIT,
    )
    app[ENGINE_KEY] = engine
    config = engine.config
    app[CONNECTIONS_KEY] = Connections(config.header_timeout)
    policies: dict[web.AbstractRoute, Policy] = {}
    for method, path, handler, policy in _routes():
        policies[app.router.add_route(method, path, handler)] = policy
    app[GUARDS_KEY] = Guards(
        policies,
        SlidingWindow(*config.rate_limit) if config.rate_limit else None,
        SlidingWindow(*config.account_rate_limit) if config.account_rate_limit else None,
    )
    app.on_response_prepare.append(add_rate_headers)
    return app
