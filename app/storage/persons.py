"""Persistence of persons and their faces, and nearest-neighbour search over the persons'
pooled reference embeddings (one row per person, whatever the number of photos).

Each add or remove of a face re-pools the person's reference from all of their faces in the
same transaction, with the person's row locked (SELECT ... FOR UPDATE on PostgreSQL, where
other replicas write too; on SQLite this process's write lock serialises every write), so
concurrent adds all count and the reference is always the pooling of the faces stored.

Search has two strategies behind one method:
- SQLite (embedded default): an exact in-memory NumPy matrix, loaded at start and
  updated under the same lock as each committed enroll/delete, so it never shows
  a person the database does not have (or misses one it has).
- PostgreSQL: the database is the index; identify is one `ORDER BY embedding::halfvec <=> q
  LIMIT k` query served by the halfvec HNSW index, with `hnsw.ef_search` from settings or,
  by default, chosen for the gallery's size from measured recall (app/domain/hnsw.py).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from pgvector.sqlalchemy import HALFVEC, Vector
from sqlalchemy import Engine, Float, bindparam, cast, delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.domain import errors
from app.storage.models import EmbeddingWidth, Face, Person
from app.domain.hnsw import ef_search_for
from app.domain.templates import pool
from app.domain.verification import Candidate, top_k_exact


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


class ExactIndex:
    """Rows of L2-normalised embeddings of one model version, searched exactly.

    Rows live in a buffer that doubles when full, so an enroll appends in amortised
    O(1) instead of copying the whole gallery; a delete moves the last row into the hole.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._ids: list[str] = []
        self._names: list[str | None] = []
        self._sizes: list[int] = []  # template sizes, reported with each candidate
        self._pos: dict[str, int] = {}
        self._rows = np.zeros((0, dim), np.float32)  # capacity >= len(self)
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._ids)

    def upsert(self, person_id: str, name: str | None, embedding: np.ndarray, template_size: int = 1) -> None:
        with self._lock:
            row = np.asarray(embedding, np.float32).reshape(self.dim)
            if person_id in self._pos:
                i = self._pos[person_id]
                self._rows[i] = row
                self._names[i] = name
                self._sizes[i] = template_size
                return
            n = len(self._ids)
            if n == len(self._rows):
                grown = np.zeros((max(64, 2 * n), self.dim), np.float32)
                grown[:n] = self._rows[:n]
                self._rows = grown
            self._rows[n] = row
            self._pos[person_id] = n
            self._ids.append(person_id)
            self._names.append(name)
            self._sizes.append(template_size)

    def bulk_load(self, ids: list[str], names: list[str | None], matrix: np.ndarray,
                  sizes: list[int] | None = None) -> None:
        with self._lock:
            self._ids, self._names = list(ids), list(names)
            self._sizes = list(sizes) if sizes is not None else [1] * len(self._ids)
            self._pos = {p: i for i, p in enumerate(self._ids)}
            self._rows = np.array(matrix, np.float32).reshape(len(ids), self.dim)

    def remove(self, person_id: str) -> None:
        with self._lock:
            i = self._pos.pop(person_id, None)
            if i is None:
                return
            last = len(self._ids) - 1
            if i != last:  # move the last row into the hole: O(1) delete
                self._rows[i] = self._rows[last]
                self._ids[i], self._names[i] = self._ids[last], self._names[last]
                self._sizes[i] = self._sizes[last]
                self._pos[self._ids[i]] = i
            self._ids.pop()
            self._names.pop()
            self._sizes.pop()

    def search(self, query: np.ndarray, k: int) -> list[Candidate]:
        with self._lock:
            idx, dist = top_k_exact(self._rows[: len(self._ids)], query, k)
            return [Candidate(self._ids[i], self._names[i], float(d), self._sizes[i])
                    for i, d in zip(idx, dist)]


class PersonStore:
    """Persons in the database, plus the search structure kept coherent with it."""

    def __init__(self, engine: Engine, model_version: str, dim: int, ef_search: int | None = None) -> None:
        self.engine = engine
        self.sessions: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)
        self.model_version = model_version
        self.postgres = engine.dialect.name == "postgresql"
        self.ef_search = ef_search
        self.index = None if self.postgres else ExactIndex(dim)
        self._write_lock = threading.Lock()  # commit + index update are one step
        self._count: tuple[int, float] | None = None  # PostgreSQL: (persons of this version, when)

    # Other replicas enroll into the same PostgreSQL database, so a count held here goes stale;
    # it is re-read at most this often. The identify threshold moves with log N, so a count a
    # few seconds old changes it by far less than its own uncertainty.
    COUNT_MAX_AGE_S = 10.0

    def gallery_size(self) -> int:
        """Persons enrolled with this model version (the N of the identify threshold), without
        scanning the gallery per request: the exact index's length on SQLite; on PostgreSQL a
        count kept up to date by this process's enrolls and deletes and re-read every
        COUNT_MAX_AGE_S seconds for those of other replicas."""
        if self.index is not None:
            return len(self.index)
        cached = self._count
        if cached is None or time.monotonic() - cached[1] > self.COUNT_MAX_AGE_S:
            with self.sessions() as s:
                n = int(s.scalar(select(func.count()).select_from(Person)
                                 .where(Person.model_version == self.model_version)) or 0)
            self._count = cached = (n, time.monotonic())
        return cached[0]

    def _adjust_count(self, delta: int) -> None:
        if self._count is not None and delta:
            self._count = (max(0, self._count[0] + delta), self._count[1])

    def load_index(self) -> None:
        if self.index is None:
            return
        # under the write lock: a delete during the load cannot be undone by the load
        with self._write_lock, self.sessions() as s:
            rows = s.execute(
                select(Person.person_id, Person.display_name, Person.embedding, Person.template_size)
                .where(Person.model_version == self.model_version).order_by(Person.id)
            ).all()
        matrix = np.stack([r[2] for r in rows]) if rows else np.zeros((0, self.index.dim), np.float32)
        self.index.bulk_load([r[0] for r in rows], [r[1] for r in rows], matrix, [r[3] for r in rows])

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
            # a re-enroll of someone enrolled with another model version joins this gallery
            self._adjust_count(0 if replaced and before == self.model_version else 1)
            s.expire_all()
            person = s.scalars(select(Person).where(Person.person_id == person_id)).one()
            if self.index is not None:
                self.index.upsert(person_id, display_name, reference, 1)
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
        if self.index is not None and record.model_version == self.model_version:
            self.index.upsert(record.person_id, record.display_name, record.embedding, record.template_size)

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
            if deleted and version == self.model_version:
                self._adjust_count(-1)
            if self.index is not None:
                self.index.remove(person_id)
        if not deleted:
            raise _not_found(person_id)

    def count_other_versions(self) -> int:
        with self.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(Person)
                                .where(Person.model_version != self.model_version)) or 0)

    # --- search ------------------------------------------------------------------------------

    def nearest(self, query: np.ndarray, k: int) -> list[Candidate]:
        """The k nearest persons enrolled with this model version, nearest first."""
        if self.index is not None:
            return self.index.search(query, k)
        ef = self.ef_search or ef_search_for(self.gallery_size(), k)
        with self.sessions() as s, s.begin():
            # An HNSW scan yields at most ef_search rows: never fewer than the k asked for.
            s.execute(text(f"SET LOCAL hnsw.ef_search = {max(int(ef), int(k))}"))
            # The model_version filter is applied after the index scan; when rows of other
            # versions crowd the nearest ones out, keep scanning (pgvector >= 0.8) rather than
            # return fewer than k, in exact distance order.
            s.execute(text("SET LOCAL hnsw.iterative_scan = strict_order"))
            rows = s.execute(self.nearest_statement(query, k)).all()
        found = [Candidate(r[0], r[1], float(r[2]), int(r[3])) for r in rows]
        return sorted(found, key=lambda c: c.distance)  # half precision may swap near-ties

    def nearest_statement(self, query: np.ndarray, k: int):
        """PostgreSQL: order by the half-precision distance, which the halfvec HNSW index
        (migration 0002) serves; return the full-precision distance of the rows found."""
        vec = np.asarray(query, np.float32)
        half = cast(Person.embedding, HALFVEC(len(vec))).op("<=>", return_type=Float)(
            bindparam("qh", vec, type_=HALFVEC(len(vec))))
        exact = Person.embedding.op("<=>", return_type=Float)(bindparam("q", vec, type_=Vector(len(vec))))
        return (select(Person.person_id, Person.display_name, exact.label("d"), Person.template_size)
                .where(Person.model_version == self.model_version).order_by(half).limit(k))

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
