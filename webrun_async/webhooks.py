"""Receiving WebRun's webhook deliveries: verify, parse, deduplicate; usable from any framework.

A task started with ``webhook=Webhook(name=..., url=..., auth=..., submitted_data=...)`` is
POSTed to ``url`` when it completes, with ``Authorization: <auth>`` when ``auth`` was given.
The body depends on ``submitted_data``:

* ``"full_response"``: :class:`FullResponse` (ids, the answer, token counts and cost);
* ``"just_ping"``: :class:`Ping` (ids and the completion time only);
* ``"ai_response"``: the bare output (text, or the JSON value of a structured output), as
  :class:`AIResponse`, which carries no ids.

The service does not retry a delivery and gives the receiver 30 s to answer. ::

    receiver = WebhookReceiver(auth="Bearer my-secret")

    delivery = receiver.receive(body_bytes, request_headers)   # any framework
    app.router.add_post("/webhooks/webrun", receiver.aiohttp_handler(on_delivery))  # aiohttp
    asgi_app = receiver.asgi_app(on_delivery)                  # Starlette, FastAPI mounts...

The ``Authorization`` value is compared in constant time and never logged, shown in a repr or
put in an error.
"""

from __future__ import annotations

import hmac
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias

import msgspec

from webrun_async._core.exceptions import WebRunError

__all__ = [
    "AIResponse",
    "FullResponse",
    "FullResponseData",
    "FullResponseUsage",
    "Ping",
    "WebhookDelivery",
    "WebhookError",
    "WebhookReceiver",
]

MAX_BODY = 16 * 1024 * 1024
"""The largest delivery body accepted (a structured output can be large, not endless)."""


class WebhookError(WebRunError, ValueError):
    """A webhook request that is not a valid delivery.

    Attributes:
        status: The HTTP status to answer with: 401 (``Authorization`` missing or wrong), 400
            (a body that is not a delivery), 413 (a body over :data:`MAX_BODY`).
        problem: What was wrong, without the secret.
    """

    def __init__(self, status: int, problem: str) -> None:
        super().__init__(problem)
        self.status = status
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status, self.problem))


class FullResponseData(msgspec.Struct, frozen=True):
    """The answer of a ``full_response`` delivery."""

    message: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    completion_time: float = 0.0


class FullResponseUsage(msgspec.Struct, frozen=True, rename="camel"):
    """The usage of a ``full_response`` delivery (tokens, compute seconds, USD)."""

    input_tokens: int = 0
    output_tokens: int = 0
    compute_time: float = 0.0
    cost: float = 0.0


class FullResponse(msgspec.Struct, frozen=True, rename="camel"):
    """A ``full_response`` delivery: the completed task, its answer and its cost."""

    session_id: str
    task_id: str
    type: str = "task_completed"
    data: FullResponseData = FullResponseData()
    usage: FullResponseUsage = FullResponseUsage()
    completed_at: str | None = None


class Ping(msgspec.Struct, frozen=True, rename="camel"):
    """A ``just_ping`` delivery: which task completed, and when."""

    session_id: str
    task_id: str
    event: str = "task_completed"
    completed_at: str | None = None


class AIResponse(msgspec.Struct, frozen=True):
    """An ``ai_response`` delivery: the task's output alone (the form names no task).

    Attributes:
        output: The decoded JSON value for a structured output, else the text.
        raw: The body as received.
    """

    output: Any
    raw: bytes


WebhookDelivery: TypeAlias = FullResponse | Ping | AIResponse
"""What a webhook request carries, by the task's ``submitted_data``."""

_FullForm = msgspec.json.Decoder(FullResponse)
_PingForm = msgspec.json.Decoder(Ping)
_any = msgspec.json.Decoder()
DeliveryCallback = Callable[[WebhookDelivery], Awaitable[object]]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict need not be case-insensitive
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


class WebhookReceiver:
    """Verifies and parses deliveries, and drops the duplicates of those that carry ids.

    Args:
        auth: The ``auth`` the tasks' webhooks were given (sent back verbatim as the
            ``Authorization`` header), or ``None`` to accept deliveries without one (not
            advisable for a public URL).
        remember: How many (session, task) pairs are kept to recognise a duplicate.
    """

    def __init__(self, auth: str | None, *, remember: int = 10_000) -> None:
        if auth is not None and (not isinstance(auth, str) or not auth.strip()):
            raise ValueError("auth must be a non-empty string, or None")
        if remember < 0:
            raise ValueError("remember must be >= 0")
        self._auth = None if auth is None else auth.encode()
        self._remember = remember
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def __repr__(self) -> str:
        return f"WebhookReceiver(auth={'<redacted>' if self._auth else None})"

    def verify(self, headers: Mapping[str, str]) -> None:
        """Check the ``Authorization`` header in constant time.

        Raises:
            WebhookError: 401, naming whether the header was missing or did not match.
        """
        if self._auth is None:
            return
        given = _header(headers, "Authorization")
        if given is None:
            raise WebhookError(401, "the delivery has no Authorization header")
        if not hmac.compare_digest(given.encode(), self._auth):
            raise WebhookError(401, "the delivery's Authorization header does not match")

    def parse(self, body: bytes) -> WebhookDelivery:
        """Decode a delivery body into its form (no check of the header: see :meth:`verify`).

        Raises:
            WebhookError: 400 for a body that is no delivery (a ``task_completed`` object
                without ids, say), 413 for one over :data:`MAX_BODY`.
        """
        if len(body) > MAX_BODY:
            raise WebhookError(413, f"the delivery body is over {MAX_BODY} bytes")
        try:
            value = _any.decode(body) if body.strip() else None
        except msgspec.DecodeError:
            return AIResponse(output=body.decode("utf-8", "replace"), raw=body)  # text output
        except RecursionError:
            raise WebhookError(400, "the delivery body is nested too deeply") from None
        if isinstance(value, dict):
            form = _form_of(value)
            if form is not None:
                try:
                    delivery: FullResponse | Ping = form.decode(body)
                except msgspec.ValidationError as exc:
                    raise WebhookError(400, f"a malformed delivery: {exc}") from None
                return delivery
        if value is None:
            raise WebhookError(400, "the delivery body is empty")
        return AIResponse(output=value, raw=body)

    def receive(self, body: bytes, headers: Mapping[str, str]) -> WebhookDelivery | None:
        """Verify and parse a delivery; ``None`` for a repeat of one already received.

        Raises:
            WebhookError: The request is not a valid delivery (see ``status``).
        """
        self.verify(headers)
        delivery = self.parse(body)
        if isinstance(delivery, AIResponse) or self._remember == 0:
            return delivery
        key = (delivery.session_id, delivery.task_id)
        if key in self._seen:
            return None
        self._seen[key] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        return delivery

    async def _answer(
        self, body: bytes, headers: Mapping[str, str], on_delivery: DeliveryCallback
    ) -> tuple[int, Any]:
        """The status and JSON body (``None``: no body) answering one webhook request."""
        try:
            delivery = self.receive(body, headers)
        except WebhookError as exc:
            return exc.status, {"error": exc.problem}
        if delivery is None:
            return 204, None
        await on_delivery(delivery)
        return 200, {"received": True}

    def aiohttp_handler(self, on_delivery: DeliveryCallback) -> Callable[[Any], Awaitable[Any]]:
        """An aiohttp request handler: answers 200 after ``on_delivery`` ran, 204 for a
        duplicate, or the error's status with ``{"error": problem}``."""
        from aiohttp import web

        async def handler(request: web.Request) -> web.Response:
            body = bytearray()
            async for chunk in request.content.iter_any():
                body += chunk
                if len(body) > MAX_BODY:
                    break
            status, answer = await self._answer(bytes(body), request.headers, on_delivery)
            if answer is None:
                return web.Response(status=status)
            return web.json_response(answer, status=status)

        return handler

    def asgi_app(self, on_delivery: DeliveryCallback) -> Callable[..., Awaitable[None]]:
        """An ASGI application taking deliveries as POSTs at any path (mount it where the
        webhook URL points), with the answers of :meth:`aiohttp_handler`."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "lifespan":
                while True:
                    event = (await receive())["type"]
                    if event == "lifespan.startup":
                        await send({"type": "lifespan.startup.complete"})
                    elif event == "lifespan.shutdown":
                        await send({"type": "lifespan.shutdown.complete"})
                        return
            if scope["type"] != "http":
                return
            if scope["method"] != "POST":
                await _answer(send, 405, {"error": "deliveries are POSTed"})
                return
            body = bytearray()
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                if len(body) > MAX_BODY or not message.get("more_body"):
                    break
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            await _answer(send, *await self._answer(bytes(body), headers, on_delivery))

        return app


def _form_of(
    value: dict[str, Any],
) -> msgspec.json.Decoder[FullResponse] | msgspec.json.Decoder[Ping] | None:
    """The delivery form a JSON object has, or ``None`` for an output that is an object."""
    if value.get("type") == "task_completed" and "data" in value:
        return _FullForm
    if value.get("event") == "task_completed" and "sessionId" in value:
        return _PingForm
    return None


async def _answer(send: Any, status: int, body: Any) -> None:
    payload = b"" if body is None else msgspec.json.encode(body)
    headers = [(b"content-type", b"application/json")] if body is not None else []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
