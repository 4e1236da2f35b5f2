"""Generated bodies, valid-shaped and broken, at every POST route: never a 5xx.

A generator that throws random JSON stops at the first field check, testing nothing behind it.
This one starts from a valid body built from each route's own vocabulary (the documented field
names and their variants) and mutates one or two fields, so most bodies reach the handlers;
a share of wholly broken bodies (not JSON, truncated, the wrong shape, nested 100,000 deep,
broken multipart) covers the readers. The test counts how many valid-shaped bodies were
accepted per route and asserts a floor, so that a generator stuck at the front door fails.

Unrelated state must not change: a session and a profile created first, never named in the
bodies, are the same afterwards.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import tarfile
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.emulator.emulator_support import Api, MakeApi
from tests.support import KEY

SEED = 20261202
BODIES_PER_ROUTE = 150
BROKEN_SHARE = 0.25
QUICK = " [[duration=0.02]]"

Body = tuple[str, bytes | aiohttp.FormData, str]  # (description, payload, content type)

ODD_VALUES: list[Any] = [
    None,
    0,
    -1,
    1.5,
    1e308,
    10**400,
    -(10**4000),
    True,
    "",
    " ",
    "x" * 5000,
    "\u202e\u0000 emoji \U0001f600",
    [],
    {},
    ["a", 1, None],
    {"nested": {"deeper": [1, 2, {"x": None}]}},
]


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


def _task_fields(rng: random.Random) -> dict[str, Any]:
    text = "Find things" + QUICK + rng.choice(["", " [[events=100000000]]", " [[a=" * 2000])
    fields: dict[str, Any] = {rng.choice(["taskDetails", "prompt"]): text}
    optional: dict[str, Callable[[], Any]] = {
        rng.choice(["startingPoint", "startingUrl"]): lambda: "https://example.com",
        "maxDuration": lambda: rng.choice([5, 60, 300]),
        "maxInputTokens": lambda: rng.choice([100, 5000]),
        "maxOutputTokens": lambda: rng.choice([100, 5000]),
        "avoidDomains": lambda: ["facebook.com"],
        "outputType": lambda: "structured_json",
        "outputSchema": lambda: rng.choice(
            [
                {"type": "object", "properties": {"a": {"type": "string"}}},
                {"allOf": [{"required": True}, {"properties": "x"}]},
                {"allOf": [{"$ref": "#/allOf/0"}]},
                {"type": "array", "minItems": 10**8, "items": {"type": "number"}},
                {"type": "object", "properties": {"n": {"type": "number", "minimum": 10**400}}},
            ]
        ),
        "terminateOnCompletion": lambda: rng.choice([True, False]),
    }
    for name in rng.sample(sorted(optional), rng.randint(0, 4)):
        fields[name] = optional[name]()
    if fields.get("outputType") and "outputSchema" not in fields:
        fields["outputSchema"] = {"type": "object"}
    return fields


def _mutate(rng: random.Random, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Change one or two fields (or add an unknown one); returns the body and what changed."""
    changed = []
    for _ in range(rng.randint(1, 2)):
        target: dict[str, Any] = body
        nested = [key for key, value in body.items() if isinstance(value, dict) and value]
        if nested and rng.random() < 0.4:
            key = rng.choice(nested)
            target = body[key]
            where = f"{key}."
        else:
            where = ""
        unknown = not target or rng.random() < 0.15
        name = f"unknown{rng.randint(0, 99)}" if unknown else rng.choice(sorted(target))
        value = _deep(90) if rng.random() < 0.05 else rng.choice(ODD_VALUES)
        target[name] = value
        changed.append(f"{where}{name}={json.dumps(value)[:40]}")
    return body, ", ".join(changed)


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


def _broken_json(rng: random.Random) -> tuple[str, bytes]:
    return rng.choice(
        [
            ("empty body", b""),
            ("truncated JSON", b'{"taskDetails": "x'),
            ("a JSON array", b"[1, 2, 3]"),
            ("a JSON string", b'"just a string"'),
            ("invalid UTF-8", b'{"taskDetails": "\xff\xfe"}'),
            ("100,000 deep", b"[" * 100_000),
            ("random bytes", bytes(rng.randrange(256) for _ in range(64))),
            ("NaN literal", b'{"taskDetails": NaN}'),
        ]
    )


def _tar_gz() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        info = tarfile.TarInfo("Default/Cookies")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"ok"))
    return gzip.compress(raw.getvalue())


def _multipart(rng: random.Random, archive: bool) -> Body:
    if rng.random() < BROKEN_SHARE:
        boundary = "fuzzb"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="a.tar.gz"\r\n\r\n'
        ).encode()
        kind, payload = rng.choice(
            [
                ("no boundary in the body", b"nothing here"),
                ("no closing boundary", head + _tar_gz()),
                ("empty body", b""),
                ("a header over 8190 bytes", head.replace(b"a.tar.gz", b"a" * 9000) + b"x"),
                ("a header without a colon", f"--{boundary}\r\nno colon\r\n\r\nx".encode()),
            ]
        )
        return f"broken multipart: {kind}", payload, f"multipart/form-data; boundary={boundary}"
    form = aiohttp.FormData()
    field = rng.choice(["file", "files"])
    if archive:
        name = rng.choice(["p.tar.gz", "p.tgz", "p.zip"])
        content = _tar_gz() if rng.random() < 0.8 else b"not an archive"
    else:
        name = rng.choice(["notes.txt", "data.csv", "\u00e9t\u00e9.pdf"])
        if rng.random() < 0.2:
            form.add_field("_charset_", "utf-8")  # browsers send it first
        content = bytes(rng.randrange(256) for _ in range(rng.randint(0, 2000)))
    form.add_field(field, content, filename=name, content_type="application/octet-stream")
    if not archive and rng.random() < 0.3:
        form.add_field("environmentId", rng.choice(["0" * 24, "not-an-id", ""]))
    return f"multipart {field}={name}", form, ""


class Fuzz:
    """One route's generator: valid-shaped bodies from its vocabulary, mutated or broken."""

    def __init__(self, rng: random.Random, session_id: str) -> None:
        self.rng = rng
        self.session_id = session_id  # a session of the fuzzer's own

    def run_task(self) -> dict[str, Any]:
        body = _task_fields(self.rng)
        if self.rng.random() < 0.3:
            body = {self.rng.choice(["task", "initialTask"]): body}
        return body

    def start_session(self) -> dict[str, Any]:
        choice = self.rng.random()
        if choice < 0.3:
            return {}
        body: dict[str, Any] = {"initialTask": _task_fields(self.rng)}
        body["initialTask"]["terminateOnCompletion"] = True
        if self.rng.random() < 0.3:
            body["reachOutMode"] = self.rng.choice(["off", "guardrail_only", "full"])
        return body

    def send_message(self) -> dict[str, Any]:
        actions: list[dict[str, Any]] = [
            {"actionType": "newTask", "newState": "start", **_task_fields(self.rng)},
            {"actionType": "state", "newState": self.rng.choice(["pause", "resume", "stop"])},
            {"actionType": "interaction", "action": "CLICK", "x": 10, "y": 20},
            {"actionType": "interaction", "action": {"type": "CLICK", "x": 1, "y": 10**400}},
            {"actionType": "interaction", "action": "TYPE", "text": "hello"},
            {"actionType": "guardrail", "taskDetails": "an answer", "newState": "resume"},
        ]
        return {"sessionId": self.session_id, "message": self.rng.choice(actions)}

    def objects(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": f"fuzz {self.rng.randint(0, 10**6)}"}
        if self.rng.random() < 0.5:
            body["description"] = "made by the fuzzer"
        return body

    def chat(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.rng.choice(["enigma-browser-1", "webrun-browser-1"]),
            "messages": [{"role": "user", "content": "Find things" + QUICK}],
        }
        if self.rng.random() < 0.5:
            body["stream"] = True
            if self.rng.random() < 0.5:
                body["stream_options"] = {"include_usage": True}
        if self.rng.random() < 0.3:
            body["max_tokens"] = self.rng.choice([16, 1000])
        return body

    def json_body(self, make: Callable[[], dict[str, Any]]) -> tuple[Body, bool]:
        """A body and whether it is valid-shaped (unmutated)."""
        roll = self.rng.random()
        if roll < BROKEN_SHARE:
            kind, payload = _broken_json(self.rng)
            return (kind, payload, "application/json"), False
        body = make()
        if roll < BROKEN_SHARE + 0.35:
            body, changed = _mutate(self.rng, body)
            return (f"mutated: {changed}", _json(body), "application/json"), False
        return ("valid", _json(body), "application/json"), True


def _error_shape(path: str, status: int, body: Any) -> str | None:
    """What is wrong with a 4xx body, or None when it has the documented shape."""
    if path.startswith("/v1/"):
        error = body.get("error") if isinstance(body, dict) else None
        ok = isinstance(error, dict) and all(
            isinstance(error.get(k), str) for k in ("message", "type", "code")
        )
    else:
        ok = (
            isinstance(body, dict)
            and body.get("success") is False
            and isinstance(body.get("message"), str)
            and isinstance(body.get("code"), str)
        )
    return None if ok else f"{status} without the documented error shape: {body!r}"[:300]


async def _send(api: Api, path: str, body: Body) -> tuple[int, Any]:
    _, payload, content_type = body
    headers = {"Authorization": f"Bearer {KEY}"}
    if content_type:
        headers["Content-Type"] = content_type
    async with api.http.post(api.emu.base_url + path, data=payload, headers=headers) as reply:
        raw = await reply.read()
        try:
            decoded: Any = json.loads(raw) if "json" in reply.content_type else raw
        except ValueError:
            decoded = raw
        return reply.status, decoded


async def test_generated_bodies_never_get_a_5xx_and_reach_the_handlers(
    make_api: MakeApi,
) -> None:
    api = await make_api(rate_limit=None, account_rate_limit=None, inline_wait=0.3)
    rng = random.Random(SEED)
    # Unrelated state, never named in a generated body.
    bystander = await api.new_session()
    kept = (await api.post("/profiles", {"name": "bystander"})).body["profile"]["_id"]
    own = await api.new_session()
    fuzz = Fuzz(rng, own)
    upload_into = (await api.post("/profiles", {"name": "upload target"})).body["profile"]["_id"]

    routes: dict[str, Callable[[], tuple[Body, bool]]] = {
        "/start/run-task": lambda: fuzz.json_body(fuzz.run_task),
        "/start/start-session": lambda: fuzz.json_body(fuzz.start_session),
        "/start/send-message": lambda: fuzz.json_body(fuzz.send_message),
        "/profiles": lambda: fuzz.json_body(fuzz.objects),
        "/environments": lambda: fuzz.json_body(fuzz.objects),
        "/v1/chat/completions": lambda: fuzz.json_body(fuzz.chat),
        "/files/upload": lambda: (_multipart(rng, archive=False), False),
        f"/profiles/{upload_into}/upload": lambda: (_multipart(rng, archive=True), False),
        f"/environments/{upload_into}/upload": lambda: (_multipart(rng, archive=True), False),
    }
    failures: list[str] = []
    accepted: Counter[str] = Counter()
    valid: Counter[str] = Counter()
    statuses: Counter[tuple[str, int]] = Counter()
    for path, make in routes.items():
        for _ in range(BODIES_PER_ROUTE):
            body, is_valid = make()
            status, answer = await _send(api, path, body)
            statuses[(path, status)] += 1
            valid[path] += is_valid
            accepted[path] += is_valid and status < 300
            if status >= 500:
                failures.append(f"{path} {body[0]}: {status} {answer!r}"[:400])
            elif status >= 400:
                problem = _error_shape(path, status, answer)
                if problem:
                    failures.append(f"{path} {body[0]}: {problem}")
            if path in ("/profiles", "/environments") and status < 300:
                created = answer.get("profile") or answer.get("environment")
                await api.delete(f"{path}/{created['_id']}")  # stay under the 20 allowed
            if path == "/start/send-message" and status >= 400 and own not in api.emu.state.live:
                own = fuzz.session_id = await api.new_session()  # a terminate ended it
    assert failures == [], "\n".join(failures)
    reach = {path: f"{accepted[path]}/{valid[path]}" for path in valid if valid[path]}
    print("valid-shaped bodies accepted per route:", reach)  # shown with pytest -s
    for path in reach:
        assert accepted[path] * 3 >= valid[path], (path, reach, dict(statuses))
    # Multipart routes: well-formed uploads get through too.
    for path in routes:
        if "upload" in path:
            assert statuses[(path, 200)] >= BODIES_PER_ROUTE // 4, (path, dict(statuses))
    # Unrelated state is as it was, and the server is healthy.
    assert bystander in api.emu.live_sessions()
    assert api.emu.state.sessions[bystander].tasks == {}
    profile = api.emu.state.environments[kept]
    assert (profile.name, profile.status) == ("bystander", "empty")
    assert (await api.get("/start/health")).status == 200
