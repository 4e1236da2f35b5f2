"""A minimal local HTTP server for the benchmarks, run in a process of its own.

It answers from bodies built once at start-up, so that the server costs as little as possible
and the client's work is what the benchmarks measure:

* ``POST /v1/chat/completions`` and ``GET /sse``: ``--chunks`` chat completion chunks as
  Server-Sent Events, then ``data: [DONE]``, written in 64 KiB pieces.

Prints ``PORT <n>`` once listening. Usage: ``python benchmarks/local_server.py --chunks 100000``.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web
from payloads import sse_body


def build_app(chunks: int) -> web.Application:
    body = sse_body(chunks)
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
    return app


async def main(port: int, chunks: int) -> None:
    runner = web.AppRunner(build_app(chunks), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"PORT {runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=100_000)
    args = parser.parse_args()
    try:
        asyncio.run(main(args.port, args.chunks))
    except KeyboardInterrupt:
        pass
