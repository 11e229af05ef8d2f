"""faces: each photo's embedding; persons.embedding becomes the template pooled from them

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

Every existing person becomes a template of one face: their stored embedding (already the
pooling of that one photo), added when the person was created. No detection box or score
is known for those faces (the photos were never kept), so both are NULL.
"""

import sqlalchemy as sa
from alembic import op

from app.storage.models import Embedding

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

EMBEDDING_DIM = 512  # the width of every embedding column until migration 0005


def upgrade() -> None:
    op.create_table(
        "faces",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("person_pk", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), nullable=False),
        sa.Column("embedding", Embedding(EMBEDDING_DIM), nullable=False),
        sa.Column("box", sa.JSON, nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sqlite_autoincrement=True,  # ids never reused: a stale face id cannot name a newer face
    )
    op.create_index("ix_faces_person_pk", "faces", ["person_pk"])
    with op.batch_alter_table("persons") as batch:  # batch: SQLite cannot ALTER in place
        batch.add_column(sa.Column("template_size", sa.Integer, server_default="1", nullable=False))
    op.execute("INSERT INTO faces (person_pk, embedding, added_at) "
               "SELECT id, embedding, created_at FROM persons ORDER BY id")


def downgrade() -> None:
    # persons keep their pooled reference: search goes on working with one row per person.
    # faces first: on SQLite the batch copy of persons drops the old table, which would
    # cascade to the faces that reference it
    op.drop_index("ix_faces_person_pk", table_name="faces")
    op.drop_table("faces")
    with op.batch_alter_table("persons") as batch:
        batch.drop_column("template_size")
