"""The push benchmark's server, run in a process of its own: socket.io events on request.

It is an aiohttp application with a ``socketio.AsyncServer(async_mode="aiohttp")`` on it:

* socket.io connections authenticate with ``{"sessionId": ...}`` and join that session's room;
  a ``message`` asking to terminate (``{"actionType": "state", "newState": "terminate"}``) is
  answered with ``end_session`` to the room, as the service does;
* ``GET /task/{sid}/{tid}`` answers ``payloads.task_running()`` for that task, so a handle that
  polls sees it running (and ``POST /start/send-message`` acknowledges, for REST clean-up);
* ``POST /_bench/go`` with ``{"sessionId", "count", "rate"}`` starts sending ``count`` ``message``
  events to that session's room, each the ``payloads.task_completed(i)`` of task ``i`` (about
  3.5 KB) with the session's id and ``sentAt`` (``time.time()`` just before the emit) added, as
  fast as possible (``rate`` 0) or paced at ``rate`` events per second; it answers at once;
* ``GET /_bench/sent/{sid}`` waits for that burst to end and returns the send times, in order.

Prints ``PORT <n>`` once listening. Usage: ``python benchmarks/push_server.py [--prebuild N]``
(``N`` payloads are built at start-up rather than on the first request that needs them).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import msgspec
import socketio  # type: ignore[import-untyped]
from aiohttp import web
from bench_common import serve_forever
from payloads import task_completed, task_running

JSON = "application/json"


class Bursts:
    """The bursts asked for, one per session id: their task and the send times so far."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio
        self._templates: list[dict[str, object]] = []
        self._tasks: dict[str, asyncio.Task[list[float]]] = {}

    def template(self, index: int) -> dict[str, object]:
        """``task_completed(index)``, built once and kept (the server should cost little)."""
        while len(self._templates) <= index:
            self._templates.append(task_completed(len(self._templates)))
        return self._templates[index]

    def start(self, session_id: str, count: int, rate: float) -> None:
        for index in range(count):  # build them before the first send, not between sends
            self.template(index)
        task = asyncio.get_running_loop().create_task(self._send(session_id, count, rate))
        self._tasks[session_id] = task

    async def _send(self, session_id: str, count: int, rate: float) -> list[float]:
        emit = self._sio.emit
        sent: list[float] = []
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.01
        for index in range(count):
            if rate > 0:
                delay = start + index / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            payload = dict(self.template(index))
            payload["sessionId"] = session_id
            now = time.time()
            payload["sentAt"] = now
            sent.append(now)
            await emit("message", payload, room=session_id)
            if rate <= 0:
                await asyncio.sleep(0)  # let the websocket writer send as we go
        return sent

    async def sent(self, session_id: str) -> list[float]:
        task = self._tasks.pop(session_id)
        return await task


def build_app(prebuild: int) -> web.Application:
    sio = socketio.AsyncServer(async_mode="aiohttp", logger=False, engineio_logger=False)
    bursts = Bursts(sio)
    if prebuild > 0:
        bursts.template(prebuild - 1)

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        session_id = auth.get("sessionId") if isinstance(auth, dict) else None
        if not isinstance(session_id, str) or not session_id:
            raise socketio.exceptions.ConnectionRefusedError("Session not found")
        await sio.save_session(sid, {"sessionId": session_id})
        await sio.enter_room(sid, session_id)

    async def message(sid: str, data: Any = None) -> dict[str, object]:
        session_id = (await sio.get_session(sid))["sessionId"]
        if isinstance(data, dict) and data.get("newState") == "terminate":
            ended = {"type": "end_session", "reason": "terminated", "message": "Session ended"}
            await sio.emit("end_session", ended, room=session_id)
        return {"success": True, "message": "ok"}

    async def get_task(request: web.Request) -> web.Response:
        sid, tid = request.match_info["sid"], request.match_info["tid"]
        body = task_running()
        body["sessionId"], body["taskId"] = sid, tid
        return web.Response(body=msgspec.json.encode(body), content_type=JSON)

    async def send_message(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b'{"success":true,"message":"ok"}', content_type=JSON)

    async def go(request: web.Request) -> web.Response:
        ask = msgspec.json.decode(await request.read())
        bursts.start(str(ask["sessionId"]), int(ask["count"]), float(ask.get("rate", 0)))
        return web.Response(body=b'{"started":true}', content_type=JSON)

    async def sent(request: web.Request) -> web.Response:
        times = await bursts.sent(request.match_info["sid"])
        return web.Response(body=msgspec.json.encode(times), content_type=JSON)

    sio.on("connect", connect)
    sio.on("message", message)
    app = web.Application()
    sio.attach(app)
    app.router.add_get("/task/{sid}/{tid}", get_task)
    app.router.add_post("/start/send-message", send_message)
    app.router.add_post("/_bench/go", go)
    app.router.add_get("/_bench/sent/{sid}", sent)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--prebuild", type=int, default=0, help="payloads to build at start-up")
    args = parser.parse_args()
    serve_forever(build_app(args.prebuild), args.port)
