"""persons and api_keys; pgvector + HNSW on PostgreSQL

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from app.storage.models import Embedding

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

EMBEDDING_DIM = 512  # the width of every embedding column until migration 0005


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "persons",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("person_id", sa.String(128), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=True),
        sa.Column("embedding", Embedding(EMBEDDING_DIM), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_persons_person_id", "persons", ["person_id"], unique=True)
    if postgres:
        # cosine distance, the service's metric. m/ef_construction above pgvector's defaults
        # (16/64): on face-like 512-D embeddings at 100k people, 16/64 reaches recall@1 0.95 at
        # ef_search 200, 32/128 reaches 0.996 (bench/identify_scale.py, docs/benchmarks.md).
        op.execute(
            "CREATE INDEX ix_persons_embedding_hnsw ON persons "
            "USING hnsw (embedding vector_cosine_ops) WITH (m = 32, ef_construction = 128)"
        )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_api_keys_key_hash", "api_keys", ["key_hash"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_api_keys_key_hash", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("persons")
