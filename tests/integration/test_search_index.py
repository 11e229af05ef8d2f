"""The store's search index on both databases (SQLite and a real PostgreSQL): chosen once from
the engine, and either one answers the same to every change the store makes."""

from __future__ import annotations

import numpy as np

from app.core.db import make_engine
from app.storage.persons import PersonStore
from app.storage.search import ExactSearch, PgvectorSearch

DIM = 256  # the default model's width, which the test databases are migrated to


def unit(rng, n=1):
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_the_index_follows_enrolls_faces_deletes_and_other_versions(database_url):
    engine = make_engine(database_url)
    try:
        store = PersonStore(engine, "v1", DIM, ef_search=40)
        other = PersonStore(engine, "v0", DIM, ef_search=40)
        postgres = database_url.startswith("postgresql")
        assert type(store.index) is (PgvectorSearch if postgres else ExactSearch)
        assert store.index.resident() == (None if postgres else 0)
        rng = np.random.default_rng(7)
        a, b, c, moved = unit(rng, 4)
        other.enroll("moved", None, moved, replace=False)  # another model version's person
        store.load_index()
        store.enroll("a", "A", a, replace=False)
        store.enroll("b", None, b, replace=False)
        store.enroll("a", "A2", a, replace=True)  # the same person again
        assert store.gallery_size() == 2
        assert {x.person_id for x in store.nearest(moved, 5)} == {"a", "b"}  # not another version's
        store.enroll("moved", None, c, replace=True)  # joins this model version's gallery
        assert store.gallery_size() == 3
        store.add_face("b", c)  # b's template now pools two faces
        nearest = store.nearest(c, 1)[0]
        assert nearest.person_id == "moved" and nearest.distance < 1e-5
        assert {x.person_id: x.template_size for x in store.nearest(c, 3)}["b"] == 2
        assert store.nearest(a, 1)[0].display_name == "A2"
        store.delete("a")
        other.enroll("stranger", None, a, replace=False)
        assert store.gallery_size() == 2
        found = store.nearest(a, 5)
        assert {x.person_id for x in found} == {"b", "moved"}
        assert [x.distance for x in found] == sorted(x.distance for x in found)
        if not postgres:
            assert store.index.resident() == 2
    finally:
        engine.dispose()
