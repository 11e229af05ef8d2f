"""The multipart/form-data schema of every image route is generated from its JSON model
(app/api/deps.py: multipart_schema): the same fields with the same limits, each
`<name>_base64` string a `<name>` file. API-shape tests: the fake embedder is enough here."""

from __future__ import annotations

import pytest

from app.api.deps import form_field, multipart_schema
from app.api.schemas import EnrollJson
from tests.conftest import FakeDetector, FakeEmbedder, make_api, migrated_sqlite_url, yale_bytes

IMAGE_ROUTES = {"/enroll", "/persons/{person_id}/faces", "/verify", "/identify", "/compare", "/detect"}


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    with make_api(migrated_sqlite_url(tmp_path_factory.mktemp("multipart")), FakeEmbedder(), FakeDetector()) as api:
        yield api.http.get("/openapi.json").json()


def _bodies(spec):
    for path, methods in spec["paths"].items():
        content = (methods.get("post") or {}).get("requestBody", {}).get("content", {})
        if "multipart/form-data" in content:
            yield path, content["multipart/form-data"]["schema"], content["application/json"]["schema"]


def _json_schema(spec, schema):
    ref = schema.get("$ref")
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


def test_every_image_route_has_both_bodies(spec):
    assert {p for p, _, _ in _bodies(spec)} == IMAGE_ROUTES


def test_the_multipart_fields_are_the_json_models_fields(spec):
    for path, form, body in _bodies(spec):
        body = _json_schema(spec, body)
        files = {n.removesuffix("_base64") for n in body["properties"] if n.endswith("_base64")}
        assert files, path
        for name in files:
            assert form["properties"][name] == {"type": "string", "format": "binary"}, (path, name)
        fields = {n: s for n, s in form["properties"].items() if n not in files}
        json_fields = {n: s for n, s in body["properties"].items() if not n.endswith("_base64")}
        assert fields.keys() == json_fields.keys(), path
        for name, field in fields.items():
            # the same type, limits, pattern and default (a list travels as text: face_box)
            assert field == form_field(json_fields[name]), (path, name)
            want = json_fields[name]
            want = next((b for b in want.get("anyOf", []) if b.get("type") != "null"), want)
            if want.get("type") != "array":
                for key in ("type", "pattern", "minLength", "maxLength", "minimum", "maximum"):
                    assert field.get(key) == want.get(key), (path, name, key)
        assert form["required"] == [n.removesuffix("_base64") if n.endswith("_base64") else n
                                    for n in body.get("required", [])], path
        assert form["additionalProperties"] is False and body["additionalProperties"] is False


def test_the_person_id_limit_is_the_models():
    form = multipart_schema(EnrollJson)["properties"]["person_id"]
    limit = EnrollJson.model_json_schema()["properties"]["person_id"]
    assert (form["maxLength"], form["pattern"]) == (limit["maxLength"], limit["pattern"]) == (128, limit["pattern"])
    assert multipart_schema(EnrollJson)["required"] == ["person_id", "image"]


def test_a_form_over_the_models_limit_is_refused_as_json_is(tmp_path):
    with make_api(migrated_sqlite_url(tmp_path), FakeEmbedder(), FakeDetector()) as api:
        admin = api.admin
        too_long = "p" * 129
        r = api.http.post("/enroll", data={"person_id": too_long}, headers=admin,
                          files={"image": ("a.png", yale_bytes("subject01.normal"))})
        assert r.status_code == 422 and r.json()["code"] == "invalid_request", r.text
        r = api.http.post("/enroll", json={"person_id": too_long, "image_base64": "AAAA"}, headers=admin)
        assert r.status_code == 422 and r.json()["code"] == "invalid_request", r.text
