"""Task file uploads, profiles and environments (one store, two views), signed downloads."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from aiohttp.payload import AsyncIterablePayload

from tests.archives import fake_tar_gz, tar_gz
from tests.emulator.emulator_support import Api, MakeApi, form
from tests.support import wait_until

HEX24 = re.compile(r"^[0-9a-f]{24}$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
VIEWS = [("profiles", "profile", "Profile"), ("environments", "environment", "Environment")]


# -- POST /files/upload -----------------------------------------------------------------------


async def test_upload_several_files(api: Api) -> None:
    data = aiohttp.FormData()
    data.add_field("files", b"%PDF-1.4 hello", filename="document.pdf")
    data.add_field("files", b"\x89PNG....", filename="photo.png")
    reply = await api.call("POST", "/files/upload", data=data)
    assert reply.status == 200
    files = reply.body["files"]
    assert [(f["originalName"], f["size"]) for f in files] == [
        ("document.pdf", 14),
        ("photo.png", 8),
    ]
    assert all(HEX24.match(f["fileId"]) for f in files)
    assert reply.body == {"success": True, "files": files}
    # Orphans can be used by id in any task.
    run = await api.post("/start/run-task", {"taskDetails": "read", "files": [files[0]["fileId"]]})
    assert run.body["type"] == "task_completed"


async def test_upload_single_file_field_and_environment(api: Api) -> None:
    env_id = (await api.post("/environments", {"name": "e"})).body["environment"]["_id"]
    reply = await api.call(
        "POST", "/files/upload", data=form("file", b"abc", "a.txt", environmentId=env_id)
    )
    assert reply.status == 200
    (uploaded,) = reply.body["files"]
    listed = await api.get(f"/environments/{env_id}/files")
    (entry,) = listed.body["files"]
    assert entry == {**uploaded, "createdAt": entry["createdAt"]}
    assert ISO.match(entry["createdAt"])


async def test_orphan_is_promoted_when_used_with_environment(api: Api) -> None:
    env_id = (await api.post("/environments", {"name": "e"})).body["environment"]["_id"]
    file_id = (await api.call("POST", "/files/upload", data=form("files", b"x", "x.txt"))).body[
        "files"
    ][0]["fileId"]
    assert (await api.get(f"/environments/{env_id}/files")).body["files"] == []
    await api.post(
        "/start/run-task", {"taskDetails": "use it", "environmentId": env_id, "files": [file_id]}
    )
    assert [
        f["fileId"] for f in (await api.get(f"/environments/{env_id}/files")).body["files"]
    ] == [file_id]


async def test_upload_errors(make_api: MakeApi) -> None:
    api = await make_api(max_upload_bytes=1000)
    no_file = {"success": False, "message": "No file provided", "code": "MISSING_REQUIRED_FIELD"}
    reply = await api.call("POST", "/files/upload", data=form("other", b"abc", "a.txt"))
    assert (reply.status, reply.body) == (400, no_file)
    reply = await api.post("/files/upload", {"files": []})
    assert (reply.status, reply.body) == (400, no_file)
    reply = await api.call("POST", "/files/upload", data=form("files", b"x" * 1001, "big.bin"))
    assert reply.status == 400
    assert reply.body["code"] == "FILE_TOO_LARGE"
    assert reply.body["message"] == "File exceeds the 0.000954 MB limit"
    reply = await api.call(
        "POST", "/files/upload", data=form("files", b"x", "a.txt", environmentId="0" * 24)
    )
    assert reply.status == 404
    assert reply.body["message"] == "Environment not found"
    assert api.emu.state.files == {}
    assert list(api.emu.engine.tmp_dir.iterdir()) == []  # type: ignore[union-attr]


async def test_default_limit_message(api: Api) -> None:
    from webrun_async.emulator.http.uploads import too_large

    assert too_large(api.emu.config.max_upload_bytes).message == "File exceeds the 500 MB limit"


async def test_environment_file_delete(api: Api) -> None:
    env_id = (await api.post("/environments", {"name": "e"})).body["environment"]["_id"]
    up = await api.call(
        "POST", "/files/upload", data=form("files", b"abc", "a.txt", environmentId=env_id)
    )
    file_id = up.body["files"][0]["fileId"]
    reply = await api.delete(f"/environments/{env_id}/files/{file_id}")
    assert reply.body == {"success": True, "message": "File deleted"}
    reply = await api.delete(f"/environments/{env_id}/files/{file_id}")
    assert reply.status == 404
    assert reply.body == {"success": False, "message": "File not found", "code": "FILE_NOT_FOUND"}
    assert (await api.delete(f"/environments/{'0' * 24}/files/{file_id}")).body[
        "message"
    ] == "Environment not found"
    assert (await api.get(f"/environments/{'0' * 24}/files")).status == 404


# -- profiles and environments ----------------------------------------------------------------


@pytest.mark.parametrize(("plural", "key", "label"), VIEWS)
async def test_create_list_delete(api: Api, plural: str, key: str, label: str) -> None:
    reply = await api.post(f"/{plural}", {"name": "  work  ", "description": "for work"})
    assert reply.status == 200
    assert reply.body["success"] is True
    assert reply.body["message"] == f"{label} created"
    obj = reply.body[key]
    assert HEX24.match(obj["_id"])
    assert HEX24.match(obj["userId"])
    assert obj == {
        "_id": obj["_id"],
        "userId": obj["userId"],
        "name": "work",
        "description": "for work",
        "status": "empty",
        "blobSize": None,
        "blobUploadedAt": None,
        "lastUsedAt": None,
        "usageCount": 0,
        "createdAt": obj["createdAt"],
        "updatedAt": obj["createdAt"],
    }
    assert ISO.match(obj["createdAt"])
    second = (await api.post(f"/{plural}", {"name": "second"})).body[key]
    assert second["description"] == ""
    listed = await api.get(f"/{plural}")
    assert listed.body == {"success": True, plural: [second, obj]}  # newest first
    # The other view shows the same objects.
    other = "environments" if plural == "profiles" else "profiles"
    assert [o["_id"] for o in (await api.get(f"/{other}")).body[other]] == [
        second["_id"],
        obj["_id"],
    ]
    reply = await api.delete(f"/{plural}/{obj['_id']}")
    assert reply.body == {"success": True, "message": f"{label} deleted"}
    reply = await api.delete(f"/{plural}/{obj['_id']}")
    assert reply.status == 404
    assert reply.body == {"success": False, "message": f"{label} not found", "code": "NOT_FOUND"}


@pytest.mark.parametrize(("plural", "key", "label"), VIEWS)
@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        ({}, "{label} name is required", "MISSING_REQUIRED_FIELD"),
        ({"name": ""}, "{label} name is required", "MISSING_REQUIRED_FIELD"),
        ({"name": "   "}, "{label} name is required", "MISSING_REQUIRED_FIELD"),
        ({"name": 7}, "{label} name is required", "MISSING_REQUIRED_FIELD"),
        ({"name": "n" * 101}, "{label} name must be at most 100 characters", "INVALID_PARAMETER"),
        (
            {"name": "n", "description": "d" * 501},
            "{label} description must be at most 500 characters",
            "INVALID_PARAMETER",
        ),
    ],
)
async def test_create_validation(
    api: Api, plural: str, key: str, label: str, body: dict[str, Any], message: str, code: str
) -> None:
    reply = await api.post(f"/{plural}", body)
    assert reply.status == 400
    assert reply.body == {"success": False, "message": message.format(label=label), "code": code}


async def test_length_limits_are_inclusive(api: Api) -> None:
    reply = await api.post("/profiles", {"name": "n" * 100, "description": "d" * 500})
    assert reply.status == 200


@pytest.mark.parametrize(("plural", "key", "label"), VIEWS)
async def test_twenty_objects_at_most(api: Api, plural: str, key: str, label: str) -> None:
    for index in range(20):
        view = VIEWS[index % 2][0]  # both views fill the same store
        assert (await api.post(f"/{view}", {"name": f"p{index}"})).status == 200
    reply = await api.post(f"/{plural}", {"name": "one too many"})
    assert reply.status == 400
    assert reply.body == {
        "success": False,
        "message": f"Maximum of 20 {plural} allowed",
        "code": "LIMIT_REACHED",
    }


@pytest.mark.parametrize(("plural", "key", "label"), VIEWS)
@pytest.mark.parametrize(
    ("field", "filename"), [("file", "profile.tar.gz"), ("files", "PROFILE.TGZ")]
)
async def test_archive_upload(
    api: Api, plural: str, key: str, label: str, field: str, filename: str
) -> None:
    obj_id = (await api.post(f"/{plural}", {"name": "p"})).body[key]["_id"]
    archive = tar_gz()
    reply = await api.call(
        "POST", f"/{plural}/{obj_id}/upload", data=form(field, archive, filename)
    )
    assert reply.status == 200, reply.body
    assert reply.body["success"] is True
    assert reply.body["message"] == "Profile uploaded successfully"
    obj = reply.body[key]
    assert obj["status"] == "ready"
    assert obj["blobSize"] == len(archive)
    assert ISO.match(obj["blobUploadedAt"])


@pytest.mark.parametrize(
    ("content", "filename"),
    [
        (fake_tar_gz(), "profile.tar.gz"),  # right name, gzip but not tar
        (b"plain text pretending", "profile.tar.gz"),  # right name, not even gzip
        (b"", "empty.tar.gz"),
        (tar_gz(), "profile.zip"),  # real archive, wrong name
    ],
)
async def test_archive_upload_rejects_non_tar_gz(api: Api, content: bytes, filename: str) -> None:
    obj_id = (await api.post("/profiles", {"name": "p"})).body["profile"]["_id"]
    reply = await api.call(
        "POST", f"/profiles/{obj_id}/upload", data=form("file", content, filename)
    )
    assert reply.status == 400
    assert reply.body == {
        "success": False,
        "message": "Only .tar.gz files are allowed",
        "code": "INVALID_FILE_TYPE",
    }
    assert (await api.get("/profiles")).body["profiles"][0]["status"] == "empty"


async def test_archive_upload_other_errors(make_api: MakeApi) -> None:
    api = await make_api(max_upload_bytes=2048)
    obj_id = (await api.post("/profiles", {"name": "p"})).body["profile"]["_id"]
    reply = await api.call(
        "POST", f"/profiles/{obj_id}/upload", data=form("other", b"x", "a.tar.gz")
    )
    assert reply.status == 400
    assert reply.body["message"] == "No file provided"
    big = tar_gz({"big.bin": random.Random(7).randbytes(5000)})  # incompressible
    assert len(big) > 2048
    reply = await api.call("POST", f"/profiles/{obj_id}/upload", data=form("file", big, "p.tar.gz"))
    assert reply.status == 400
    assert reply.body["code"] == "FILE_TOO_LARGE"
    reply = await api.call(
        "POST", f"/profiles/{'0' * 24}/upload", data=form("file", tar_gz(), "p.tar.gz")
    )
    assert reply.status == 404
    assert reply.body["message"] == "Profile not found"
    reply = await api.call(
        "POST", f"/environments/{'0' * 24}/upload", data=form("file", tar_gz(), "p.tar.gz")
    )
    assert reply.status == 404
    assert reply.body["message"] == "Environment not found"
    assert list(api.emu.engine.tmp_dir.iterdir()) == []  # type: ignore[union-attr]


async def test_download_signed_url(api: Api) -> None:
    obj_id = (await api.post("/profiles", {"name": "p"})).body["profile"]["_id"]
    reply = await api.get(f"/profiles/{obj_id}/download")
    assert reply.status == 400
    assert reply.body == {
        "success": False,
        "message": "Profile has no data to download",
        "code": "NO_DATA",
    }
    archive = tar_gz()
    await api.call("POST", f"/profiles/{obj_id}/upload", data=form("file", archive, "p.tar.gz"))
    reply = await api.get(f"/profiles/{obj_id}/download")
    assert reply.status == 200
    url = reply.body["downloadUrl"]
    assert url.startswith(f"{api.emu.base_url}/_emulator/blobs/{obj_id}.tar.gz?expires=")
    assert ISO.match(reply.body["expiresAt"])
    blob = await api.http.get(url)  # no auth needed
    assert blob.status == 200
    assert await blob.read() == archive
    assert (await api.get(f"/profiles/{'0' * 24}/download")).status == 404


async def test_tampered_and_expired_urls(make_api: MakeApi) -> None:
    forbidden = {
        "success": False,
        "message": "Invalid or expired signature",
        "code": "INVALID_SIGNATURE",
    }
    for ttl, tamper in ((3600.0, "signature"), (3600.0, "expires"), (0.0, None)):
        api = await make_api(signed_url_ttl=ttl)
        obj_id = (await api.post("/profiles", {"name": "p"})).body["profile"]["_id"]
        await api.call(
            "POST", f"/profiles/{obj_id}/upload", data=form("file", tar_gz(), "p.tar.gz")
        )
        url = (await api.get(f"/profiles/{obj_id}/download")).body["downloadUrl"]
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if tamper == "signature":
            query["signature"] = ("0" if query["signature"][0] != "0" else "1") + query[
                "signature"
            ][1:]
        elif tamper == "expires":
            query["expires"] = str(int(query["expires"]) + 3600)
        reply = await api.get(
            f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}", key=None
        )
        assert (reply.status, reply.body) == (403, forbidden)


async def test_environment_delete_removes_blob_and_files(api: Api) -> None:
    env_id = (await api.post("/environments", {"name": "e"})).body["environment"]["_id"]
    await api.call(
        "POST", f"/environments/{env_id}/upload", data=form("file", tar_gz(), "p.tar.gz")
    )
    await api.call(
        "POST", "/files/upload", data=form("files", b"abc", "a.txt", environmentId=env_id)
    )
    assert len(list(api.emu.engine.tmp_dir.iterdir())) == 2  # type: ignore[union-attr]
    await api.delete(f"/environments/{env_id}")
    assert api.emu.state.files == {}
    assert list(api.emu.engine.tmp_dir.iterdir()) == []  # type: ignore[union-attr]


async def test_reupload_replaces_blob(api: Api) -> None:
    obj_id = (await api.post("/profiles", {"name": "p"})).body["profile"]["_id"]
    await api.call("POST", f"/profiles/{obj_id}/upload", data=form("file", tar_gz(), "p.tar.gz"))
    second = tar_gz({"a": b"1" * 5000})
    reply = await api.call(
        "POST", f"/profiles/{obj_id}/upload", data=form("file", second, "p.tar.gz")
    )
    assert reply.body["profile"]["blobSize"] == len(second)
    assert len(list(api.emu.engine.tmp_dir.iterdir())) == 1  # type: ignore[union-attr]


async def test_temp_dir_removed_on_close(make_api: MakeApi) -> None:
    api = await make_api()
    await api.call("POST", "/files/upload", data=form("files", b"abc", "a.txt"))
    tmp = api.emu.engine.tmp_dir
    assert tmp is not None
    assert tmp.exists()
    await api.emu.aclose()
    assert not tmp.exists()


async def test_status_is_uploading_while_the_archive_streams(api: Api) -> None:
    obj_id = (await api.post("/profiles", {"name": "p"})).body["profile"]["_id"]
    archive = tar_gz({"data.bin": random.Random(3).randbytes(200_000)})
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield archive[:1000]
        await release.wait()
        yield archive[1000:]

    writer = aiohttp.MultipartWriter("form-data")
    part = writer.append(AsyncIterablePayload(slow_body()))
    part.set_content_disposition("form-data", name="file", filename="p.tar.gz")
    upload = asyncio.create_task(api.call("POST", f"/profiles/{obj_id}/upload", data=writer))

    async def uploading() -> bool:
        status: str = (await api.get("/profiles")).body["profiles"][0]["status"]
        return status == "uploading"

    await wait_until(uploading)
    release.set()
    reply = await upload
    assert reply.status == 200, reply.body
    assert reply.body["profile"]["status"] == "ready"
    assert reply.body["profile"]["blobSize"] == len(archive)
