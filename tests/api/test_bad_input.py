"""Every bad input gets its 4xx and stable `code`, and nothing in the database changes."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from tests.conftest import side_by_side, yale_bytes

PROBLEM = "application/problem+json"


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries almost no data (a decompression bomb header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def tiny_png(w=1, h=1) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 150, 120)).save(buf, "PNG")
    return buf.getvalue()


def truncated_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(yale_bytes("subject02.normal"))).convert("RGB").save(buf, "JPEG")
    return buf.getvalue()[: len(buf.getvalue()) // 2]


def blank_photo() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 140, 200)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def seeded(api):
    assert api.enroll("anchor", yale_bytes("subject01.normal")).status_code == 201
    return api


def assert_problem(r, status: int, code: str):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["code"] == code and body["status"] == status and body["detail"]
    assert "Traceback" not in r.text


@pytest.mark.parametrize(("image", "status", "code"), [
    (b"", 400, "image_missing"),
    (b"this is a text file, not a photo\n" * 20, 415, "unsupported_image_type"),
    (truncated_jpeg(), 422, "image_corrupt"),
    (tiny_png(1, 1), 422, "image_too_small"),
    (png_header_only(50_000, 50_000), 413, "image_too_many_pixels"),
    (blank_photo(), 422, "no_face"),
    (side_by_side(yale_bytes("subject02.normal"), yale_bytes("subject03.normal")), 422, "multiple_faces"),
], ids=["empty", "text-as-jpg", "truncated-jpeg", "1x1", "bomb-header", "no-face", "two-faces"])
def test_bad_images_on_enroll(seeded, image, status, code):
    api = seeded
    r = api.http.post("/enroll", data={"person_id": "newcomer"},
                      files={"image": ("photo.jpg", image, "image/jpeg")}, headers=api.admin)
    assert_problem(r, status, code)
    assert api.count_persons() == 1
    assert api.http.get("/persons/newcomer", headers=api.client).status_code == 404


def test_bad_images_on_verify_and_identify(seeded):
    api = seeded
    assert_problem(api.verify("anchor", blank_photo()), 422, "no_face")
    assert_problem(api.identify(b"GIF89a-not-really"), 422, "image_corrupt")
    assert_problem(api.identify(png_header_only(60_000, 60_000)), 413, "image_too_many_pixels")


def large_and_small(large: str, small: str) -> bytes:
    """`large` at full size on the left (x < 320), `small` at half size on the right."""
    a = Image.open(io.BytesIO(yale_bytes(large))).convert("RGB")
    b = Image.open(io.BytesIO(yale_bytes(small))).convert("RGB")
    b = b.resize((b.width // 2, b.height // 2))
    out = Image.new("RGB", (a.width + b.width, a.height), (128, 128, 128))
    out.paste(a, (0, 0))
    out.paste(b, (a.width, (a.height - b.height) // 2))
    buf = io.BytesIO()
    out.save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("large,small,match", [("subject01.happy", "subject04.normal", True),
                                               ("subject04.normal", "subject01.happy", False)])
def test_verify_reports_faces_seen_and_uses_the_largest(seeded, large, small, match):
    """Two faces, the anchor's (subject01) once large and once small: the returned face box
    is the large face's (left half, wider than the small face could be), and the decision
    follows that face, not the other."""
    r = seeded.verify("anchor", large_and_small(large, small))
    assert r.status_code == 200, r.text
    face = r.json()["face"]
    x, y, w, h = face["box"]
    assert face["faces_detected"] == 2
    assert x + w <= 320 and w > 160 / 2, face["box"]  # inside the large photo; the small one is 160 px wide
    assert r.json()["match"] is match


def test_unknown_person(seeded):
    assert_problem(seeded.verify("nobody", yale_bytes("subject01.happy")), 404, "person_not_found")
    assert_problem(seeded.http.get("/persons/nobody", headers=seeded.client), 404, "person_not_found")
    assert_problem(seeded.http.delete("/persons/nobody", headers=seeded.admin), 404, "person_not_found")
    assert seeded.count_persons() == 1


def test_duplicate_enroll(seeded):
    before = seeded.http.get("/persons/anchor", headers=seeded.client).json()
    assert_problem(seeded.enroll("anchor", yale_bytes("subject05.normal")), 409, "person_exists")
    assert seeded.http.get("/persons/anchor", headers=seeded.client).json() == before
    # and the stored embedding is still subject01's
    assert seeded.verify("anchor", yale_bytes("subject01.happy")).json()["match"] is True


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "fa_wrong"}], ids=["missing", "wrong"])
def test_missing_or_wrong_key(seeded, headers):
    assert_problem(seeded.enroll("x", yale_bytes("subject05.normal"), key=headers), 401, "unauthenticated")
    assert_problem(seeded.verify("anchor", yale_bytes("subject01.happy"), key=headers), 401, "unauthenticated")
    assert_problem(seeded.identify(yale_bytes("subject01.happy"), key=headers), 401, "unauthenticated")
    assert seeded.count_persons() == 1


def test_client_key_cannot_enroll_or_delete(seeded):
    assert_problem(seeded.enroll("x", yale_bytes("subject05.normal"), key=seeded.client), 403, "forbidden")
    assert_problem(seeded.http.delete("/persons/anchor", headers=seeded.client), 403, "forbidden")
    assert seeded.count_persons() == 1


def test_oversize_upload(seeded):
    big = b"\xff\xd8\xff" + b"\0" * (11 * 1024 * 1024)
    r = seeded.http.post("/enroll", data={"person_id": "big"}, files={"image": ("a.jpg", big)},
                         headers=seeded.admin)
    assert_problem(r, 413, "payload_too_large")
    assert seeded.count_persons() == 1


def test_invalid_fields(seeded):
    r = seeded.http.post("/enroll", data={"person_id": "bad id with spaces"},
                         files={"image": ("a.png", yale_bytes("subject05.normal"))}, headers=seeded.admin)
    assert_problem(r, 422, "invalid_request")
    r = seeded.http.post("/identify", json={"image_base64": "%%%not base64%%%"}, headers=seeded.client)
    assert_problem(r, 400, "invalid_base64")
    r = seeded.http.post("/identify", content=b"raw", headers={**seeded.client, "content-type": "text/plain"})
    assert_problem(r, 415, "unsupported_media_type")
    r = seeded.http.post("/identify", json={"image_base64": "aGk=", "top_k": 0}, headers=seeded.client)
    assert_problem(r, 422, "invalid_request")
    assert seeded.count_persons() == 1
