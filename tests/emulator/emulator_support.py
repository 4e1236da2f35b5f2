"""Helpers for the emulator tests: plain aiohttp calls (no SDK) and what they received.

The settings, the deadline and `wait_until` are shared with the SDK's tests, in
``tests/support.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from tests.support import KEY, wait_until
from webrun_async.emulator import Emulator

DEFAULT = object()


@dataclass
class HttpReply:
    """What a plain aiohttp call received: status, decoded JSON (or text) and headers."""

    status: int
    body: Any
    headers: CIMultiDictProxy[str]


class Api:
    """Plain aiohttp calls against one emulator (no SDK involved)."""

    def __init__(self, emu: Emulator, http: aiohttp.ClientSession) -> None:
        self.emu = emu
        self.http = http

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = DEFAULT,
        data: Any = None,
        key: str | object | None = DEFAULT,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        """Send a request with the default key unless `key` says otherwise (None: no header)."""
        all_headers = dict(headers or {})
        token = KEY if key is DEFAULT else key
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        url = path if path.startswith("http") else self.emu.base_url + path
        kwargs: dict[str, Any] = {"headers": all_headers}
        if json is not DEFAULT:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
        async with self.http.request(method, url, **kwargs) as response:
            raw = await response.read()
            content_type = response.headers.get("Content-Type", "")
            body: Any = raw.decode() if raw else None
            if "json" in content_type:
                body = await response.json()
            return HttpReply(response.status, body, response.headers)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> HttpReply:
        """POST a JSON body."""
        return await self.call("POST", path, json=body if body is not None else {}, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> HttpReply:
        """GET."""
        return await self.call("GET", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> HttpReply:
        """DELETE."""
        return await self.call("DELETE", path, **kwargs)

    async def poll(self, session_id: str, task_id: str) -> dict[str, Any]:
        """One poll of a task; asserts HTTP 200."""
        reply = await self.get(f"/task/{session_id}/{task_id}")
        assert reply.status == 200, reply.body
        body: dict[str, Any] = reply.body
        return body

    async def poll_until(
        self,
        session_id: str,
        task_id: str,
        done: Callable[[dict[str, Any]], bool] = lambda body: not body.get("pending"),
    ) -> dict[str, Any]:
        """Poll until `done(body)`; fails after `WAIT` seconds."""
        last: dict[str, Any] = {}

        async def polled_done() -> bool:
            nonlocal last
            last = await self.poll(session_id, task_id)
            return done(last)

        await wait_until(polled_done, what=f"task {task_id} done")
        return last

    async def message(self, session_id: str, message: dict[str, Any]) -> HttpReply:
        """POST /start/send-message."""
        return await self.post("/start/send-message", {"sessionId": session_id, "message": message})

    async def new_session(self, **body: Any) -> str:
        """Start a session (no initial task unless given) and return its id."""
        reply = await self.post("/start/start-session", body)
        assert reply.status == 200, reply.body
        session_id: str = reply.body["sessionId"]
        return session_id


def form(field: str, content: bytes, filename: str, **fields: str) -> aiohttp.FormData:
    """A multipart form with one file part and optional text fields."""
    data = aiohttp.FormData()
    for name, value in fields.items():
        data.add_field(name, value)
    data.add_field(field, content, filename=filename, content_type="application/octet-stream")
    return data


class EventLog:
    """Collects `(event, payload)` pairs published by a session."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        self.events.append((event, payload))

    def types(self) -> list[str]:
        """Payload `type` of each event, in order."""
        return [str(payload.get("type")) for _, payload in self.events]


MakeApi = Callable[..., Awaitable[Api]]
"""The `make_api` fixture: start an emulator with the fast options plus overrides."""
