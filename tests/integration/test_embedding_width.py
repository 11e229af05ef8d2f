"""Migration 0005 on both databases (a SQLite file and a real PostgreSQL): the embedding columns,
512 wide for every model before it (the 256-value default zero-padded), become the model's own
width. Persons with several faces enrolled before the change verify after it with the real
model, the stored rows are 256 wide, the HNSW index is on halfvec(256), and rows made by a wider
model stop the migration with what to do."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from app.core.db import make_engine
from app.core.migrate import current_revision, downgrade, head_revision, upgrade
from app.storage.models import Embedding
from app.storage.persons import PersonStore
from tests.conftest import make_api, yale_bytes

OLD_DIM = 512  # every embedding column before migration 0005
DIM = 256  # the default model's width (SFace 128 + dlib 128)

PERSONS_0004 = sa.table("persons", sa.column("id"), sa.column("person_id"), sa.column("display_name"),
                        sa.column("embedding", Embedding(OLD_DIM)), sa.column("model_version"),
                        sa.column("template_size"))
FACES_0004 = sa.table("faces", sa.column("person_pk"), sa.column("embedding", Embedding(OLD_DIM)),
                      sa.column("box", sa.JSON), sa.column("score"))


def padded(v: np.ndarray) -> np.ndarray:
    """What the service stored before 0005: the 256 values, then 256 zeros."""
    return np.pad(np.asarray(v, np.float32), (0, OLD_DIM - len(v)))


def stored_widths(engine) -> dict[str, set[int]]:
    with engine.connect() as c:
        if engine.dialect.name == "postgresql":
            q = "SELECT DISTINCT vector_dims(embedding) FROM {}"
        else:
            q = "SELECT DISTINCT length(embedding) / 4 FROM {}"
        return {t: set(c.scalars(sa.text(q.format(t)))) for t in ("persons", "faces")}


def test_persons_enrolled_with_padded_rows_verify_after_the_migration(blank_url, tmp_path,
                                                                      real_embedder, real_detector):
    """The real default model: subject 01 enrolled from two photos and subject 02 from one, stored
    as the service stored them before 0005 (512 wide, zero-padded); after it the rows are 256
    wide with the same values, and a third photo of subject 01 verifies against them."""
    # the embeddings the service makes of these photos, taken from a scratch database
    scratch = f"sqlite:///{tmp_path / 'scratch.db'}"
    upgrade(scratch)
    with make_api(scratch, real_embedder, real_detector) as api:
        assert api.enroll("s01", yale_bytes("subject01.normal")).status_code == 201
        added = api.http.post("/persons/s01/faces", files={"image": ("p.png", yale_bytes("subject01.happy"))},
                              headers=api.admin)
        assert added.status_code == 201, added.text
        assert api.enroll("s02", yale_bytes("subject02.normal")).status_code == 201
    e = make_engine(scratch)
    store = PersonStore(e, real_embedder.model_version, DIM)
    made = {pid: store.get_with_faces(pid) for pid in ("s01", "s02")}
    e.dispose()
    assert all(len(p.embedding) == DIM for p, _ in made.values())

    upgrade(blank_url, "0004")  # the schema before: 512-wide columns
    engine = make_engine(blank_url)
    try:
        with engine.begin() as c:
            for pid, (person, faces) in made.items():
                pk = c.execute(sa.insert(PERSONS_0004).returning(PERSONS_0004.c.id), {
                    "person_id": pid, "display_name": None, "embedding": padded(person.embedding),
                    "model_version": person.model_version, "template_size": len(faces)}).scalar_one()
                c.execute(sa.insert(FACES_0004), [{"person_pk": pk, "embedding": padded(f.embedding),
                                                   "box": f.box, "score": f.score} for f in faces])
        assert stored_widths(engine) == {"persons": {OLD_DIM}, "faces": {OLD_DIM}}

        upgrade(blank_url)
        assert current_revision(engine) == head_revision()
        assert stored_widths(engine) == {"persons": {DIM}, "faces": {DIM}}
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT dim, model_version FROM embedding_width")).one() == (
                DIM, real_embedder.model_version)
            if engine.dialect.name == "postgresql":
                for table in ("persons", "faces"):
                    assert c.scalar(sa.text(
                        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                        f"WHERE attrelid = '{table}'::regclass AND attname = 'embedding'")) == f"vector({DIM})"
                indexdef = c.scalar(sa.text("SELECT indexdef FROM pg_indexes "
                                            "WHERE indexname = 'ix_persons_embedding_hnsw_half'"))
                assert f"halfvec({DIM})" in indexdef and "halfvec_cosine_ops" in indexdef
        after = PersonStore(engine, real_embedder.model_version, DIM)
        for pid, (person, faces) in made.items():  # the same values, without the padding
            p2, f2 = after.get_with_faces(pid)
            np.testing.assert_allclose(p2.embedding, person.embedding, atol=1e-6)
            assert p2.template_size == len(faces) == len(f2)
            for a, b in zip(faces, f2):
                np.testing.assert_allclose(b.embedding, a.embedding, atol=1e-6)
    finally:
        engine.dispose()

    with make_api(blank_url, real_embedder, real_detector) as api:
        v = api.verify("s01", yale_bytes("subject01.sad"))
        assert v.status_code == 200, v.text
        assert v.json()["match"] and v.json()["template_size"] == 2
        assert not api.verify("s02", yale_bytes("subject01.sad")).json()["match"]
        found = api.identify(yale_bytes("subject01.sad")).json()
        assert found["match"]["person_id"] == "s01"
        # and enrolls go on at the new width
        assert api.enroll("s03", yale_bytes("subject03.normal")).status_code == 201
        assert api.verify("s03", yale_bytes("subject03.happy")).json()["match"]

    downgrade(blank_url, "0004")  # and back: 512 wide, zero-padded again
    engine = make_engine(blank_url)
    try:
        assert stored_widths(engine) == {"persons": {OLD_DIM}, "faces": {OLD_DIM}}
        with engine.connect() as c:
            row = c.execute(sa.select(PERSONS_0004.c.embedding).where(PERSONS_0004.c.person_id == "s01")).scalar()
        np.testing.assert_allclose(row, padded(made["s01"][0].embedding), atol=1e-6)
    finally:
        engine.dispose()


def test_rows_of_a_wider_model_stop_the_migration_with_what_to_do(blank_url):
    """A 512-value row whose values past 256 are not zero was made by another model: cutting it
    would change its distances, so the migration stops, says why and what to do, and leaves
    the database at 0004."""
    upgrade(blank_url, "0004")
    engine = make_engine(blank_url)
    try:
        v = np.random.default_rng(0).normal(size=OLD_DIM).astype(np.float32)
        with engine.begin() as c:
            c.execute(sa.insert(PERSONS_0004), {"id": 1, "person_id": "wide", "display_name": None,
                                                "embedding": v / np.linalg.norm(v),
                                                "model_version": "wide-v1", "template_size": 1})
            c.execute(sa.insert(FACES_0004), {"person_pk": 1, "embedding": v / np.linalg.norm(v)})
        with pytest.raises(RuntimeError, match=r"512-value embeddings that do not fit the 256 values .*"
                                               r"FACEAPI_MODEL=<that model> python -m app migrate"):
            upgrade(blank_url)
        assert current_revision(engine) == "0004"
        assert stored_widths(engine) == {"persons": {OLD_DIM}, "faces": {OLD_DIM}}
    finally:
        engine.dispose()


def test_migrate_command_sets_the_width_of_the_configured_model(tmp_path):
    """`python -m app migrate` takes the width from the artefact FACEAPI_MODEL names: 128 for
    SFace alone, 256 for the default fusion."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for model, dim in (("sface-2021dec-base-v1", 128), ("fusion-sface-dlib-flip-v1", 256)):
        url = f"sqlite:///{tmp_path / (model + '.db')}"
        env = {**os.environ, "FACEAPI_DATABASE_URL": url, "FACEAPI_MODEL": model, "PYTHONPATH": str(root)}
        done = subprocess.run([sys.executable, "-m", "app", "migrate"], cwd=root, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        engine = make_engine(url)
        try:
            with engine.connect() as c:
                assert c.execute(sa.text("SELECT dim, model_version FROM embedding_width")).one() == (dim, model)
        finally:
            engine.dispose()
