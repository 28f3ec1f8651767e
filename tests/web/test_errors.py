"""Bad input gets a clear 4xx in the one JSON error shape; nothing gets a stack trace.

Bad images, oversized uploads (announced or not), malformed JSON, missing fields, wrong
types, unknown routes and methods. Oversized bodies are also sent below the test client,
straight to the ASGI app, with a ``Content-Length`` that lies and in chunks without one: the
limit counts the bytes that arrive.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from PIL import Image
from starlette.types import Message, Scope
from web_helpers import (
    API,
    CASE,
    CUSTODY,
    PURPOSE,
    Agency,
    Session,
    audit_rows,
    error_of,
    running,
    template,
)

from faceledger.config import ImageLimits
from faceledger.services import galleries
from faceledger.services.devices import DEVICE_HEADER
from faceledger.web.limits import BodyLimits

__all__ = ["template"]  # fixtures

IMAGE_LIMIT = 100_000
LIMITS = BodyLimits(json_bytes=16 * 1024, upload_bytes=300_000)
FORM = {"case_number": CASE, "purpose": PURPOSE, "galleries": [CUSTODY], "justification": "robbery"}


@pytest.fixture(scope="module")
def agency(tmp_path_factory: pytest.TempPathFactory, template: Path) -> Iterator[Agency]:
    folder = tmp_path_factory.mktemp("errors") / "data"
    with running(folder, template, image=ImageLimits(max_bytes=IMAGE_LIMIT), body_limits=LIMITS) as started:
        started.load_example_policy()
        galleries.create_gallery(started.dd, CUSTODY, legal_basis="PACE s.64A", source_description="LFW")
        started.add("eve.examiner", "examiner")
        yield started


@pytest.fixture
def eve(agency: Agency) -> Session:
    return agency.login("eve.examiner")


def encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def noise_jpeg(side: int = 64) -> bytes:
    pixels = np.random.default_rng(7).integers(0, 256, (side, side, 3), dtype=np.uint8)
    return encoded(Image.fromarray(pixels), "JPEG")


def search(agency: Agency, session: Session, data: bytes, **form: Any) -> Any:
    files = {"probe": ("probe.jpg", data, "image/jpeg")}
    return agency.client.post(f"{API}/searches", data={**FORM, **form}, files=files, headers=session.headers)


# --- images --------------------------------------------------------------------------------------

BAD_IMAGES = {
    "text": (b"just some text, no picture", "bad_image", 422),
    "truncated jpeg": (noise_jpeg()[:300], "bad_image", 422),
    "too small": (encoded(Image.new("RGB", (8, 8), "grey"), "PNG"), "bad_image", 422),
    # 12,000 x 12,000 pixels of one colour: a few KB of PNG, 144 megapixels decoded.
    "decompression bomb": (encoded(Image.new("1", (12_000, 12_000)), "PNG"), "image_too_large", 413),
    "empty": (b"", "invalid_input", 422),
}


@pytest.mark.parametrize("kind", sorted(BAD_IMAGES))
def test_a_bad_probe_is_a_clear_client_error_and_nothing_is_kept(
    agency: Agency, eve: Session, kind: str
) -> None:
    data, code, status = BAD_IMAGES[kind]
    searches_before = len(audit_rows(agency.dd, "search"))
    answer = search(agency, eve, data)
    assert answer.status_code == status, answer.text
    error = error_of(answer)
    assert error["code"] == code
    assert "Traceback" not in answer.text
    assert len(audit_rows(agency.dd, "search")) == searches_before
    assert not agency.app.state.faceledger.engine.loaded, "a bad probe must not load the face models"


def test_a_gallery_image_that_is_not_a_photo_is_refused(agency: Agency) -> None:
    agency.add("gil.galleries", "gallery_admin")
    gil = agency.login("gil.galleries")
    form = {"subject_id": "S-1", "source": "custody record 1", "collected_on": "2024-05-01"}
    files = {"image": ("s1.png", b"\x89PNG\r\n\x1a\n broken", "image/png")}
    answer = agency.client.post(
        f"{API}/galleries/{CUSTODY}/images", data=form, files=files, headers=gil.headers
    )
    assert answer.status_code == 422
    assert error_of(answer)["code"] == "bad_image"


def test_an_image_over_the_byte_limit_is_refused_before_decoding(agency: Agency, eve: Session) -> None:
    answer = search(agency, eve, b"\xff\xd8" + bytes(IMAGE_LIMIT + 10))
    assert answer.status_code == 413
    error = error_of(answer)
    assert error["code"] == "image_too_large"
    assert f"{IMAGE_LIMIT:,}" in error["message"]


def test_an_upload_over_the_body_limit_is_refused(agency: Agency, eve: Session) -> None:
    answer = search(agency, eve, bytes(LIMITS.upload_bytes + 1))
    assert answer.status_code == 413
    assert error_of(answer)["code"] == "request_too_large"


def test_a_json_body_over_its_limit_is_refused(agency: Agency) -> None:
    big = {"username": "x", "password": "y" * (LIMITS.json_bytes + 1)}
    answer = agency.client.post(f"{API}/auth/login", json=big)
    assert answer.status_code == 413
    assert error_of(answer)["code"] == "request_too_large"


def _send_raw(agency: Agency, path: str, headers: dict[str, str], chunks: list[bytes]) -> tuple[int, Any]:
    """Call the ASGI app directly: the body arrives in ``chunks``, whatever the headers claim."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    messages: list[Message] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    anyio.run(agency.app, scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


@pytest.mark.parametrize("announced", [None, "100"])
def test_the_limit_counts_the_bytes_that_arrive_not_the_header(agency: Agency, announced: str | None) -> None:
    chunk = b"{" + b" " * 8190
    headers = {"content-type": "application/json"}
    if announced is not None:
        headers["content-length"] = announced  # a lie: far more follows
    status, body = _send_raw(agency, f"{API}/auth/login", headers, [chunk] * 4 + [b"}"])
    assert status == 413
    assert body["error"]["code"] == "request_too_large"


def test_a_chunked_upload_over_the_limit_is_refused_mid_stream(agency: Agency, eve: Session) -> None:
    boundary = "xyz"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="probe"; filename="p.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    headers = {**eve.headers, "content-type": f"multipart/form-data; boundary={boundary}"}
    status, body = _send_raw(agency, f"{API}/searches", headers, [head] + [bytes(64 * 1024)] * 6)
    assert status == 413
    assert body["error"]["code"] == "request_too_large"


# --- JSON and fields -------------------------------------------------------------------------------


def test_malformed_json_is_a_400_saying_so(agency: Agency) -> None:
    answer = agency.client.post(
        f"{API}/auth/login", content=b'{"username": "a", ', headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400
    assert error_of(answer)["code"] == "malformed_json"


def test_missing_fields_are_named(agency: Agency) -> None:
    answer = agency.client.post(f"{API}/auth/login", json={"username": "eve.examiner"})
    assert answer.status_code == 422
    error = error_of(answer)
    assert error["code"] == "invalid_request"
    assert [f["location"] for f in error["fields"]] == ["body.password"]
    assert "body.password" in error["message"]


WRONG_TYPES = [
    ("post", "/auth/login", {"username": ["eve"], "password": "x"}, "body.username"),
    ("post", "/auth/login", ["eve", "x"], "body"),
    ("post", "/tokens", {"name": "t", "scopes": "examiner", "days": 3}, "body.scopes"),
    ("post", "/tokens", {"name": "t", "scopes": ["examiner"], "days": "soon"}, "body.days"),
    ("post", "/tokens", {"name": "t", "scopes": ["superuser"]}, "body.scopes.0"),
    ("post", "/users", {"username": "x"}, "body.display_name"),
    ("put", "/users/eve.examiner/expiry", {"expires_at": "2030-01-01T00:00:00"}, "body.expires_at"),
    ("get", "/users?limit=100000", None, "query.limit"),
    ("get", "/audit/entries?since=yesterday", None, "query.since"),
    ("get", "/searches/0", None, "path.search_id"),
    ("get", f"/searches/{2**70}", None, "path.search_id"),
]


@pytest.mark.parametrize(("method", "path", "body", "where"), WRONG_TYPES)
def test_wrong_types_are_refused_naming_the_field(
    agency: Agency, method: str, path: str, body: Any, where: str
) -> None:
    session = agency.admin()
    answer = agency.client.request(method.upper(), f"{API}{path}", json=body, headers=session.headers)
    assert answer.status_code == 422, answer.text
    error = error_of(answer)
    assert error["code"] == "invalid_request"
    assert where in [f["location"] for f in error["fields"]]


def test_a_search_without_a_probe_file_is_refused(agency: Agency, eve: Session) -> None:
    answer = agency.client.post(f"{API}/searches", data=FORM, headers=eve.headers)
    assert answer.status_code == 422
    assert "body.probe" in [f["location"] for f in error_of(answer)["fields"]]


def test_edits_that_are_not_json_are_refused(agency: Agency, eve: Session) -> None:
    answer = search(agency, eve, noise_jpeg(), edits='[{"kind": "crop"')
    assert answer.status_code == 422
    assert "edits: not valid JSON" in error_of(answer)["message"]
    answer = search(agency, eve, noise_jpeg(), edits='[{"kind": "zoom", "params": {"factor": 2}}]')
    assert answer.status_code == 422
    assert "unknown probe edit 'zoom'" in error_of(answer)["message"]


def test_a_malformed_device_header_is_refused(agency: Agency, eve: Session) -> None:
    answer = agency.client.get(f"{API}/auth/me", headers={**eve.headers, DEVICE_HEADER: "ws-01"})
    assert answer.status_code == 422
    assert "<device-id>:<secret>" in error_of(answer)["message"]


# --- routes ----------------------------------------------------------------------------------------


def test_unknown_routes_and_methods_get_json_errors(agency: Agency) -> None:
    missing = agency.client.get(f"{API}/no-such-thing")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"
    wrong = agency.client.delete(f"{API}/health")
    assert wrong.status_code == 405
    assert error_of(wrong)["code"] == "method_not_allowed"
    assert wrong.headers["allow"] == "GET, HEAD"
    # A path served by two routes (show and purge a gallery): Allow names both.
    both = agency.client.put(f"{API}/galleries/custody", headers=agency.admin().headers)
    assert both.status_code == 405
    assert both.headers["allow"] == "DELETE, GET, HEAD"


def test_an_unexpected_failure_is_logged_and_never_shown(
    agency: Agency, caplog: pytest.LogCaptureFixture
) -> None:
    @agency.app.get(f"{API}/boom")  # under the API: a path outside it is a web page, answered in HTML
    def boom() -> None:
        raise RuntimeError("database password is hunter2")

    with caplog.at_level(logging.ERROR, logger="faceledger.web"):
        answer = agency.client.get(f"{API}/boom")
    assert answer.status_code == 500
    error = error_of(answer)
    assert error["code"] == "internal_error"
    assert "hunter2" not in answer.text
    assert "Traceback" not in answer.text
    reference = error["message"].split("reference ")[1].split(" ")[0]
    logged = [r for r in caplog.records if reference in r.getMessage()]
    assert logged
    assert logged[0].exc_info is not None
    assert "hunter2" in str(logged[0].exc_info[1])


def test_an_unknown_query_parameter_is_refused_naming_it_and_the_ones_taken(
    agency: Agency, eve: Session
) -> None:
    """A misspelt filter must not answer as if no filter had been asked for."""
    listed = agency.client.get(f"{API}/galleries", params={"limt": "5"}, headers=eve.headers)
    assert listed.status_code == 422
    message = error_of(listed)["message"]
    assert message.startswith("unknown query parameter 'limt' (this operation takes: limit, offset)")
    hostile = agency.client.get(f"{API}/galleries", params={"\x1b[2J": "1"}, headers=eve.headers)
    assert hostile.status_code == 422
    assert "\\x1b[2J" in error_of(hostile)["message"]
    assert (
        agency.client.get(f"{API}/galleries", params={"limit": "5"}, headers=eve.headers).status_code == 200
    )
    assert agency.client.get(f"{API}/health", params={"x": "1"}).status_code == 422  # takes none
