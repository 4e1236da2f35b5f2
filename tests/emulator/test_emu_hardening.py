"""The emulator as a server people run: hostile bodies, slow clients, origins, exposure.

Everything here goes over real sockets: raw TCP for the slow clients, aiohttp for the bodies,
python-socketio for the origins.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
import tarfile
from typing import Any

import pytest
import socketio  # type: ignore[import-untyped, unused-ignore]

from tests.emulator.emulator_support import Api, MakeApi, form
from tests.support import KEY, WAIT, MakeEmulator, wait_until
from webrun_async.emulator import ConfigError, Emulator, EmulatorConfig
from webrun_async.emulator.cli import config_from_args

BOUNDARY = "XyZzY"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def _part_head(name: str = "files", filename: str = "a.txt") -> bytes:
    return (
        (
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name={name!r}; "
            f"filename={filename!r}\r\n\r\n"
        )
        .replace("'", '"')
        .encode()
    )


def tar_gz() -> bytes:
    """A real, small `.tar.gz` archive."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        info = tarfile.TarInfo("Default/Cookies")
        info.size = 5
        archive.addfile(info, io.BytesIO(b"hello"))
    return gzip.compress(raw.getvalue())


def _broken_multipart(filename: str, content: bytes) -> dict[str, bytes]:
    head = _part_head("file" if filename.endswith(".tar.gz") else "files", filename)
    closing = f"\r\n--{BOUNDARY}--\r\n".encode()
    return {
        "no boundary in the body": b"just some bytes",
        "no closing boundary": head + content,
        "empty body": b"",
        "a part header over 8190 bytes": _part_head(filename="a" * 9000 + ".txt") + b"x" + closing,
        "a header line without a colon": f"--{BOUNDARY}\r\nno colon here\r\n\r\nx".encode()
        + closing,
        "a broken nested multipart": (
            f"--{BOUNDARY}\r\nContent-Type: multipart/mixed; boundary=inner\r\n"
            'Content-Disposition: form-data; name="files"; filename="a"\r\n\r\n'
            "--inner\r\n\r\nx"
        ).encode()
        + closing,
    }


UPLOAD_CASES = [
    (route, case)
    for route in ("/files/upload", "/profiles/{id}/upload", "/environments/{id}/upload")
    for case in _broken_multipart("a.tar.gz", b"")
]


@pytest.mark.parametrize(("route", "case"), UPLOAD_CASES)
async def test_malformed_multipart_is_a_400_and_changes_nothing(
    make_api: MakeApi, route: str, case: str
) -> None:
    api = await make_api(rate_limit=None, account_rate_limit=None)
    created = await api.post("/profiles", {"name": "p"})
    profile_id = created.body["profile"]["_id"]
    path = route.replace("{id}", profile_id)
    body = _broken_multipart("a.tar.gz" if "{id}" in route else "a.txt", tar_gz())[case]
    reply = await api.call("POST", path, data=body, headers={"Content-Type": MULTIPART})
    assert reply.status == 400, reply.body
    assert reply.body["success"] is False
    assert isinstance(reply.body["message"], str) and isinstance(reply.body["code"], str)
    assert api.emu.state.files == {}
    assert api.emu.state.environments[profile_id].status == "empty"
    # The server goes on serving: the same route takes a well-formed upload.
    if "{id}" in route:
        good = form("file", tar_gz(), "profile.tar.gz")
    else:
        good = form("files", b"hello", "a.txt")
    assert (await api.call("POST", path, data=good)).status == 200


async def test_a_truncated_archive_upload_does_not_replace_the_profile(api: Api) -> None:
    profile_id = (await api.post("/profiles", {"name": "p"})).body["profile"]["_id"]
    truncated = _part_head("file", "p.tar.gz") + tar_gz()  # no closing boundary
    path = f"/profiles/{profile_id}/upload"
    reply = await api.call("POST", path, data=truncated, headers={"Content-Type": MULTIPART})
    assert (reply.status, reply.body["message"]) == (400, "Malformed multipart body")
    assert api.emu.state.environments[profile_id].status == "empty"


def _nested(depth: int) -> bytes:
    """A run-task body whose deepest value sits `depth` levels down (the body is level 1)."""
    inner = b"[" * (depth - 1) + b"]" * (depth - 1)
    return b'{"taskDetails": "x [[duration=0.01]]", "extra": ' + inner + b"}"


async def test_json_nesting_is_bounded_at_100_levels(api: Api) -> None:
    headers = {"Content-Type": "application/json"}
    deep = await api.call("POST", "/start/run-task", data=_nested(101), headers=headers)
    assert deep.status == 400
    assert deep.body["message"] == "JSON body is nested deeper than 100 levels"
    fits = await api.call("POST", "/start/run-task", data=_nested(100), headers=headers)
    assert fits.status == 200, fits.body


@pytest.mark.parametrize(
    "route",
    [
        "/start/run-task",
        "/start/start-session",
        "/start/send-message",
        "/environments",
        "/profiles",
        "/v1/chat/completions",
    ],
)
async def test_json_nested_100000_deep_is_a_400(api: Api, route: str) -> None:
    for body in (b"[" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
        reply = await api.call(
            "POST", route, data=body, headers={"Content-Type": "application/json"}
        )
        assert reply.status == 400, reply.body
        if route.startswith("/v1/"):
            assert reply.body["error"]["type"] == "invalid_request_error"
        else:
            assert reply.body["code"] == "INVALID_PARAMETER"
    assert api.emu.sessions_created == 0
    assert (await api.get("/start/health")).status == 200


# -- slow clients ---------------------------------------------------------------------------


async def _raw(emu: Emulator) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = emu.base_url.removeprefix("http://").rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def _closed_without_answer(reader: asyncio.StreamReader) -> None:
    async with asyncio.timeout(WAIT):
        assert await reader.read() == b""


async def test_incomplete_headers_are_cut_off(make_api: MakeApi) -> None:
    api = await make_api(header_timeout=0.3)
    writers: list[asyncio.StreamWriter] = []
    try:
        # An idle connection that has answered a request stays open for keep-alive.
        reader, writer = await _raw(api.emu)
        writers.append(writer)
        writer.write(b"GET /start/health HTTP/1.1\r\nHost: emulator\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        await reader.readuntil(b"}")  # the small JSON body
        # A client that never finishes its headers is cut off, and so is a silent one...
        slow_reader, slow_writer = await _raw(api.emu)
        silent_reader, silent_writer = await _raw(api.emu)
        writers += [slow_writer, silent_writer]
        slow_writer.write(b"GET /start/health HTTP/1.1\r\nHost: emulator\r\nX-Slow: ")
        await _closed_without_answer(slow_reader)
        await _closed_without_answer(silent_reader)
        # ...and by then the keep-alive connection has been idle longer than the deadline.
        writer.write(b"GET /start/health HTTP/1.1\r\nHost: emulator\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    finally:
        for stream in writers:
            stream.close()
    assert (await api.get("/start/health")).status == 200


@pytest.mark.parametrize(
    ("route", "content_type"),
    [("/start/run-task", "application/json"), ("/files/upload", MULTIPART)],
)
async def test_a_stalled_body_is_a_408_and_the_connection_closes(
    make_api: MakeApi, route: str, content_type: str
) -> None:
    api = await make_api(body_timeout=0.3)
    reader, writer = await _raw(api.emu)
    partial = b'{"taskDetails": ' if "json" in content_type else _part_head() + b"abc"
    try:
        writer.write(
            (
                f"POST {route} HTTP/1.1\r\nHost: emulator\r\nAuthorization: Bearer {KEY}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: 100000\r\n\r\n"
            ).encode()
            + partial
        )
        async with asyncio.timeout(WAIT):
            answer = await reader.read()  # the answer, then the end of the connection
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"code":"REQUEST_TIMEOUT"' in answer
    assert api.emu.state.files == {} and api.emu.sessions_created == 0


# -- socket.io origins ----------------------------------------------------------------------


async def _socket_from(emu: Emulator, session_id: str, origin: str | None) -> bool:
    """Whether a socket.io connection sending `origin` is accepted."""
    client: Any = socketio.AsyncClient(reconnection=False)
    headers = {"Origin": origin} if origin is not None else {}
    try:
        await client.connect(
            emu.base_url,
            auth={"sessionId": session_id},
            headers=headers,
            transports=["polling"],
            wait_timeout=WAIT,
        )
    except socketio.exceptions.ConnectionError:
        return False
    await client.disconnect()
    return True


async def test_socket_origins_are_same_origin_by_default(api: Api) -> None:
    session_id = await api.new_session()
    assert await _socket_from(api.emu, session_id, None)
    assert await _socket_from(api.emu, session_id, api.emu.base_url)
    assert not await _socket_from(api.emu, session_id, "http://evil.example")
    assert api.emu.socket_connections == 2


async def test_cors_origins_let_a_named_page_in(make_api: MakeApi) -> None:
    api = await make_api(cors_origins=("http://localhost:3000",))
    session_id = await api.new_session()
    assert await _socket_from(api.emu, session_id, "http://localhost:3000")
    assert not await _socket_from(api.emu, session_id, "http://localhost:3001")
    anyone = await make_api(cors_origins=("*",))
    other = await anyone.new_session()
    assert await _socket_from(anyone.emu, other, "http://evil.example")


def test_cors_origin_flag_repeats_and_is_checked() -> None:
    config = config_from_args(
        ["--cors-origin", "http://localhost:3000", "--cors-origin", "https://[::1]:8443"]
    )
    assert config.cors_origins == ("http://localhost:3000", "https://[::1]:8443")
    assert config_from_args([]).cors_origins == ()
    for bad in ("localhost:3000", "http://localhost:3000/", "http://a.b/path"):
        with pytest.raises(ConfigError, match="cors_origins"):
            EmulatorConfig(cors_origins=(bad,))
    with pytest.raises(ConfigError, match="not one string"):
        EmulatorConfig(cors_origins="http://localhost:3000")  # type: ignore[arg-type]
    for field in ("header_timeout", "body_timeout"):
        with pytest.raises(ConfigError, match=field):
            EmulatorConfig(**{field: 0})


# -- exposure -------------------------------------------------------------------------------


async def test_binding_beyond_loopback_warns(
    make_emulator: MakeEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "webrun_async.emulator"):
        await make_emulator()
        assert caplog.records == []
        emu = await make_emulator(host="0.0.0.0")
    [record] = caplog.records
    assert "other machines can reach" in record.getMessage()
    assert KEY not in record.getMessage()
    assert emu.base_url.startswith("http://127.0.0.1:")


async def test_inspection_needs_the_key(api: Api) -> None:
    session_id = await api.new_session()
    for key in (None, "wr_not_the_key"):
        reply = await api.get("/_emulator/state", key=key)
        assert reply.status == 401
        assert session_id not in str(reply.body)
    assert (await api.get("/_emulator/state")).body["liveSessions"] == [session_id]
    # The test hooks of the Python object need no key.
    assert api.emu.live_sessions() == [session_id]


async def test_an_unknown_profile_id_is_profile_not_found(api: Api) -> None:
    unknown = "0" * 24
    by_profile = await api.post("/start/start-session", {"profileId": unknown})
    assert (by_profile.status, by_profile.body["message"]) == (404, "Profile not found")
    assert by_profile.body["code"] == "PROFILE_NOT_FOUND"
    by_env = await api.post("/start/run-task", {"taskDetails": "x", "environmentId": unknown})
    assert (by_env.status, by_env.body["message"]) == (404, "Environment not found")


@pytest.mark.parametrize(
    "packet",
    ['42["message",' + "[" * 100_000 + "]" * 100_000 + "]", '42["message", {broken', "4x"],
    ids=["nested 100,000 deep", "broken JSON", "broken framing"],
)
async def test_an_undecodable_socket_packet_closes_that_socket_quietly(
    api: Api, packet: str, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = await api.new_session()
    base = api.emu.base_url + "/socket.io/?EIO=4&transport=polling"
    async with api.http.get(base) as reply:
        sid = json.loads((await reply.text())[1:])["sid"]
    url = f"{base}&sid={sid}"
    async with api.http.post(url, data=f'40{{"sessionId":"{session_id}"}}') as reply:
        assert reply.status == 200
    async with api.http.get(url) as reply:
        assert (await reply.text()).startswith("40")  # connected
    await wait_until(lambda: api.emu.open_sockets() == 1, what="the socket to connect")
    with caplog.at_level(logging.DEBUG):
        async with api.http.post(url, data=packet) as reply:
            assert reply.status == 200
        await wait_until(lambda: api.emu.open_sockets() == 0, what="the socket to be closed")
    assert not [r for r in caplog.records if r.exc_info is not None]  # no traceback logged
    assert session_id in api.emu.live_sessions()  # the session itself is untouched
    assert (await api.get("/start/health")).status == 200
