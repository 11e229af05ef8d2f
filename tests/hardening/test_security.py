"""Security: hashed keys compared in constant time, scopes on every route (walked from the
route table), size and per-key rate limits, CORS off by default, nothing secret in responses
or logs, JSON logs with a request id, and the Prometheus metrics."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import re

import numpy as np
import pytest
from fastapi.routing import APIRoute
from PIL import Image
from sqlalchemy import create_engine, text

from app.core.ratelimit import RateLimiter
from app.core.telemetry import JsonFormatter
from tests.conftest import FakeDetector, FakeEmbedder, make_api, migrated_sqlite_url, yale_bytes

PUBLIC, CLIENT, ADMIN = "public", "client", "admin"
# Every route must be listed here: a new route without a decided scope fails the walk below.
SCOPES = {
    ("POST", "/enroll"): ADMIN,
    ("DELETE", "/persons/{person_id}"): ADMIN,
    ("GET", "/persons"): CLIENT,
    ("GET", "/persons/{person_id}"): CLIENT,
    ("POST", "/persons/{person_id}/faces"): ADMIN,
    ("DELETE", "/persons/{person_id}/faces/{face_id}"): ADMIN,
    ("POST", "/verify"): CLIENT,
    ("POST", "/identify"): CLIENT,
    ("POST", "/compare"): CLIENT,   # nothing stored: what verify may do
    ("POST", "/detect"): CLIENT,
    ("GET", "/health/live"): PUBLIC,
    ("GET", "/health/ready"): PUBLIC,
    ("GET", "/model"): PUBLIC,      # model version and threshold provenance: nothing personal
    ("GET", "/metrics"): PUBLIC,    # counts and latencies only, no ids, no keys
    ("GET", "/"): PUBLIC,           # the demo page: static, the visitor types the key
    ("GET", "/docs"): PUBLIC,       # offline API docs
    ("GET", "/redoc"): PUBLIC,
}


def photo(seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (48, 64, 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def fake_api(tmp_path):
    with make_api(migrated_sqlite_url(tmp_path), FakeEmbedder(), FakeDetector()) as api:
        yield api


# --- keys -------------------------------------------------------------------------------------

def test_keys_are_stored_only_as_sha256_digests(fake_api):
    keys = [fake_api.admin["X-API-Key"], fake_api.client["X-API-Key"]]
    path = fake_api.database_url.removeprefix("sqlite:///")
    with create_engine(fake_api.database_url).connect() as conn:
        rows = [tuple(r) for r in conn.execute(text("SELECT * FROM api_keys"))]
    stored = {v for row in rows for v in row if isinstance(v, str)}
    for key in keys:
        assert hashlib.sha256(key.encode()).hexdigest() in stored
        assert key not in stored and not any(key[12:] in v for v in stored)  # at most the 12-char prefix
    with open(path, "rb") as f:
        raw = f.read()
    for suffix in ("-wal", "-shm"):
        try:
            raw += open(path + suffix, "rb").read()
        except FileNotFoundError:
            pass
    assert not any(k.encode() in raw or k[12:].encode() in raw for k in keys)


def test_key_lookup_sends_only_the_digest(fake_api):
    """What reaches the database is the key's SHA-256, never the key: the index lookup's
    timing can then only leak digest bytes, which say nothing about the key."""
    from sqlalchemy import event

    engine = fake_api.http.app.state.runtime.engine
    sent: list[str] = []
    record = lambda conn, cursor, statement, params, context, many: sent.append(repr(params))  # noqa: E731
    event.listen(engine, "before_cursor_execute", record)
    try:
        key = fake_api.client["X-API-Key"]
        assert fake_api.http.get("/persons", headers=fake_api.client).status_code == 200
        wrong = "fa_" + "A" * 43
        assert fake_api.http.get("/persons", headers={"X-API-Key": wrong}).status_code == 401
    finally:
        event.remove(engine, "before_cursor_execute", record)
    joined = "\n".join(sent)
    assert hashlib.sha256(key.encode()).hexdigest() in joined
    assert hashlib.sha256(wrong.encode()).hexdigest() in joined
    assert key[12:] not in joined and wrong[12:] not in joined


def test_digests_are_compared_by_the_constant_time_primitive(monkeypatch):
    """The final comparison is `hmac.compare_digest`, whose time does not depend on where the
    first difference is (a plain `==` returns at the first difference). Checked by what is
    called, not by a stopwatch: a timing ratio depends on the machine and its load."""
    import hmac

    from app.core import security

    calls, real = [], hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    digest = security.hash_key("fa_" + "k" * 43)
    assert security.same_digest(digest, digest) is True
    assert security.same_digest(digest, "0" + digest[1:]) is False
    assert calls == [(digest, digest), (digest, "0" + digest[1:])]


# --- scopes on every route ---------------------------------------------------------------------

def api_routes(routes, prefix: str = ""):
    """(method, path) of every APIRoute, descending into included routers (FastAPI >= 0.16x
    keeps them as _IncludedRouter entries instead of copying their routes)."""
    for route in routes:
        if isinstance(route, APIRoute):
            for method in sorted(route.methods - {"HEAD"}):
                yield method, prefix + route.path
        elif hasattr(route, "original_router"):
            inner = getattr(getattr(route, "include_context", None), "prefix", "") or ""
            yield from api_routes(route.original_router.routes, prefix + inner)


def test_every_route_enforces_its_scope(fake_api):
    app = fake_api.http.app
    walked = set()
    table = sorted(set(api_routes(app.routes)))
    documented = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    assert documented <= set(table), documented - set(table)  # the walk misses nothing
    for method, path in table:
        scope = SCOPES.get((method, path))
        assert scope is not None, f"{method} {path} has no decided scope: add it to SCOPES"
        walked.add((method, path))
        url = path.replace("{person_id}", "someone")
        send = lambda headers: fake_api.http.request(  # noqa: E731
            method, url, headers=headers,
            files={"image": ("p.png", photo())} if method == "POST" else None,
            data={"person_id": "someone"} if method == "POST" else None)
        no_key, bad_key = send({}), send({"X-API-Key": "fa_" + "B" * 43})
        as_client, as_admin = send(fake_api.client), send(fake_api.admin)
        label = f"{method} {path}"
        if scope == PUBLIC:
            assert no_key.status_code < 400, label
            continue
        assert no_key.status_code == 401 and no_key.json()["code"] == "unauthenticated", label
        assert bad_key.status_code == 401, label
        assert as_admin.status_code not in (401, 403), label
        if scope == ADMIN:
            assert as_client.status_code == 403 and as_client.json()["code"] == "forbidden", label
        else:
            assert as_client.status_code not in (401, 403), label
    assert walked == set(SCOPES), set(SCOPES) - walked
    assert fake_api.count_persons() == 1  # only the admin's enroll went through


# --- limits -------------------------------------------------------------------------------------

def test_rate_limiter_refills_over_time():
    now = [0.0]
    limiter = RateLimiter(6, clock=lambda: now[0])  # 6 per minute: one every 10 s
    assert [limiter.acquire("k") for _ in range(6)] == [0.0] * 6
    assert limiter.acquire("k") == pytest.approx(10.0)
    assert limiter.acquire("other") == 0.0  # per key
    now[0] = 10.0
    assert limiter.acquire("k") == 0.0
    assert limiter.acquire("k") > 0


def test_rate_limit_per_key_gives_429(tmp_path):
    with make_api(migrated_sqlite_url(tmp_path), FakeEmbedder(), FakeDetector(),
                  rate_limit_per_minute=5) as api:
        statuses = [api.http.get("/persons", headers=api.client).status_code for _ in range(7)]
        assert statuses == [200] * 5 + [429] * 2
        r = api.http.get("/persons", headers=api.client)
        assert r.json()["code"] == "rate_limited" and r.headers["content-type"].startswith("application/problem+json")
        assert int(r.headers["retry-after"]) >= 1
        assert api.http.get("/persons", headers=api.admin).status_code == 200  # another key, its own budget
        assert api.http.get("/health/live").status_code == 200  # unauthenticated probes are not limited
        assert "faceapi_rate_limited_total 3.0" in api.http.get("/metrics").text


def test_rate_limit_is_off_by_default(fake_api):
    assert all(fake_api.http.get("/persons", headers=fake_api.client).status_code == 200 for _ in range(100))


def test_request_size_limit_is_configurable(tmp_path):
    with make_api(migrated_sqlite_url(tmp_path), FakeEmbedder(), FakeDetector(), max_upload_bytes=4096) as api:
        big = photo() + b"\0" * 8000  # ~17 KB
        r = api.enroll("big", big)
        assert r.status_code == 413 and r.json()["code"] in ("payload_too_large",)
        r = api.http.post("/identify", json={"image_base64": base64.b64encode(b"\xff" * 9000).decode()},
                          headers=api.client)
        assert r.status_code == 413
        small = io.BytesIO()
        Image.new("RGB", (64, 48), (90, 120, 150)).save(small, "PNG")
        assert api.enroll("small", small.getvalue()).status_code == 201  # ~100 bytes: under the limit


# --- CORS ---------------------------------------------------------------------------------------

def _preflight(api, origin: str):
    return api.http.options("/verify", headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                                "Access-Control-Request-Headers": "X-API-Key"})


def test_cors_is_off_by_default(fake_api):
    r = _preflight(fake_api, "https://evil.example")
    assert "access-control-allow-origin" not in r.headers
    r = fake_api.http.get("/persons", headers={**fake_api.client, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_cors_allows_only_configured_origins(tmp_path):
    with make_api(migrated_sqlite_url(tmp_path), FakeEmbedder(), FakeDetector(),
                  cors_origins=["https://app.example"]) as api:
        assert _preflight(api, "https://app.example").headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-origin" not in _preflight(api, "https://evil.example").headers


# --- logs, responses and metrics of a full cycle with the real model ---------------------------

class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def real_cycle(tmp_path_factory, real_embedder, real_detector):
    """A full enroll/verify/identify/list/delete cycle (with some errors) on the real model, its
    logs captured at DEBUG as JSON lines, its responses kept."""
    url = migrated_sqlite_url(tmp_path_factory.mktemp("logs"))
    capture = Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    responses = []
    try:
        with make_api(url, real_embedder, real_detector) as api:
            face, probe = yale_bytes("subject01.normal"), yale_bytes("subject01.happy")
            rid = "cycle-0001"
            responses.append(api.http.post("/enroll", data={"person_id": "alice", "display_name": "Alice"},
                                           files={"image": ("a.png", face)}, headers={**api.admin, "X-Request-ID": rid}))
            responses.append(api.http.post("/enroll", json={"person_id": "bob", "image_base64": base64.b64encode(
                yale_bytes("subject02.normal")).decode()}, headers=api.admin))
            with create_engine(url).connect() as conn:
                blob = conn.execute(text("SELECT embedding FROM persons WHERE person_id='alice'")).scalar()
            responses.append(api.verify("alice", probe))
            responses.append(api.http.post("/verify", json={"person_id": "alice", "image_base64": base64.b64encode(
                probe).decode()}, headers=api.client))
            responses.append(api.identify(probe))
            responses.append(api.http.get("/persons", headers=api.client))
            responses.append(api.http.get("/persons/alice", headers=api.client))
            responses.append(api.verify("nobody", probe))                               # 404
            responses.append(api.verify("alice", b"\x89PNG\r\n\x1a\n garbage"))          # 422
            responses.append(api.enroll("eve", face, key={"X-API-Key": "fa_" + "C" * 43}))  # 401
            responses.append(api.enroll("eve", face, key=api.client))                   # 403
            responses.append(api.http.delete("/persons/bob", headers=api.admin))
            metrics = api.http.get("/metrics").text
            keys = [api.admin["X-API-Key"], api.client["X-API-Key"], "fa_" + "C" * 43]
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
    embedding = np.frombuffer(blob, np.float32) if isinstance(blob, bytes) else np.asarray(blob, np.float32)
    return dict(lines=capture.lines, responses=responses, metrics=metrics, keys=keys, rid=rid,
                embedding=embedding, embedding_dim=real_embedder.embedding_dim, images=[face, probe, yale_bytes("subject02.normal")])


def test_cycle_answers_as_expected(real_cycle):
    assert [r.status_code for r in real_cycle["responses"]] == [201, 201, 200, 200, 200, 200, 200, 404, 422,
                                                                 401, 403, 204]


def _secrets(cycle) -> list[str]:
    secrets = []
    for key in cycle["keys"]:
        secrets += [key, key[8:]]
    for image in cycle["images"]:
        b64 = base64.b64encode(image).decode()
        secrets += [b64[:48], b64[len(b64) // 2 : len(b64) // 2 + 48], image[64:96].hex()]
    emb = cycle["embedding"]
    assert emb.shape == (cycle["embedding_dim"],)
    for v in emb[np.abs(emb) > 0.01][:32]:
        secrets += [f"{v:.6f}", f"{v:.5f}", repr(float(v))[:9]]
    return [s for s in secrets if len(s) >= 7]


def test_no_keys_photos_embeddings_or_traces_in_logs(real_cycle):
    log = "\n".join(real_cycle["lines"])
    assert len(real_cycle["lines"]) >= 12  # an access line per request at least
    leaked = [s for s in _secrets(real_cycle) if s in log]
    assert not leaked, leaked[:5]
    assert "Traceback" not in log  # client errors are answered, not crashed on


def test_no_keys_photos_embeddings_or_traces_in_responses(real_cycle):
    for r in real_cycle["responses"]:
        leaked = [s for s in _secrets(real_cycle) if s in r.text]
        assert not leaked, (r.request.url, leaked[:3])
        assert "Traceback" not in r.text and "embedding" not in r.json() if r.content else True


def test_logs_are_json_with_the_request_id(real_cycle):
    entries = [json.loads(line) for line in real_cycle["lines"]]
    assert all({"ts", "level", "logger", "msg", "request_id"} <= e.keys() for e in entries)
    access = [e for e in entries if e["logger"] == "app.access"]
    assert len(access) >= 12
    first = next(e for e in access if e["route"] == "/enroll")
    assert first["request_id"] == real_cycle["rid"] and first["status"] == 201 and first["ms"] > 0
    assert real_cycle["responses"][0].headers["x-request-id"] == real_cycle["rid"]
    assert all(re.fullmatch(r"[0-9a-f]{32}", e["request_id"]) for e in access if e is not first
               and e["request_id"] != real_cycle["rid"])


def test_hostile_request_ids_are_replaced(fake_api):
    for rid in ["a" * 65, "x\r\nSet-Cookie: a=b", "<script>", "ä"]:
        r = fake_api.http.get("/health/live", headers={"X-Request-ID": rid.encode("utf-8")})
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"]), rid


def test_metrics_cover_requests_latency_batches_and_queue(real_cycle):
    m = real_cycle["metrics"]
    assert re.search(r'faceapi_requests_total\{method="POST",route="/enroll",status="201"\} 2\.0', m)
    assert re.search(r'faceapi_requests_total\{method="POST",route="/verify",status="404"\} 1\.0', m)
    assert re.search(r'faceapi_request_seconds_bucket\{le="0\.5",method="POST",route="/identify"\}', m)
    assert re.search(r"faceapi_embed_batch_size_count [1-9]", m)
    assert re.search(r"faceapi_embed_batch_seconds_sum", m)
    assert re.search(r"faceapi_embed_queue_depth 0\.0", m)
    assert "faceapi_rate_limited_total" in m
    assert not any(k in m for k in real_cycle["keys"]) and "alice" not in m
