"""Schema fuzzing: schemathesis drives every operation of the live app's OpenAPI over a
real socket, with an admin key, a client key, a wrong key and no key, in positive and
negative generation modes. No response may be a 5xx; every response must have a
documented status, content type and body schema (problem+json for errors).

The model parts are the fakes from tests/conftest.py (this is an API-shape test); the
examples per operation are bounded so the whole file runs in about a minute.
"""

from __future__ import annotations

import base64
import io
import os

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance, not_a_server_error, response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import migrated_sqlite_url
from tests.hardening.conftest import live_app

MAX_EXAMPLES = int(os.environ.get("HARDENING_FUZZ_EXAMPLES", "100"))
PUBLIC = {"/health/live", "/health/ready", "/model", "/metrics"}
SEEN: dict[str, list[int]] = {}  # mode -> status codes, summarised at the end


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    # the rate limits stay out of the way here (the per-key one off, the failed-auth budget
    # wide): fuzzing sends far more than a real client would, and wrong keys on purpose
    with live_app(migrated_sqlite_url(tmp_path_factory.mktemp("fuzz")),
                  auth_failures_per_minute=100_000) as lv:
        yield lv


def _openapi() -> dict:
    """The app's OpenAPI document; test_live_server_serves_this_schema checks that the live
    server serves exactly this. (schemathesis.pytest.from_fixture fails on pytest 9.)"""
    from app.core.config import Settings
    from app.main import create_app

    return create_app(Settings(database_url="sqlite:///:memory:")).openapi()


OPENAPI = _openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                                max_examples=MAX_EXAMPLES)


def _photo(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


PHOTOS = [_photo(i) for i in range(8)]


@schema.hook
def flatmap_body(context, body):
    """Random bytes almost never decode, so half of the generated image bodies get a real PNG:
    that way the success responses (201/200) and 409s are schema-checked too, not only errors."""
    if not isinstance(body, dict):
        return st.just(body)

    def swap(photo):
        if photo is None:
            return body
        if "image" in body:
            return {**body, "image": photo}
        if "image_base64" in body:
            return {**body, "image_base64": base64.b64encode(photo).decode()}
        return body

    return st.sampled_from([None, *PHOTOS]).map(swap)


def test_live_server_serves_this_schema(live):
    import httpx

    assert httpx.get(live.base_url + "/openapi.json").json() == OPENAPI
    assert set(OPENAPI["paths"]) >= {"/enroll", "/verify", "/identify", "/persons", "/persons/{person_id}",
                                     "/health/live", "/health/ready", "/metrics", "/model"}
FUZZ_SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))
CONFORMANCE = [not_a_server_error, status_code_conformance, content_type_conformance,
               response_schema_conformance]


def _without_key(case) -> None:
    """Negative mode also mutates the X-API-Key header; each test sets the key it is about."""
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "x-api-key"}


def _protected(case) -> bool:
    return case.path not in PUBLIC


def _record(mode: str, response) -> None:
    SEEN.setdefault(mode, []).append(response.status_code)


@schema.parametrize()
@FUZZ_SETTINGS
def test_fuzz_with_admin_key(case, live):
    _without_key(case)
    response = case.call(base_url=live.base_url, headers=live.admin, timeout=30)
    case.validate_response(response, checks=CONFORMANCE)
    if _protected(case) and response.request.headers.get("X-API-Key") is None:
        assert response.status_code in (401, 405, 422), response.text  # the coverage phase drops the key
    else:
        assert response.status_code not in (401, 403), response.text  # an admin key may do everything
    _record("admin", response)


@schema.parametrize()
@FUZZ_SETTINGS
def test_fuzz_with_client_key(case, live):
    _without_key(case)
    response = case.call(base_url=live.base_url, headers=live.client, timeout=30)
    case.validate_response(response, checks=CONFORMANCE)
    if _protected(case) and response.request.headers.get("X-API-Key") is None:
        assert response.status_code in (401, 405, 422), response.text  # the coverage phase drops the key
    elif case.method.upper() in ("POST", "DELETE") and (
            case.path == "/enroll" or case.path.startswith("/persons/{person_id}")):
        # never done with a client key: 403, or 405 / a malformed path id (422) before auth
        assert response.status_code in (403, 405, 422), response.text
        assert response.status_code != 422 or case.path.startswith("/persons/{person_id}")
    _record("client", response)


@schema.parametrize()
@FUZZ_SETTINGS
def test_fuzz_without_a_valid_key(case, live):
    headers = {"X-API-Key": "fa_" + "x" * 43} if len(case.path) % 2 else {}
    _without_key(case)
    response = case.call(base_url=live.base_url, headers=headers, timeout=30)
    case.validate_response(response, checks=CONFORMANCE)
    if _protected(case):
        # 405 (a method the route lacks) and 422 on a malformed path id come before auth, and say nothing
        assert response.status_code in (401, 405, 422), response.text
        assert response.status_code != 422 or case.path.startswith("/persons/{person_id}")
    _record("no key", response)


def test_fuzz_summary(live):
    """Runs last in the file: print what was sent, and prove the three fuzzers ran (selected
    on its own, without them, it fails: there is nothing to summarise)."""
    total = sum(len(v) for v in SEEN.values())
    lines = [f"{mode}: {len(codes)} requests, statuses {sorted(set(codes))}" for mode, codes in SEEN.items()]
    print("\nschema fuzz:", total, "requests;", "; ".join(lines))
    assert set(SEEN) == {"admin", "client", "no key"}, f"fuzzers that recorded nothing: {SEEN.keys()}"
    # every operation at least once per mode, and far more in all
    assert all(len(codes) >= len(OPENAPI["paths"]) for codes in SEEN.values()), lines
    assert all(c < 500 for codes in SEEN.values() for c in codes)


def test_error_bodies_are_documented_as_problem_json():
    """Found by the fuzzer: problem+json responses had no schema, so nothing checked them."""
    for path, ops in OPENAPI["paths"].items():
        for method, op in ops.items():
            for status, resp in op["responses"].items():
                if status.startswith(("4", "5")) and "content" in resp and path.startswith(("/enroll", "/verify", "/identify", "/persons")):
                    assert resp["content"]["application/problem+json"]["schema"] == {
                        "$ref": "#/components/schemas/Problem"}, (method, path, status)


def test_timestamps_carry_a_utc_offset(live):
    """Found by the fuzzer: SQLite's naive timestamps were not RFC 3339 date-times."""
    import httpx

    r = httpx.post(live.base_url + "/enroll", data={"person_id": "tz-check"},
                   files={"image": ("p.png", PHOTOS[0])}, headers=live.admin)
    assert r.status_code in (201, 409), r.text
    person = httpx.get(live.base_url + "/persons/tz-check", headers=live.client).json()
    for field in ("created_at", "updated_at"):
        assert person[field].endswith(("Z", "+00:00")), person
