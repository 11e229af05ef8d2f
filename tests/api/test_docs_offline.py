"""The API docs and the demo page work offline: every page and asset comes from the service
itself, the pages forbid other hosts, and the OpenAPI document has an example for every
route and every error code. API-shape tests: the fake embedder is enough here."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from app.api import examples
from app.api.demo import STATIC_DIR
from app.domain import errors
from app.api.schemas import (
    AddFaceResponse, CompareResponse, DetectResponse, EnrollResponse, Health, IdentifyAllResponse,
    IdentifyResponse, PersonDetail, PersonList, Problem, VerifyResponse,
)
from tests.conftest import FakeDetector, FakeEmbedder, make_api, yale_bytes

PAGES = ["/", "/docs", "/redoc"]
ABSOLUTE_URL = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+""")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("src", "href") and v]


def links_of(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.links


@pytest.fixture
def api(tmp_path):
    from tests.conftest import migrated_sqlite_url

    with make_api(migrated_sqlite_url(tmp_path), FakeEmbedder(), FakeDetector()) as a:
        yield a


def test_pages_and_every_asset_they_load_come_from_this_service(api):
    for page in PAGES:
        r = api.http.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), page
        links = links_of(r.text)
        assert links, f"{page} loads nothing?"
        for link in links:
            assert link.startswith("/") and not link.startswith("//"), f"{page} links {link}"
            asset = api.http.get(link)
            assert asset.status_code == 200 and len(asset.content) > 0, link


def test_no_html_or_js_the_service_serves_references_another_host(api):
    """Pages and our own JS/CSS contain no absolute URL at all. The vendored Swagger UI and
    ReDoc bundles do hold URL strings (JSON-schema ids, links, ReDoc's footer logo from
    cdn.redoc.ly), so each page carries a CSP that allows only this origin: the browser
    fetches nothing elsewhere (the browser test records every request to prove it)."""
    own_files = {"/": api.http.get("/").text}
    for page in PAGES:
        html = api.http.get(page).text
        assert not ABSOLUTE_URL.findall(html), page
        for link in links_of(html):
            if link.startswith("/static/"):
                own_files[link] = api.http.get(link).text
        csp = api.http.get(page).headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'self'"
        for name, sources in directives.items():
            assert not ABSOLUTE_URL.findall(sources) and "*" not in sources and "https:" not in sources, name
    assert {"/static/demo.js", "/static/demo.css"} <= set(own_files)
    for path in STATIC_DIR.iterdir():  # every file of the page, linked or not
        own_files[str(path)] = path.read_text()
    for name, text in own_files.items():
        assert not ABSOLUTE_URL.findall(text), f"{name}: {ABSOLUTE_URL.findall(text)}"


def test_swagger_ui_turns_the_online_validator_off(api):
    assert '"validatorUrl": null' in api.http.get("/docs").text


def test_openapi_has_examples_for_every_route_and_error_code(api):
    spec = api.http.get("/openapi.json").json()
    routes = {("post", "/enroll"), ("post", "/verify"), ("post", "/identify"), ("get", "/persons"),
              ("get", "/persons/{person_id}"), ("delete", "/persons/{person_id}"),
              ("post", "/persons/{person_id}/faces"), ("delete", "/persons/{person_id}/faces/{face_id}"),
              ("get", "/health/live"), ("get", "/health/ready"), ("get", "/model"),
              ("get", "/metrics"), ("post", "/compare"), ("post", "/detect")}
    documented = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert routes == documented
    codes_seen: set[str] = set()
    for path, method in ((p, m) for m, p in routes):
        responses = spec["paths"][path][method]["responses"]
        for status, resp in responses.items():
            content = resp.get("content", {})
            if status.startswith("2") and status != "204":
                assert any("example" in c or "examples" in c for c in content.values()), (path, status)
            if int(status) >= 400 and "application/problem+json" in content:
                body = content["application/problem+json"]
                assert body["schema"] == {"$ref": "#/components/schemas/Problem"}
                for code, ex in body["examples"].items():
                    assert ex["value"]["code"] == code and ex["value"]["status"] == int(status)
                    Problem.model_validate(ex["value"])
                    codes_seen.add(code)
    domain_codes = {c.code for c in errors.all_errors() if not c.any_route}
    assert domain_codes | {"invalid_request"} <= codes_seen, domain_codes - codes_seen


def test_problem_schema_documents_the_errors_array_of_422(api):
    schema = api.http.get("/openapi.json").json()["components"]["schemas"]
    assert "errors" in schema["Problem"]["properties"]
    issue = schema["ValidationIssue"]["properties"]
    assert {"loc", "msg", "type"} <= set(issue)
    r = api.enroll("bad id!", yale_bytes("subject01.normal"))
    assert r.status_code == 422
    body = Problem.model_validate(r.json())
    assert body.code == "invalid_request" and body.errors and body.errors[0].loc == ["person_id"]


@pytest.mark.parametrize("model, example", [
    (EnrollResponse, examples.ENROLL[201]), (VerifyResponse, examples.VERIFY[200]),
    (PersonList, examples.LIST_PERSONS[200]), (PersonDetail, examples.GET_PERSON[200]),
    (AddFaceResponse, examples.ADD_FACE[201]), (Health, examples.READY[200]),
    (Health, examples.READY[503]), (Health, examples.LIVE[200]),
    (CompareResponse, examples.COMPARE[200]), (DetectResponse, examples.DETECT[200]),
])
def test_success_examples_are_valid_responses(model, example):
    model.model_validate(example["content"]["application/json"]["example"])


@pytest.mark.parametrize("model, name", [(IdentifyResponse, "one_face"), (IdentifyAllResponse, "all_faces")])
def test_both_identify_examples_are_valid_responses(model, name):
    model.model_validate(examples.IDENTIFY[200]["content"]["application/json"]["examples"][name]["value"])


def test_example_threshold_is_the_one_the_service_uses(api):
    threshold = api.http.get("/model").json()["threshold"]
    verify = examples.VERIFY[200]["content"]["application/json"]["example"]
    ready = examples.READY[200]["content"]["application/json"]["example"]
    assert verify["threshold"] == threshold
    assert ready["checks"]["threshold"] == threshold


def test_aligned_face_is_returned_only_on_request(api):
    import base64
    import io

    from PIL import Image

    photo = yale_bytes("subject01.normal")
    plain = api.enroll("s01", photo)
    assert plain.status_code == 201 and "aligned_png_base64" not in plain.json()["face"]
    r = api.http.post("/verify", data={"person_id": "s01", "return_aligned": "true"},
                      files={"image": ("p.png", photo)}, headers=api.client)
    assert r.status_code == 200
    crop = Image.open(io.BytesIO(base64.b64decode(r.json()["face"]["aligned_png_base64"])))
    size = FakeEmbedder.input_size  # the default artefact's alignment size
    assert crop.format == "PNG" and crop.size == (size, size)
    j = api.http.post("/identify", json={"image_base64": base64.b64encode(photo).decode(),
                                         "return_aligned": True}, headers=api.client)
    assert j.status_code == 200 and j.json()["face"]["aligned_png_base64"]
    assert "aligned_png_base64" not in api.identify(photo).json()["face"]


def test_static_files_are_packaged():
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"static/*"' in pyproject
    assert {p.name for p in STATIC_DIR.iterdir()} >= {"index.html", "demo.js", "demo.css"}
