"""An async web app that runs browser tasks and relays their live events as Server-Sent Events.

``GET /`` serves a page with a form; ``GET /tasks/stream?task=...`` starts a task and streams
its events (``update``, ``thought``, ``action``, then ``result`` or ``error``) to the browser
as they happen. If the browser goes away mid-task, the task is cancelled so it stops costing
money. One :class:`AsyncWebRun` serves every request.

    python examples/web_app.py          # then open http://127.0.0.1:8080/
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from _common import open_client
from aiohttp import web

from webrun_async import AsyncWebRun, InvalidParameterError, TaskHandle
from webrun_async.types import (
    AgentThought,
    BrowserAction,
    ResponseUpdate,
    TaskEvent,
    TaskFailure,
    TaskGuardrail,
    TaskResult,
    TaskTerminated,
)

CLIENT = web.AppKey("client", AsyncWebRun)

PAGE = """<!doctype html>
<meta charset="utf-8"><title>WebRun live</title>
<form id="f"><input name="task" size="60" value="Find the cheapest wireless keyboard">
<button>Run</button></form><pre id="log"></pre>
<script>
document.getElementById("f").onsubmit = (e) => {
  e.preventDefault();
  const log = document.getElementById("log");
  const task = new FormData(e.target).get("task");
  const stream = new EventSource("/tasks/stream?task=" + encodeURIComponent(task));
  for (const kind of ["update", "thought", "action", "question", "result", "error"]) {
    stream.addEventListener(kind, (m) => {
      log.textContent += kind + ": " + m.data + "\\n";
      if (kind === "result" || kind === "error") stream.close();
    });
  }
};
</script>
"""


def relay_event(event: TaskEvent) -> tuple[str, dict[str, Any]] | None:
    """The SSE event name and JSON payload a task event is relayed as."""
    if isinstance(event, ResponseUpdate):
        return "update", {"message": event.message}
    if isinstance(event, AgentThought):
        return "thought", {"content": event.content}
    if isinstance(event, BrowserAction):
        return "action", {"name": event.name, "target": event.target}
    if isinstance(event, TaskGuardrail):
        return "question", {"value": event.value}
    if isinstance(event, TaskResult):
        return "result", {"message": event.message, "cost": event.usage.cost}
    if isinstance(event, TaskFailure | TaskTerminated):
        return "error", {"error": event.error, "code": getattr(event, "code", None)}
    return None


def sse(name: str, payload: dict[str, Any]) -> bytes:
    """One Server-Sent Event."""
    return b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode(payload) + b"\n\n"


async def index(request: web.Request) -> web.Response:
    """The page."""
    return web.Response(text=PAGE, content_type="text/html")


async def stream_task(request: web.Request) -> web.StreamResponse:
    """Start the task named in ``?task=`` and relay its events until it ends."""
    client = request.app[CLIENT]
    try:
        handle: TaskHandle[Any] = client.tasks.submit(request.query.get("task", ""))
    except InvalidParameterError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    try:
        async for event in handle.events():
            relayed = relay_event(event)
            if relayed is not None:
                await response.write(sse(*relayed))
            if isinstance(event, TaskGuardrail):
                # This app has nobody to ask: end the task rather than leave it waiting.
                await handle.cancel()
                await response.write(sse("error", {"error": "the task needed human input"}))
                break
    except (ConnectionResetError, asyncio.CancelledError):
        await handle.cancel()  # the browser left: stop paying for the task
        raise
    await response.write_eof()
    return response


def create_app(client: AsyncWebRun) -> web.Application:
    """The web app, serving with ``client``."""
    app = web.Application()
    app[CLIENT] = client
    app.router.add_get("/", index)
    app.router.add_get("/tasks/stream", stream_task)
    return app


@asynccontextmanager
async def serving(client: AsyncWebRun, port: int) -> AsyncIterator[str]:
    """Serve the app on 127.0.0.1:``port`` (0: any free port) for the block; gives its URL."""
    runner = web.AppRunner(create_app(client), handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    async with open_client() as (client, _), serving(client, port) as url:
        print(f"Serving on {url}/ (Ctrl-C to stop)")
        await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
