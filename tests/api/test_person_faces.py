"""POST /persons/{id}/faces, GET /persons/{id} with its faces, DELETE /persons/{id}/faces/{face_id},
and template_size in verify and identify, on SQLite and PostgreSQL. The real detector (the enroll
rules are its measurements) with a fake embedder: these tests are about the API's shape."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from app.core.db import make_engine
from app.storage.persons import PersonStore
from app.domain.templates import pool
from tests.conftest import FakeEmbedder, make_api, yale_bytes

ADA = [yale_bytes(f"subject01.{m}") for m in ("normal", "happy", "sleepy", "wink")]


@pytest.fixture
def api(database_url, real_detector):
    with make_api(database_url, FakeEmbedder(), real_detector) as a:
        yield a


def add_face(api, person_id, image, key=None, **fields):
    return api.http.post(f"/persons/{person_id}/faces", data=fields, files={"image": ("p.png", image)},
                         headers=api.admin if key is None else key)


def reference_is_pooled(api, person_id: str) -> int:
    engine = make_engine(api.database_url)
    try:
        person, faces = PersonStore(engine, FakeEmbedder.model_version, FakeEmbedder.embedding_dim).get_with_faces(person_id)
    finally:
        engine.dispose()
    assert np.allclose(person.embedding, pool(np.stack([f.embedding for f in faces])), atol=1e-6)
    return len(faces)


def test_add_list_and_remove_faces(api):
    r = api.enroll("ada", ADA[0], display_name="Ada")
    assert r.status_code == 201 and r.json()["person"]["template_size"] == 1
    ids = [api.http.get("/persons/ada", headers=api.client).json()["faces"][0]["id"]]
    for k, photo in enumerate(ADA[1:3], start=2):
        r = add_face(api, "ada", photo)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["person_id"] == "ada" and body["template_size"] == k
        assert len(body["face"]["box"]) == 4 and 0.5 < body["face"]["score"] <= 1.0
        assert body["face"]["faces_detected"] == 1 and "aligned_png_base64" not in body["face"]
        ids.append(body["face"]["id"])
        assert reference_is_pooled(api, "ada") == k
    # JSON with base64, asking for the aligned crop
    r = api.http.post("/persons/ada/faces", headers=api.admin, json={
        "image_base64": base64.b64encode(ADA[3]).decode(), "return_aligned": True})
    assert r.status_code == 201 and r.json()["template_size"] == 4, r.text
    assert r.json()["face"]["aligned_png_base64"]
    ids.append(r.json()["face"]["id"])

    person = api.http.get("/persons/ada", headers=api.client).json()
    assert person["template_size"] == 4 and person["display_name"] == "Ada"
    assert [f["id"] for f in person["faces"]] == ids
    for f in person["faces"]:
        assert set(f) == {"id", "added_at", "box", "score"}  # never an image or an embedding
        assert f["added_at"].endswith(("Z", "+00:00"))
    listed = api.http.get("/persons", headers=api.client).json()["items"]
    assert listed[0]["template_size"] == 4 and "faces" not in listed[0]

    v = api.verify("ada", ADA[1]).json()
    assert v["template_size"] == 4
    # the default artefact ships per-size thresholds: a 4-photo template's is stricter
    model = api.http.get("/model").json()
    assert v["threshold"] < model["threshold"]
    found = api.identify(ADA[1]).json()
    top = found["candidates"][0]
    assert top["person_id"] == "ada" and top["template_size"] == 4 and top["threshold"] < found["threshold"]

    assert api.http.delete(f"/persons/ada/faces/{ids[0]}", headers=api.admin).status_code == 204
    assert reference_is_pooled(api, "ada") == 3
    assert [f["id"] for f in api.http.get("/persons/ada", headers=api.client).json()["faces"]] == ids[1:]
    assert api.verify("ada", ADA[1]).json()["template_size"] == 3


def test_the_last_face_is_409_and_unknown_ids_404(api):
    assert api.enroll("ada", ADA[0]).status_code == 201
    assert api.enroll("bob", yale_bytes("subject02.normal")).status_code == 201
    (face,) = api.http.get("/persons/ada", headers=api.client).json()["faces"]
    (bobs,) = api.http.get("/persons/bob", headers=api.client).json()["faces"]
    r = api.http.delete(f"/persons/ada/faces/{face['id']}", headers=api.admin)
    assert r.status_code == 409 and r.json()["code"] == "last_face"
    assert "DELETE /persons/ada" in r.json()["detail"]
    r = api.http.delete(f"/persons/ada/faces/{bobs['id']}", headers=api.admin)
    assert r.status_code == 404 and r.json()["code"] == "face_not_found"
    r = api.http.delete("/persons/nobody/faces/1", headers=api.admin)
    assert r.status_code == 404 and r.json()["code"] == "person_not_found"
    r = add_face(api, "nobody", ADA[1])
    assert r.status_code == 404 and r.json()["code"] == "person_not_found"
    assert api.http.delete("/persons/ada/faces/0", headers=api.admin).status_code == 422
    assert api.http.get("/persons/ada", headers=api.client).json()["template_size"] == 1


def test_adding_a_face_follows_the_enroll_rules_and_needs_an_admin_key(api):
    assert api.enroll("ada", ADA[0]).status_code == 201
    # two faces alike on every cue (size, distance from the centre, whole, confident): the
    # second photo mirrored, so both faces sit as near the middle
    r = add_face(api, "ada", two_alike_faces(ADA[1], yale_bytes("subject02.normal")))
    assert r.status_code == 422 and r.json()["code"] == "multiple_faces"
    buf = io.BytesIO()
    Image.new("RGB", (200, 200), (90, 90, 90)).save(buf, "PNG")
    r = add_face(api, "ada", buf.getvalue())
    assert r.status_code == 422 and r.json()["code"] == "no_face"
    r = add_face(api, "ada", ADA[1], key=api.client)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = api.http.delete("/persons/ada/faces/1", headers=api.client)
    assert r.status_code == 403
    assert api.http.get("/persons/ada", headers=api.client).json()["template_size"] == 1
    assert reference_is_pooled(api, "ada") == 1


def test_deleting_the_person_deletes_their_faces(api):
    assert api.enroll("ada", ADA[0]).status_code == 201
    assert add_face(api, "ada", ADA[1]).status_code == 201
    assert api.http.delete("/persons/ada", headers=api.admin).status_code == 204
    r = add_face(api, "ada", ADA[2])
    assert r.status_code == 404
    assert api.enroll("ada", ADA[0]).status_code == 201  # enrolled again: a template of one
    assert api.http.get("/persons/ada", headers=api.client).json()["template_size"] == 1


def test_50_concurrent_adds_over_http_all_count(database_url):
    """50 clients add a photo each to one person at the same time (the detection queue sized to
    hold them all): every add answers 201, the template holds all 51 faces, and the reference
    is their pooling. The fake embedder and detector: this is about storage, not accuracy."""
    import threading

    from tests.conftest import FakeDetector, YALE

    photos = [p.read_bytes() for p in sorted(YALE.glob("*.png"))[:51]]
    with make_api(database_url, FakeEmbedder(), FakeDetector(), detect_queue_max=64) as api:
        assert api.enroll("crowd", photos[0]).status_code == 201
        barrier = threading.Barrier(50)
        results: list = [None] * 50

        def add(i):
            barrier.wait()
            results[i] = add_face(api, "crowd", photos[i + 1])

        threads = [threading.Thread(target=add, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert [r.status_code for r in results] == [201] * 50, [r.text for r in results if r.status_code != 201]
        assert sorted(r.json()["template_size"] for r in results) == list(range(2, 52))
        person = api.http.get("/persons/crowd", headers=api.client).json()
        assert person["template_size"] == 51 and len({f["id"] for f in person["faces"]}) == 51
        assert reference_is_pooled(api, "crowd") == 51


def two_alike_faces(a: bytes, b: bytes) -> bytes:
    ia, ib = (np.asarray(Image.open(io.BytesIO(x)).convert("RGB")) for x in (a, b))
    h = min(ia.shape[0], ib.shape[0])
    buf = io.BytesIO()
    Image.fromarray(np.concatenate([ia[:h], ib[:h, ::-1]], axis=1)).save(buf, "PNG")
    return buf.getvalue()
