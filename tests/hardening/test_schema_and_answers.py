"""What the published schema says matches what the real server process does, and answers
carry no internals: the documented image_base64 example is valid base64, the multipart
schemas refuse the extra fields the service refuses, a distance is never -0.0, and a
decompression bomb is refused in the service's words, not Pillow's."""

from __future__ import annotations

import base64
import binascii

import httpx
import pytest

from tests.conftest import add_keys, migrated_sqlite_url, yale_bytes
from tests.hardening.serving import serve
from tests.hardening.test_hostile_images import png_declaring


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schema")
    url = migrated_sqlite_url(tmp)
    admin_key, client_key = add_keys(url)
    with serve(tmp, url) as s, httpx.Client(base_url=s.base_url, timeout=60) as http:
        r = http.post("/enroll", data={"person_id": "s1"}, headers={"X-API-Key": admin_key},
                      files={"image": ("a.png", yale_bytes("subject01.normal"))})
        assert r.status_code == 201, r.text
        yield http, {"X-API-Key": admin_key}, {"X-API-Key": client_key}


def _bodies(spec: dict):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for media, content in op.get("requestBody", {}).get("content", {}).items():
                yield path, method, media, content["schema"]


def _resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_the_documented_image_base64_example_is_accepted_as_base64(live):
    http, _, client = live
    spec = http.get("/openapi.json").json()
    # every photo field of every JSON body (/compare has two: image_a_base64, image_b_base64)
    examples = {ex for _, _, media, schema in _bodies(spec) if media == "application/json"
                for name, field in _resolve(spec, schema)["properties"].items() if name.endswith("_base64")
                for ex in field.get("examples", [])}
    assert examples
    for example in examples:
        base64.b64decode(example, validate=True)  # raises binascii.Error on the old "/9j/4AAQ..."
        r = http.post("/verify", json={"person_id": "s1", "image_base64": example}, headers=client)
        # any answer but invalid_base64: a 200 (a face found and matched) has no `code`
        assert r.status_code != 400 and r.json().get("code") != "invalid_base64", r.text
    with pytest.raises(binascii.Error):
        base64.b64decode("/9j/4AAQSkZJRgABAQ...", validate=True)


def test_multipart_schemas_refuse_extra_fields_as_the_service_does(live):
    http, _, client = live
    spec = http.get("/openapi.json").json()
    multipart = [(p, s) for p, _, media, s in _bodies(spec) if media == "multipart/form-data"]
    assert {p for p, _ in multipart} >= {"/enroll", "/verify", "/identify"}
    for path, schema in multipart:
        assert _resolve(spec, schema).get("additionalProperties") is False, path
    r = http.post("/verify", data={"person_id": "s1", "nickname": "x"}, headers=client,
                  files={"image": ("a.png", yale_bytes("subject01.happy"))})
    assert r.status_code == 422 and r.json()["code"] == "invalid_request", r.text


def test_a_distance_is_never_negative_zero(live):
    http, _, client = live
    photo = yale_bytes("subject01.normal")  # the enrolled photo itself: distance 0 up to rounding
    v = http.post("/verify", data={"person_id": "s1"}, files={"image": ("a.png", photo)}, headers=client)
    i = http.post("/identify", files={"image": ("a.png", photo)}, headers=client)
    assert v.status_code == 200 and i.status_code == 200, (v.text, i.text)
    for text in (v.text, i.text):
        assert '"distance":-' not in text.replace(" ", ""), text
    assert v.json()["distance"] >= 0.0 and i.json()["candidates"][0]["distance"] >= 0.0


def test_a_decompression_bomb_is_refused_in_the_services_words(live):
    http, _, client = live
    r = http.post("/verify", data={"person_id": "s1"}, headers=client,
                  files={"image": ("bomb.png", png_declaring(20_000, 20_000))})
    assert r.status_code == 413 and r.json()["code"] == "image_too_many_pixels", r.text
    detail = r.json()["detail"]
    assert "DOS" not in detail and "decompression bomb" not in detail.lower(), detail
    assert "40000000" in detail, detail


def test_float_rounding_of_identical_embeddings_gives_zero_not_negative_zero():
    """The unit vector of seed 0's second draw has <v, v> = 1 + 1.2e-7 in float32: the raw
    distance is -1.2e-7, which the answers' rounding to 6 places printed as -0.0."""
    import numpy as np

    from app.domain.verification import Candidate, cosine_distance

    rng = np.random.default_rng(0)
    rng.normal(size=512)
    v = rng.normal(size=512).astype(np.float32)
    v /= np.linalg.norm(v)
    assert float(1.0 - np.dot(v, v)) < 0  # the rounding this test is about
    assert str(round(cosine_distance(v, v), 6)) == "0.0"
    assert str(round(Candidate("p", None, -1.2e-7).distance, 6)) == "0.0"
