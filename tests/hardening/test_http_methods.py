"""Methods a route does not declare, over a real socket (fake model: API shape only): HEAD
works wherever GET does (same status and headers, no body), and every 405 is problem+json
with the Allow header RFC 9110 requires, naming what the route does take."""

from __future__ import annotations

import httpx

from app.main import create_app
from tests.conftest import add_keys, migrated_sqlite_url

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def routes(live) -> dict[str, set[str]]:
    """Every path of the OpenAPI schema (a sample id for templates) -> its declared methods."""
    schema = httpx.get(live.base_url + "/openapi.json").json()
    return {path.replace("{person_id}", "p1"): {m.upper() for m in ops}
            for path, ops in schema["paths"].items()}


def test_head_answers_like_get_without_a_body(fake_live):
    checked = 0
    for path, methods in {**routes(fake_live), "/": {"GET"}, "/docs": {"GET"}}.items():
        if "GET" not in methods:
            continue
        get = httpx.get(fake_live.base_url + path, headers=fake_live.admin)
        head = httpx.head(fake_live.base_url + path, headers=fake_live.admin)
        assert head.status_code == get.status_code, (path, head.status_code, get.status_code)
        assert head.content == b"", path
        assert head.headers["content-type"] == get.headers["content-type"], path
        if path not in ("/metrics", "/model", "/health/ready"):  # these change between two calls
            assert head.headers.get("content-length") == get.headers.get("content-length"), path
        checked += 1
    assert checked >= 7


def test_every_405_names_the_allowed_methods(fake_live):
    refused = 0
    for path, methods in routes(fake_live).items():
        allowed = methods | ({"HEAD"} if "GET" in methods else set())
        for method in METHODS:
            if method in allowed:
                continue
            r = httpx.request(method, fake_live.base_url + path, headers=fake_live.admin)
            assert r.status_code == 405, (method, path, r.status_code)
            assert r.headers["content-type"] == "application/problem+json", (method, path)
            if method != "HEAD":  # a HEAD answer has no body
                assert r.json()["code"] == "method_not_allowed"
            assert set(r.headers["allow"].replace(" ", "").split(",")) >= methods, (method, path, r.headers)
            refused += 1
    assert refused >= 30


def test_head_of_a_post_route_is_405_with_allow(fake_live):
    r = httpx.head(fake_live.base_url + "/enroll", headers=fake_live.admin)
    assert r.status_code == 405 and r.headers["allow"] == "POST" and r.content == b""


def test_cors_preflight_still_works_with_head_support(tmp_path):
    """OPTIONS preflight is the CORS middleware's, untouched by the HEAD shim."""
    from app.core.config import Settings
    from tests.conftest import FakeDetector, FakeEmbedder, serve_in_thread

    url = migrated_sqlite_url(tmp_path)
    add_keys(url)
    app = create_app(Settings(database_url=url, cors_origins=["https://ok.example"]),
                     embedder=FakeEmbedder(), detector=FakeDetector())
    with serve_in_thread(app) as base:
        r = httpx.options(base + "/verify", headers={"Origin": "https://ok.example",
                                                     "Access-Control-Request-Method": "POST"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://ok.example"


def test_static_files_refuse_writes_with_a_problem(fake_live):
    r = httpx.put(fake_live.base_url + "/static/demo.js")
    assert r.status_code == 405 and r.headers["content-type"] == "application/problem+json"
    assert "PUT" not in r.headers.get("allow", "GET, HEAD")


def test_a_trailing_slash_reaches_the_same_route(fake_live):
    """No empty 307 (curl without -L printed nothing) and no redirect built from Host."""
    base, paths = fake_live.base_url, routes(fake_live)
    for path, methods in paths.items():
        if "GET" in methods:
            plain = httpx.get(base + path, headers=fake_live.admin)
            slash = httpx.get(base + path + "/", headers={**fake_live.admin, "Host": "evil.example"})
            assert slash.status_code == plain.status_code, (path, slash.status_code, slash.headers)
            assert "location" not in slash.headers
    r = httpx.post(base + "/enroll/", headers=fake_live.admin, data={"person_id": "p1"},
                   files={"image": ("a.png", b"not an image")})
    assert r.status_code == 415 and r.json()["code"] == "unsupported_image_type"
    assert httpx.get(base + "//", headers=fake_live.admin).status_code == 200  # the demo page


def test_head_and_slashed_requests_are_counted_under_their_route(fake_live):
    httpx.head(fake_live.base_url + "/health/live")
    httpx.get(fake_live.base_url + "/health/live/")
    metrics = httpx.get(fake_live.base_url + "/metrics").text
    for method in ("HEAD", "GET"):
        assert f'method="{method}",route="/health/live",status="200"' in metrics, \
            [line for line in metrics.splitlines() if "health/live" in line]
