"""Nearest-neighbour search over the persons' pooled reference embeddings, and the size of the
gallery it searches: one `SearchIndex` per store, chosen once for the database (`index_for`).

- `ExactSearch` (SQLite, the embedded default): an exact in-memory NumPy matrix (`ExactIndex`),
  loaded at start and updated by the store under the same lock as each committed enroll, face
  change or delete, so it never shows a person the database does not have (or misses one it has).
- `PgvectorSearch` (PostgreSQL): the database is the index; a search is one
  `ORDER BY embedding::halfvec <=> q LIMIT k` query served by the halfvec HNSW index, with
  `hnsw.ef_search` from settings or, by default, chosen for the gallery's size from measured
  recall (app/domain/hnsw.py). The gallery size is a count kept by this process's writes and
  re-read now and then for those of other replicas.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

import numpy as np
from pgvector.sqlalchemy import HALFVEC, Vector
from sqlalchemy import Engine, Float, bindparam, cast, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.domain.hnsw import ef_search_for
from app.domain.verification import Candidate, top_k_exact
from app.storage.models import Person


class SearchIndex(Protocol):
    """What PersonStore asks of its search structure. The store calls `stored` and `removed`
    after each commit, under its write lock, for persons of its own model version."""

    def load(self) -> None:
        """Read the gallery from the database (at start; under the store's write lock)."""

    def size(self) -> int:
        """Persons enrolled with this model version: the N of the identify threshold."""

    def resident(self) -> int | None:
        """Persons held in this process's memory; None where the database is the index."""

    def stored(self, person_id: str, name: str | None, embedding: np.ndarray, template_size: int,
               joined: bool) -> None:
        """A person of this model version was committed with this reference; `joined`: they
        were not in this model version's gallery before (a new person, or one re-enrolled from
        another model version)."""

    def removed(self, person_id: str, left: bool) -> None:
        """`person_id` was deleted; `left`: a person of this model version was (a delete of
        nobody or of another version's person leaves the gallery as it was)."""

    def nearest(self, query: np.ndarray, k: int) -> list[Candidate]:
        """The k nearest persons enrolled with this model version, nearest first."""


def index_for(engine: Engine, sessions: sessionmaker[Session], model_version: str, dim: int,
              ef_search: int | None = None) -> SearchIndex:
    """pgvector's HNSW index on PostgreSQL, an exact in-process index elsewhere (SQLite)."""
    if engine.dialect.name == "postgresql":
        return PgvectorSearch(sessions, model_version, ef_search)
    return ExactSearch(sessions, model_version, dim)


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


class ExactSearch:
    """SearchIndex over an ExactIndex of this model version's persons, loaded from the database."""

    def __init__(self, sessions: sessionmaker[Session], model_version: str, dim: int) -> None:
        self.sessions, self.model_version = sessions, model_version
        self.index = ExactIndex(dim)

    def load(self) -> None:
        with self.sessions() as s:
            rows = s.execute(
                select(Person.person_id, Person.display_name, Person.embedding, Person.template_size)
                .where(Person.model_version == self.model_version).order_by(Person.id)
            ).all()
        matrix = np.stack([r[2] for r in rows]) if rows else np.zeros((0, self.index.dim), np.float32)
        self.index.bulk_load([r[0] for r in rows], [r[1] for r in rows], matrix, [r[3] for r in rows])

    def size(self) -> int:
        return len(self.index)

    def resident(self) -> int | None:
        return len(self.index)

    def stored(self, person_id: str, name: str | None, embedding: np.ndarray, template_size: int,
               joined: bool) -> None:
        self.index.upsert(person_id, name, embedding, template_size)

    def removed(self, person_id: str, left: bool) -> None:
        self.index.remove(person_id)  # a no-op for anyone the index does not hold

    def nearest(self, query: np.ndarray, k: int) -> list[Candidate]:
        return self.index.search(query, k)


class PgvectorSearch:
    """SearchIndex served by PostgreSQL's halfvec HNSW index (migration 0002)."""

    # Other replicas enroll into the same PostgreSQL database, so a count held here goes stale;
    # it is re-read at most this often. The identify threshold moves with log N, so a count a
    # few seconds old changes it by far less than its own uncertainty.
    COUNT_MAX_AGE_S = 10.0

    def __init__(self, sessions: sessionmaker[Session], model_version: str, ef_search: int | None) -> None:
        self.sessions, self.model_version, self.ef_search = sessions, model_version, ef_search
        self._count: tuple[int, float] | None = None  # (persons of this version, when read)

    def load(self) -> None:
        pass  # the database is the index

    def size(self) -> int:
        """A count kept up to date by this process's enrolls and deletes and re-read every
        COUNT_MAX_AGE_S seconds for those of other replicas: no scan of the gallery per request."""
        cached = self._count
        if cached is None or time.monotonic() - cached[1] > self.COUNT_MAX_AGE_S:
            with self.sessions() as s:
                n = int(s.scalar(select(func.count()).select_from(Person)
                                 .where(Person.model_version == self.model_version)) or 0)
            self._count = cached = (n, time.monotonic())
        return cached[0]

    def resident(self) -> int | None:
        return None

    def stored(self, person_id: str, name: str | None, embedding: np.ndarray, template_size: int,
               joined: bool) -> None:
        if joined:
            self._adjust_count(1)

    def removed(self, person_id: str, left: bool) -> None:
        if left:
            self._adjust_count(-1)

    def _adjust_count(self, delta: int) -> None:
        if self._count is not None:
            self._count = (max(0, self._count[0] + delta), self._count[1])

    def nearest(self, query: np.ndarray, k: int) -> list[Candidate]:
        ef = self.ef_search or ef_search_for(self.size(), k)
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
        """Order by the half-precision distance, which the halfvec HNSW index serves; return
        the full-precision distance of the rows found."""
        vec = np.asarray(query, np.float32)
        half = cast(Person.embedding, HALFVEC(len(vec))).op("<=>", return_type=Float)(
            bindparam("qh", vec, type_=HALFVEC(len(vec))))
        exact = Person.embedding.op("<=>", return_type=Float)(bindparam("q", vec, type_=Vector(len(vec))))
        return (select(Person.person_id, Person.display_name, exact.label("d"), Person.template_size)
                .where(Person.model_version == self.model_version).order_by(half).limit(k))
