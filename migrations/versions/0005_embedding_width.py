"""embedding columns at the model's own width (no zero padding), recorded in embedding_width

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

Until 0005 persons.embedding and faces.embedding held 512 values for every model, and a
narrower model (the 256-value SFace + dlib fusion) was zero-padded to fit. The width now comes
from the model configured when this runs (FACEAPI_MODEL, its metadata.json; `python -m app
migrate` passes it) and is recorded in `embedding_width`, which start-up compares with the
running model's. Stored rows lose their padding (an isometry: every distance is unchanged, so
persons enrolled before still verify); a row whose values past the width are not all zero was
made by a wider model and stops the migration with what to do. On PostgreSQL the columns
become vector(N) and the halfvec HNSW index of 0002 is rebuilt on halfvec(N).
"""

import numpy as np
import sqlalchemy as sa
from alembic import context, op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OLD_DIM = 512  # every column's width before this revision
TABLES = ("persons", "faces")


def halfvec_index(dim: int) -> str:
    return ("CREATE INDEX ix_persons_embedding_hnsw_half ON persons USING hnsw "
            f"((embedding::halfvec({dim})) halfvec_cosine_ops) WITH (m = 32, ef_construction = 128)")


def model_width() -> tuple[int, str]:
    """(width, model version) of the model to store: handed over by app.core.migrate.upgrade,
    else the artefact that the settings (FACEAPI_MODEL) name."""
    given = context.config.attributes.get("embedding_width")
    if given is not None:
        return int(given[0]), str(given[1])
    from app.core.config import load_settings
    from app.inference.artifacts import load_artifact

    artifact = load_artifact(load_settings().model_dir())
    return artifact.embedding_dim, artifact.model_version


def _refuse(table: str, count: int, old: int, new: int, model: str) -> RuntimeError:
    return RuntimeError(
        f"{count} row(s) of {table} hold {old}-value embeddings that do not fit the {new} values of "
        f"model {model!r} (their values past {new} are not all zero: another model made them). "
        f"Migrate with the model they were made with (FACEAPI_MODEL=<that model> python -m app migrate), "
        f"or delete those persons and enroll them again with {model!r} after migrating")


def _resize_sqlite(bind, old: int, new: int, model: str, pad: bool = False) -> None:
    """Little-endian float32 bytes: cut to `new` values (only zeros may go), or with `pad` (the
    downgrade to 0004 only) padded with zeros."""
    tables = {t: bind.execute(sa.text(f"SELECT id, embedding FROM {t}")).all() for t in TABLES}
    for table, rows in tables.items():  # every check before any change
        bad = [i for i, blob in rows
               if len(blob) != 4 * old or (new < old and np.frombuffer(blob, "<f4")[new:].any())]
        if bad:
            raise _refuse(table, len(bad), old, new, model)
        if new > old and rows and not pad:
            raise _refuse(table, len(rows), old, new, model)
    for table, rows in tables.items():
        update = sa.text(f"UPDATE {table} SET embedding = :e WHERE id = :i")
        for i, blob in rows:
            vec = np.frombuffer(blob, "<f4")
            out = vec[:new] if new <= old else np.concatenate([vec, np.zeros(new - old, "<f4")])
            bind.execute(update, {"e": out.astype("<f4").tobytes(), "i": i})


def _resize_postgres(bind, old: int, new: int, model: str) -> None:
    op.execute("DROP INDEX IF EXISTS ix_persons_embedding_hnsw_half")
    for table in TABLES:
        if new < old:
            bad = bind.scalar(sa.text(
                f"SELECT count(*) FROM {table} "
                f"WHERE vector_norm(subvector(embedding, {new + 1}, {old - new})) > 0"))
            using = f"subvector(embedding, 1, {new})::vector({new})"
        else:
            bad = bind.scalar(sa.text(f"SELECT count(*) FROM {table}")) if new > old else 0
            using = f"embedding::vector({new})"
        if bad:
            raise _refuse(table, bad, old, new, model)
        op.execute(f"ALTER TABLE {table} ALTER COLUMN embedding TYPE vector({new}) USING {using}")
    op.execute(halfvec_index(new))


def _resize(old: int, new: int, model: str) -> None:
    bind = op.get_bind()
    if old == new:
        return
    if bind.dialect.name == "postgresql":
        _resize_postgres(bind, old, new, model)
    else:
        _resize_sqlite(bind, old, new, model)


def upgrade() -> None:
    dim, model = model_width()
    _resize(OLD_DIM, dim, model)  # first: it may refuse, before anything has changed
    op.create_table(
        "embedding_width",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
    )
    op.execute(sa.text("INSERT INTO embedding_width (id, dim, model_version) VALUES (1, :d, :m)")
               .bindparams(d=dim, m=model))


def downgrade() -> None:
    bind = op.get_bind()
    dim, model = bind.execute(sa.text("SELECT dim, model_version FROM embedding_width WHERE id = 1")).one()
    if dim < OLD_DIM:  # back to the zero-padded 512 columns of 0004
        if bind.dialect.name == "postgresql":
            op.execute("DROP INDEX IF EXISTS ix_persons_embedding_hnsw_half")
            for table in TABLES:
                op.execute(f"ALTER TABLE {table} ALTER COLUMN embedding TYPE vector({OLD_DIM}) USING "
                           f"(embedding::real[] || array_fill(0::real, ARRAY[{OLD_DIM - dim}]))::vector({OLD_DIM})")
            op.execute(halfvec_index(OLD_DIM))
        else:
            _resize_sqlite(bind, dim, OLD_DIM, model, pad=True)
    else:
        _resize(dim, OLD_DIM, model)
    op.drop_table("embedding_width")
