"""Persistence of persons and their faces, and nearest-neighbour search over the persons'
pooled reference embeddings (one row per person, whatever the number of photos).

Each add or remove of a face re-pools the person's reference from all of their faces in the
same transaction, with the person's row locked (SELECT ... FOR UPDATE on PostgreSQL, where
other replicas write too; on SQLite this process's write lock serialises every write), so
concurrent adds all count and the reference is always the pooling of the faces stored.

Search and the gallery's size are the store's `SearchIndex` (app/storage/search.py), chosen
once for the database: an exact in-process index on SQLite, pgvector's HNSW index on
PostgreSQL. The store tells it of each committed change under the same lock as the commit.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.domain import errors
from app.domain.templates import pool
from app.domain.verification import Candidate
from app.storage.models import EmbeddingWidth, Face, Person
from app.storage.search import SearchIndex, index_for


@dataclass(frozen=True)
class PersonRecord:
    person_id: str
    display_name: str | None
    embedding: np.ndarray = field(repr=False)
    model_version: str
    created_at: object
    updated_at: object
    template_size: int = 1

    @classmethod
    def of(cls, p: Person) -> "PersonRecord":
        return cls(p.person_id, p.display_name, p.embedding, p.model_version, p.created_at, p.updated_at,
                   p.template_size)


@dataclass(frozen=True)
class FaceRecord:
    id: int
    embedding: np.ndarray = field(repr=False)  # internal: never in a response
    box: list[float] | None  # None for a person migrated from the one-photo schema
    score: float | None
    added_at: object

    @classmethod
    def of(cls, f: Face) -> "FaceRecord":
        return cls(f.id, f.embedding, list(f.box) if f.box is not None else None, f.score, f.added_at)


@dataclass(frozen=True)
class FaceChange:
    """The result of adding or removing one face: the person after re-pooling, and the face."""

    person: PersonRecord
    face: FaceRecord


class PersonStore:
    """Persons in the database, plus the search structure kept coherent with it."""

    def __init__(self, engine: Engine, model_version: str, dim: int, ef_search: int | None = None) -> None:
        self.engine = engine
        self.sessions: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)
        self.model_version = model_version
        self.index: SearchIndex = index_for(engine, self.sessions, model_version, dim, ef_search)
        self._write_lock = threading.Lock()  # commit + index update are one step

    def gallery_size(self) -> int:
        """Persons enrolled with this model version (the N of the identify threshold), without
        scanning the gallery per request (the search index keeps it)."""
        return self.index.size()

    def load_index(self) -> None:
        # under the write lock: a delete during the load cannot be undone by the load
        with self._write_lock:
            self.index.load()

    # --- persons ---------------------------------------------------------------------------

    def enroll(self, person_id: str, display_name: str | None, embedding: np.ndarray,
               replace: bool, box: list[float] | None = None,
               score: float | None = None) -> tuple[PersonRecord, bool]:
        """Store a person with one face, whose embedding is the template (a pooling of one).
        With `replace`, an existing person's faces are all replaced by this one.
        Returns (record, replaced)."""
        reference = pool(embedding)
        with self._write_lock, self.sessions() as s:
            replaced, before = False, None
            try:
                person = Person(person_id=person_id, display_name=display_name, embedding=reference,
                                model_version=self.model_version, template_size=1)
                s.add(person)
                s.flush()  # the unique person_id is checked here
                s.add(Face(person_pk=person.id, embedding=embedding, box=box, score=score))
                s.commit()
            except IntegrityError:
                s.rollback()
                if not replace:
                    raise _exists(person_id) from None
                person = s.scalars(select(Person).where(Person.person_id == person_id)
                                   .with_for_update()).one()
                before = person.model_version
                s.execute(delete(Face).where(Face.person_pk == person.id))
                s.add(Face(person_pk=person.id, embedding=embedding, box=box, score=score))
                s.execute(update(Person).where(Person.id == person.id).values(
                    display_name=display_name, embedding=reference, template_size=1,
                    model_version=self.model_version, updated_at=func.now()))
                s.commit()
                replaced = True
            s.expire_all()
            person = s.scalars(select(Person).where(Person.person_id == person_id)).one()
            # a re-enroll of someone enrolled with another model version joins this gallery
            self.index.stored(person_id, display_name, reference, 1,
                              joined=not (replaced and before == self.model_version))
            return PersonRecord.of(person), replaced

    # --- faces: each change re-pools the reference in its own transaction --------------------

    def add_face(self, person_id: str, embedding: np.ndarray, box: list[float] | None = None,
                 score: float | None = None) -> FaceChange:
        """Add one photo's embedding to an enrolled person and re-pool their reference."""
        with self._write_lock:  # commit + index update are one step
            with self.sessions() as s, s.begin():
                person = self._locked(s, person_id)
                if person.model_version != self.model_version:
                    raise version_mismatch(person.person_id, person.model_version, self.model_version)
                face = Face(person_pk=person.id, embedding=embedding, box=box, score=score)
                s.add(face)
                s.flush()
                added = FaceRecord.of(face)
                record = self._repool(s, person)
            self._index_update(record)
        return FaceChange(record, added)

    def remove_face(self, person_id: str, face_id: int) -> FaceChange:
        """Remove one face of a person and re-pool their reference; the last face cannot go
        (LastFace: delete the person instead)."""
        with self._write_lock:  # commit + index update are one step
            with self.sessions() as s, s.begin():
                person = self._locked(s, person_id)
                face = s.scalars(select(Face).where(Face.id == face_id, Face.person_pk == person.id)).one_or_none()
                if face is None:
                    raise errors.FaceNotFound(f"Person {person_id!r} has no face {face_id}")
                count = s.scalar(select(func.count()).select_from(Face).where(Face.person_pk == person.id))
                if count <= 1:
                    raise errors.LastFace(
                        f"Face {face_id} is the only face of {person_id!r}; a person needs at least one "
                        f"(DELETE /persons/{person_id} removes the person)")
                removed = FaceRecord.of(face)
                s.delete(face)
                s.flush()
                record = self._repool(s, person)
            self._index_update(record)
        return FaceChange(record, removed)

    def faces(self, person_id: str) -> list[FaceRecord]:
        """The person's faces, oldest first (PersonNotFound if not enrolled)."""
        with self.sessions() as s:
            pk = s.scalar(select(Person.id).where(Person.person_id == person_id))
            if pk is None:
                raise _not_found(person_id)
            rows = s.scalars(select(Face).where(Face.person_pk == pk).order_by(Face.id)).all()
        return [FaceRecord.of(f) for f in rows]

    def get_with_faces(self, person_id: str) -> tuple[PersonRecord, list[FaceRecord]]:
        """The person and their faces as of one committed change: FOR SHARE waits for an add or
        remove in flight, so the list and the template size always agree."""
        with self.sessions() as s, s.begin():
            person = s.scalars(select(Person).where(Person.person_id == person_id)
                               .with_for_update(read=True)).one_or_none()
            if person is None:
                raise _not_found(person_id)
            rows = s.scalars(select(Face).where(Face.person_pk == person.id).order_by(Face.id)).all()
            return PersonRecord.of(person), [FaceRecord.of(f) for f in rows]

    @staticmethod
    def _locked(s: Session, person_id: str) -> Person:
        # FOR UPDATE: a second add to the same person (from any replica) waits here until the
        # first commits, then reads its face too. SQLite ignores it (the write lock serialises).
        person = s.scalars(select(Person).where(Person.person_id == person_id).with_for_update()).one_or_none()
        if person is None:
            raise _not_found(person_id)
        return person

    @staticmethod
    def _repool(s: Session, person: Person) -> PersonRecord:
        """Re-pool the locked person's reference from all their faces, in the open transaction."""
        embeddings = s.scalars(select(Face.embedding).where(Face.person_pk == person.id).order_by(Face.id)).all()
        person.embedding = pool(np.stack(embeddings))
        person.template_size = len(embeddings)
        person.updated_at = func.now()
        s.flush()
        s.refresh(person)
        return PersonRecord.of(person)

    def _index_update(self, record: PersonRecord) -> None:
        if record.model_version == self.model_version:
            self.index.stored(record.person_id, record.display_name, record.embedding,
                              record.template_size, joined=False)

    def ensure_absent(self, person_id: str) -> None:
        """PersonExists if `person_id` is enrolled: a cheap early answer before the model
        runs; the unique constraint in `enroll` is the real guard."""
        with self.sessions() as s:
            if s.scalar(select(Person.id).where(Person.person_id == person_id)) is not None:
                raise _exists(person_id)

    def get(self, person_id: str) -> PersonRecord:
        with self.sessions() as s:
            person = s.scalars(select(Person).where(Person.person_id == person_id)).one_or_none()
        if person is None:
            raise _not_found(person_id)
        return PersonRecord.of(person)

    def list(self, offset: int, limit: int) -> tuple[list[PersonRecord], int]:
        # one statement, so the page and the total come from the same snapshot even while
        # others enroll and delete (two statements disagreed under load: total 17, 16 items)
        total_col = func.count().over().label("total")
        with self.sessions() as s:
            rows = s.execute(select(Person, total_col).order_by(Person.person_id)
                             .offset(offset).limit(limit)).all()
            if rows:
                total = rows[0][1]
            elif offset == 0:  # the same snapshot saw nobody: a second count could see a newcomer
                total = 0
            else:  # past the end: no row to carry the total
                total = s.scalar(select(func.count()).select_from(Person)) or 0
        return [PersonRecord.of(r[0]) for r in rows], int(total)

    def delete(self, person_id: str) -> None:
        with self._write_lock, self.sessions() as s:
            version = s.scalar(select(Person.model_version).where(Person.person_id == person_id))
            # faces first (the foreign key cascades too, but SQLite only with foreign_keys=ON)
            s.execute(delete(Face).where(Face.person_pk.in_(
                select(Person.id).where(Person.person_id == person_id).scalar_subquery())))
            deleted = s.execute(delete(Person).where(Person.person_id == person_id)).rowcount
            s.commit()
            self.index.removed(person_id, left=bool(deleted) and version == self.model_version)
        if not deleted:
            raise _not_found(person_id)

    def count_other_versions(self) -> int:
        with self.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(Person)
                                .where(Person.model_version != self.model_version)) or 0)

    # --- search ------------------------------------------------------------------------------

    def nearest(self, query: np.ndarray, k: int) -> list[Candidate]:
        """The k nearest persons enrolled with this model version, nearest first."""
        return self.index.nearest(query, k)

    def stored_width(self) -> tuple[int, str] | None:
        """(values per stored embedding, the model version migration 0005 set it for) from the
        `embedding_width` row, or None where the row is missing."""
        with self.sessions() as s:
            row = s.execute(select(EmbeddingWidth.dim, EmbeddingWidth.model_version)
                            .where(EmbeddingWidth.id == 1)).one_or_none()
        return None if row is None else (int(row[0]), str(row[1]))

    def stored_versions(self) -> dict[str, int]:
        """Persons per model version they were enrolled with."""
        with self.sessions() as s:
            rows = s.execute(select(Person.model_version, func.count()).group_by(Person.model_version)).all()
        return {str(v): int(n) for v, n in rows}


def _not_found(person_id: str) -> errors.PersonNotFound:
    return errors.PersonNotFound(f"No person {person_id!r} is enrolled")


def version_mismatch(person_id: str, stored: str, running: str) -> errors.ModelVersionMismatch:
    """A person's embeddings were made by another model: no distance or pooling with them."""
    return errors.ModelVersionMismatch(
        f"{person_id!r} was enrolled with model {stored!r}, the service runs {running!r}; "
        "re-enroll the person (POST /enroll with replace=true)")


def _exists(person_id: str) -> errors.PersonExists:
    return errors.PersonExists(f"Person {person_id!r} is already enrolled; send replace=true to re-enroll")
