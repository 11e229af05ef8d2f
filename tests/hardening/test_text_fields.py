"""Text fields with control characters, on SQLite and on a real PostgreSQL (fake model: API
shape only). PostgreSQL cannot store a NUL in text, so a display name with one was a 500
there; control characters are now refused up front (422, nothing stored) on both."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import FakeDetector, FakeEmbedder, make_api, yale_bytes

CONTROL = ["nul\x00inside", "tab\tstop", "bell\x07", "escape\x1b[31mred", "del\x7f", "line\nbreak", "c1\x85"]


@pytest.fixture
def api(database_url):
    with make_api(database_url, FakeEmbedder(), FakeDetector()) as api:
        yield api


@pytest.mark.parametrize("name", CONTROL, ids=[repr(c)[1:-1] for c in CONTROL])
def test_display_names_with_control_characters_are_422_and_store_nothing(api, name):
    photo = yale_bytes("subject01.normal")
    form = api.enroll("p1", photo, display_name=name)
    json_body = api.http.post("/enroll", headers=api.admin, json={
        "person_id": "p2", "display_name": name, "image_base64": base64.b64encode(photo).decode()})
    for r in (form, json_body):
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "invalid_request" and "display_name" in r.json()["detail"]
    assert api.count_persons() == 0


def test_ordinary_display_names_still_work(api):
    photo = yale_bytes("subject01.normal")
    names = ["Ada Lovelace", "Zoë Ñúñez-O'Brien", "王小明", "محمد", "emoji 🙂", "x" * 256]
    for i, name in enumerate(names):
        r = api.enroll(f"p{i}", photo, display_name=name)
        assert r.status_code == 201, (name, r.text)
        assert r.json()["person"]["display_name"] == name
    assert api.count_persons() == len(names)
