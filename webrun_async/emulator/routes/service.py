"""Health, the inspection endpoint, and the video-stream stubs."""

from __future__ import annotations

import html
import time

from aiohttp import web

from webrun_async.emulator.errors import ApiError
from webrun_async.emulator.http.request import engine_of, json_response
from webrun_async.emulator.sim.ids import iso

__all__ = ["emulator_state", "health", "stream_page", "whep_stub"]


async def health(request: web.Request) -> web.Response:
    """GET /start/health (no auth)."""
    free = engine_of(request).free_instances()
    return json_response(
        {
            "success": True,
            "status": "healthy",
            "instancesAvailable": free > 0,
            "instanceCount": free,
            "timestamp": iso(time.time()),
        }
    )


async def emulator_state(request: web.Request) -> web.Response:
    """GET /_emulator/state: an emulator extension for test suites in any language."""
    engine = engine_of(request)
    store = engine.store
    return json_response(
        {
            "liveSessions": list(store.live),
            "sessionsCreated": len(store.sessions),
            "tasksCreated": len(store.tasks),
            "instancesInUse": len(store.live),
            "balance": store.account.balance,
            "requestCounts": dict(store.request_counts),
            "openSockets": len(store.sockets),
            "socketConnections": store.socket_connections,
            "socketRefused": store.socket_refused,
            "faultsInjected": dict(engine.faults.injected),
        }
    )


async def stream_page(request: web.Request) -> web.Response:
    """GET /_emulator/stream/{sid}: a placeholder for the embeddable player."""
    session_id = request.match_info["sessionId"]
    if session_id not in engine_of(request).store.sessions:
        raise ApiError(404, "Session not found", "SESSION_NOT_FOUND")
    safe = html.escape(session_id)
    page = (
        "<!doctype html><html><head><title>WebRun emulator stream</title></head>"
        f"<body><p>Session {safe}: the emulator has no live video.</p></body></html>"
    )
    return web.Response(text=page, content_type="text/html")


async def whep_stub(request: web.Request) -> web.Response:
    """`/_emulator/stream/{sid}/whep`: WebRTC is not emulated."""
    raise ApiError(501, "WebRTC streaming is not available in the emulator", "NOT_IMPLEMENTED")
