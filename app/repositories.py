"""Persistence of persons, and nearest-neighbour search over their embeddings.

Search has two strategies behind one method:
- SQLite (embedded default): an exact in-memory NumPy matrix, loaded at start and
  updated under the same lock as each committed enroll/delete, so it never shows
  a person the database does not have (or misses one it has).
- PostgreSQL: the database is the index; identify is one `ORDER BY embedding::halfvec <=> q
  LIMIT k` query served by the halfvec HNSW index, with `hnsw.ef_search` from settings or,
  by default, chosen for the gallery's size from measured recall (app/services/hnsw.py).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from pgvector.sqlalchemy import HALFVEC, Vector
from sqlalchemy import Engine, Float, bindparam, cast, delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.core import errors
from app.models import Person
from app.services.hnsw import ef_search_for
from app.services.verification import Candidate, top_k_exact


@dataclass(frozen=True)
class PersonRecord:
    person_id: str
    display_name: str | None
    embedding: np.ndarray
    model_version: str
    created_at: object
    updated_at: object

    @classmethod
    def of(cls, p: Person) -> "PersonRecord":
        return cls(p.person_id, p.display_name, p.embedding, p.model_version, p.created_at, p.updated_at)


class ExactIndex:
    """Rows of L2-normalised embeddings of one model version, searched exactly.

    Rows live in a buffer that doubles when full, so an enroll appends in amortised
    O(1) instead of copying the whole gallery; a delete moves the last row into the hole.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._ids: list[str] = []
        self._names: list[str | None] = []
        self._pos: dict[str, int] = {}
        self._rows = np.zeros((0, dim), np.float32)  # capacity >= len(self)
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._ids)

    def upsert(self, person_id: str, name: str | None, embedding: np.ndarray) -> None:
        with self._lock:
            row = np.asarray(embedding, np.float32).reshape(self.dim)
            if person_id in self._pos:
                i = self._pos[person_id]
                self._rows[i] = row
                self._names[i] = name
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

    def bulk_load(self, ids: list[str], names: list[str | None], matrix: np.ndarray) -> None:
        with self._lock:
            self._ids, self._names = list(ids), list(names)
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
                self._pos[self._ids[i]] = i
            self._ids.pop()
            self._names.pop()

    def search(self, query: np.ndarray, k: int) -> list[Candidate]:
        with self._lock:
            idx, dist = top_k_exact(self._rows[: len(self._ids)], query, k)
            return [Candidate(self._ids[i], self._names[i], float(d)) for i, d in zip(idx, dist)]


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
                select(Person.person_id, Person.display_name, Person.embedding)
                .where(Person.model_version == self.model_version).order_by(Person.id)
            ).all()
        matrix = np.stack([r[2] for r in rows]) if rows else np.zeros((0, self.index.dim), np.float32)
        self.index.bulk_load([r[0] for r in rows], [r[1] for r in rows], matrix)

    # --- persons ---------------------------------------------------------------------------

    def enroll(self, person_id: str, display_name: str | None, embedding: np.ndarray,
               replace: bool) -> tuple[PersonRecord, bool]:
        """Store one reference embedding. Returns (record, replaced)."""
        with self._write_lock, self.sessions() as s:
            replaced, before = False, None
            try:
                s.add(Person(person_id=person_id, display_name=display_name,
                             embedding=embedding, model_version=self.model_version))
                s.commit()
            except IntegrityError:
                s.rollback()
                if not replace:
                    raise _exists(person_id) from None
                before = s.scalar(select(Person.model_version).where(Person.person_id == person_id))
                s.execute(update(Person).where(Person.person_id == person_id).values(
                    display_name=display_name, embedding=embedding,
                    model_version=self.model_version, updated_at=func.now()))
                s.commit()
                replaced = True
            # a re-enroll of someone enrolled with another model version joins this gallery
            self._adjust_count(0 if replaced and before == self.model_version else 1)
            person = s.scalars(select(Person).where(Person.person_id == person_id)).one()
            if self.index is not None:
                self.index.upsert(person_id, display_name, embedding)
            return PersonRecord.of(person), replaced

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
            raise errors.PersonNotFound(f"No person {person_id!r} is enrolled")
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
            deleted = s.execute(delete(Person).where(Person.person_id == person_id)).rowcount
            s.commit()
            if deleted and version == self.model_version:
                self._adjust_count(-1)
            if self.index is not None:
                self.index.remove(person_id)
        if not deleted:
            raise errors.PersonNotFound(f"No person {person_id!r} is enrolled")

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
        found = [Candidate(r[0], r[1], float(r[2])) for r in rows]
        return sorted(found, key=lambda c: c.distance)  # half precision may swap near-ties

    def nearest_statement(self, query: np.ndarray, k: int):
        """PostgreSQL: order by the half-precision distance, which the halfvec HNSW index
        (migration 0002) serves; return the full-precision distance of the rows found."""
        vec = np.asarray(query, np.float32)
        half = cast(Person.embedding, HALFVEC(len(vec))).op("<=>", return_type=Float)(
            bindparam("qh", vec, type_=HALFVEC(len(vec))))
        exact = Person.embedding.op("<=>", return_type=Float)(bindparam("q", vec, type_=Vector(len(vec))))
        return (select(Person.person_id, Person.display_name, exact.label("d"))
                .where(Person.model_version == self.model_version).order_by(half).limit(k))

    def stored_dim(self) -> int | None:
        """The embedding size the database holds: the pgvector column's, or on SQLite the
        size of a stored row (None while nobody is enrolled)."""
        with self.sessions() as s:
            if self.postgres:
                return s.scalar(text("SELECT atttypmod FROM pg_attribute WHERE attrelid = "
                                     "'persons'::regclass AND attname = 'embedding'"))
            size = s.scalar(select(func.length(Person.embedding)).limit(1))
        return None if size is None else int(size) // 4  # float32 bytes


def _exists(person_id: str) -> errors.PersonExists:
    return errors.PersonExists(f"Person {person_id!r} is already enrolled; send replace=true to re-enroll")
