"""SQLAlchemy 2 typed ORM. One row per enrolled person, holding the pooled reference that
search uses; one row per photo of a person in `faces` (its embedding, never the photo);
API keys stored hashed.

The embedding column is portable: pgvector `vector(N)` on PostgreSQL (so an HNSW index can
serve identify), little-endian float32 bytes on SQLite. N is the model's own width, set by
migration 0005 from the configured artefact and recorded in `embedding_width`, which start-up
compares with the model's (app/startup.py); the ORM type itself fixes no width.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, LargeBinary, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

class Embedding(TypeDecorator):
    """float32 vector: pgvector on PostgreSQL, raw bytes elsewhere. With `dim` (the migrations'
    DDL) the width is checked here; without it (the ORM), the database's column is the owner."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Vector(self.dim))
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        vec = np.asarray(value, dtype=np.float32).reshape(-1)
        if self.dim is not None and vec.shape[0] != self.dim:
            raise ValueError(f"embedding has {vec.shape[0]} values, the column holds {self.dim}")
        if dialect.name == "postgresql":
            return vec
        return vec.astype("<f4").tobytes()

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if dialect.name == "postgresql":
            return np.asarray(value, dtype=np.float32)
        return np.frombuffer(value, dtype="<f4").copy()


class Base(DeclarativeBase):
    pass


class Person(Base):
    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(128), unique=True, index=True)
    display_name: Mapped[str | None] = mapped_column(String(256))
    # the template: pooled from the embeddings of the person's faces (app/domain/templates.py)
    embedding: Mapped[np.ndarray] = mapped_column(Embedding())
    model_version: Mapped[str] = mapped_column(String(128))
    template_size: Mapped[int] = mapped_column(Integer, server_default="1")  # rows in faces
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Face(Base):
    """One photo of a person: its embedding and where the face was, never the image."""

    __tablename__ = "faces"
    # ids are never reused on SQLite either: a client's stale face id cannot name a newer face
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_pk: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    embedding: Mapped[np.ndarray] = mapped_column(Embedding())
    box: Mapped[list[float] | None] = mapped_column(JSON)  # x, y, w, h; None: migrated from one photo
    score: Mapped[float | None] = mapped_column(Float)  # detector confidence
    added_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings; never the whole key
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))  # None = active


class EmbeddingWidth(Base):
    """One row: how many values each stored embedding has (set by migration 0005 from the model
    configured then), and that model's version. Start-up refuses a model of another width."""

    __tablename__ = "embedding_width"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    dim: Mapped[int] = mapped_column(Integer)
    model_version: Mapped[str] = mapped_column(String(128))
