"""A person's template on both databases (SQLite and a real PostgreSQL): faces are added,
listed and removed, the person's reference is the pooling of their faces after every change,
concurrent adds all count, and a database made by the one-photo schema migrates to templates
of one face that keep working."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import sqlalchemy as sa

from app.domain import errors
from app.core.db import make_engine
from app.core.migrate import downgrade, upgrade
from app.storage.models import Embedding
from app.storage.persons import PersonStore
from app.domain.templates import pool
from tests.conftest import FakeDetector, FakeEmbedder, make_api, yale_bytes

DIM = 256  # the default model's width, which the test databases are migrated to
OLD_DIM = 512  # every embedding column before migration 0005 (narrower models zero-padded)


def unit(rng, n=1):
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def engine(database_url):
    e = make_engine(database_url)
    yield e
    e.dispose()


@pytest.fixture
def store(engine):
    s = PersonStore(engine, "v1", DIM, ef_search=40)
    s.load_index()
    return s


def assert_pooled(store: PersonStore, person_id: str, expected_faces: int) -> None:
    """The stored reference is the pooling of the stored faces, and search reports the size."""
    person, faces = store.get_with_faces(person_id)
    assert len(faces) == expected_faces == person.template_size
    want = pool(np.stack([f.embedding for f in faces]))
    assert np.allclose(person.embedding, want, atol=1e-6)
    (nearest,) = [c for c in store.nearest(want, 50) if c.person_id == person_id]
    assert nearest.distance == pytest.approx(0.0, abs=1e-5)
    assert nearest.template_size == expected_faces


def test_add_list_remove_faces_keep_the_reference_pooled(store):
    rng = np.random.default_rng(0)
    vecs = unit(rng, 4)
    person, _ = store.enroll("ada", "Ada", vecs[0], replace=False, box=[1.0, 2.0, 30.0, 40.0], score=0.99)
    assert person.template_size == 1
    assert_pooled(store, "ada", 1)
    store.enroll("bob", None, unit(rng)[0], replace=False)  # a neighbour that must stay untouched
    bob_before = store.get("bob").embedding
    ids = [store.faces("ada")[0].id]
    for k, v in enumerate(vecs[1:], start=2):
        change = store.add_face("ada", v, box=[float(k), 0.0, 50.0, 60.0], score=0.9 + k / 100)
        assert change.person.template_size == k and change.face.box == [float(k), 0.0, 50.0, 60.0]
        ids.append(change.face.id)
        assert_pooled(store, "ada", k)
    listed = store.faces("ada")
    assert [f.id for f in listed] == ids  # oldest first
    assert listed[0].box == [1.0, 2.0, 30.0, 40.0] and listed[0].score == pytest.approx(0.99)
    assert np.allclose(store.get("ada").embedding, pool(vecs), atol=1e-6)
    for removed, left in ((ids[1], 3), (ids[0], 2), (ids[3], 1)):
        change = store.remove_face("ada", removed)
        assert change.person.template_size == left and change.face.id == removed
        assert_pooled(store, "ada", left)
    assert [f.id for f in store.faces("ada")] == [ids[2]]
    assert np.allclose(store.get("ada").embedding, vecs[2], atol=1e-6)
    assert np.array_equal(store.get("bob").embedding, bob_before)


def test_the_last_face_stays_and_faces_belong_to_their_person(store):
    rng = np.random.default_rng(1)
    store.enroll("ada", None, unit(rng)[0], replace=False)
    store.enroll("bob", None, unit(rng)[0], replace=False)
    (only,) = store.faces("ada")
    with pytest.raises(errors.LastFace, match="DELETE /persons/ada"):
        store.remove_face("ada", only.id)
    (bobs,) = store.faces("bob")
    with pytest.raises(errors.FaceNotFound):
        store.remove_face("ada", bobs.id)  # another person's face is not ada's
    with pytest.raises(errors.PersonNotFound):
        store.add_face("nobody", unit(rng)[0])
    with pytest.raises(errors.PersonNotFound):
        store.faces("nobody")
    assert_pooled(store, "ada", 1)
    assert_pooled(store, "bob", 1)


def test_faces_of_another_model_version_are_not_pooled(engine):
    rng = np.random.default_rng(2)
    PersonStore(engine, "v0", DIM).enroll("old", None, unit(rng)[0], replace=False)
    with pytest.raises(errors.ModelVersionMismatch, match="replace=true"):
        PersonStore(engine, "v1", DIM).add_face("old", unit(rng)[0])


def test_re_enroll_and_delete_leave_no_stale_faces(store, engine):
    rng = np.random.default_rng(3)
    vecs = unit(rng, 3)
    store.enroll("ada", None, vecs[0], replace=False)
    store.add_face("ada", vecs[1])
    old_ids = {f.id for f in store.faces("ada")}
    person, replaced = store.enroll("ada", None, vecs[2], replace=True)  # a fresh template of one
    assert replaced and person.template_size == 1
    (face,) = store.faces("ada")
    assert face.id not in old_ids  # ids are never reused
    assert_pooled(store, "ada", 1)
    assert np.allclose(store.get("ada").embedding, vecs[2], atol=1e-6)
    store.delete("ada")
    with engine.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM faces")) == 0


def test_50_concurrent_adds_to_one_person_all_count(database_url):
    """On PostgreSQL each of 5 "replicas" (own PersonStore and engine) adds 10 faces at once:
    only the database's row lock can serialise them. On SQLite one process serialises."""
    postgres = database_url.startswith("postgresql")
    engines = [make_engine(database_url) for _ in range(5 if postgres else 1)]
    stores = [PersonStore(e, "v1", DIM) for e in engines]
    for s in stores:
        s.load_index()
    rng = np.random.default_rng(4)
    first, vecs = unit(rng)[0], unit(rng, 50)
    stores[0].enroll("crowd", None, first, replace=False)
    barrier = threading.Barrier(50)
    results: list = [None] * 50

    def add(i):
        barrier.wait()
        try:
            results[i] = stores[i % len(stores)].add_face("crowd", vecs[i]).person.template_size
        except Exception as exc:  # noqa: BLE001  collected and checked below
            results[i] = exc

    threads = [threading.Thread(target=add, args=(i,)) for i in range(50)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert all(isinstance(r, int) for r in results), results
        assert sorted(results) == list(range(2, 52))  # each add saw every add committed before it
        for s in stores:
            person, faces = s.get_with_faces("crowd")
            assert person.template_size == len(faces) == 51
            assert np.allclose(person.embedding, pool(np.vstack([first, vecs])), atol=1e-5)
        assert_pooled(stores[0], "crowd", 51)
    finally:
        for e in engines:
            e.dispose()


# --- migration from the one-photo schema ---------------------------------------------------------

PERSONS_0003 = sa.table("persons", sa.column("person_id"), sa.column("display_name"),
                        sa.column("embedding", Embedding(OLD_DIM)), sa.column("model_version"))


def test_a_database_of_the_one_photo_schema_becomes_templates_of_one(blank_url, tmp_path):
    """Persons enrolled before the faces table keep verifying and identifying after the
    migration, as templates of one face, and can then take more photos."""
    photo = yale_bytes("subject03.normal")
    # the embedding the service makes of `photo`, taken from an enroll on a scratch database
    scratch = f"sqlite:///{tmp_path / 'scratch.db'}"
    upgrade(scratch)
    with make_api(scratch, FakeEmbedder(), FakeDetector()) as api:
        assert api.enroll("x", photo).status_code == 201
    e = make_engine(scratch)
    reference = PersonStore(e, FakeEmbedder.model_version, DIM).get("x").embedding
    e.dispose()

    upgrade(blank_url, "0003")  # the previous schema: one embedding per person, no faces
    engine = make_engine(blank_url)
    try:
        other = unit(np.random.default_rng(5))[0]
        with engine.begin() as c:
            c.execute(sa.insert(PERSONS_0003), [  # zero-padded, as the service stored them then
                {"person_id": "early", "display_name": "Early", "embedding": np.pad(reference, (0, OLD_DIM - DIM)),
                 "model_version": FakeEmbedder.model_version},
                {"person_id": "other", "display_name": None, "embedding": np.pad(other, (0, OLD_DIM - DIM)),
                 "model_version": FakeEmbedder.model_version}])
        upgrade(blank_url)
        store = PersonStore(engine, FakeEmbedder.model_version, DIM)
        store.load_index()
        for pid, vec in (("early", reference), ("other", other)):
            person, (face,) = store.get_with_faces(pid)
            assert person.template_size == 1 and face.box is None and face.score is None
            assert np.array_equal(face.embedding, vec) and np.array_equal(person.embedding, vec)
            assert_pooled(store, pid, 1)
    finally:
        engine.dispose()

    with make_api(blank_url, FakeEmbedder(), FakeDetector()) as api:
        v = api.verify("early", photo)
        assert v.status_code == 200, v.text
        assert v.json()["match"] and v.json()["distance"] == pytest.approx(0.0, abs=1e-5)
        assert v.json()["template_size"] == 1
        found = api.identify(photo).json()
        assert found["match"]["person_id"] == "early" and found["match"]["template_size"] == 1
        listed = api.http.get("/persons/early", headers=api.client).json()
        assert listed["template_size"] == 1 and listed["faces"][0]["box"] is None
        added = api.http.post("/persons/early/faces", files={"image": ("p.png", yale_bytes("subject03.happy"))},
                              headers=api.admin)
        assert added.status_code == 201 and added.json()["template_size"] == 2

    downgrade(blank_url, "0003")  # and back: persons keep their (pooled) reference
    engine = make_engine(blank_url)
    try:
        with engine.connect() as c:
            assert c.scalar(sa.text("SELECT count(*) FROM persons")) == 2
    finally:
        engine.dispose()
