"""A minimal local HTTP server for the benchmarks, run in a process of its own.

It answers from bodies built once at start-up, so that the server costs as little as possible
and the client's work is what the benchmarks measure:

* ``POST /v1/chat/completions`` and ``GET /sse``: ``--chunks`` chat completion chunks as
  Server-Sent Events, then ``data: [DONE]``, written in 64 KiB pieces;
* ``GET /task/{sessionId}/{taskId}``: a task answer, ``--task completed`` (3.5 KB, the default)
  or ``--task running`` (a poll of a task still running).

Prints ``PORT <n>`` once listening. Usage: ``python benchmarks/local_server.py --chunks 100000``.
"""

from __future__ import annotations

import argparse

import msgspec
from aiohttp import web
from bench_common import serve_forever
from payloads import sse_body, task_completed, task_running


def build_app(chunks: int, task: str = "completed") -> web.Application:
    body = sse_body(chunks)
    task_body = msgspec.json.encode(task_completed() if task == "completed" else task_running())

    async def poll(request: web.Request) -> web.Response:
        return web.Response(body=task_body, content_type="application/json")

    pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]

    async def stream(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        for piece in pieces:
            await response.write(piece)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", stream)
    app.router.add_get("/sse", stream)
    app.router.add_get("/task/{sessionId}/{taskId}", poll)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--task", choices=("completed", "running"), default="completed")
    args = parser.parse_args()
    serve_forever(build_app(args.chunks, args.task), args.port)
