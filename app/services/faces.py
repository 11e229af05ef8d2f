"""The use cases: enroll, add and remove a person's faces, verify, identify (one face or
every face), compare, detect, and the person reads and delete.

Each takes its collaborators as arguments (the person store, the face reader that turns
bytes into an aligned face, the embedder, the threshold policy) and knows nothing of HTTP:
routes parse the request, call one use case and shape its result. Store calls block, so
they run in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from app.domain import errors
from app.core.config import default_of
from app.core.db import call
from app.storage.persons import FaceChange, FaceRecord, PersonRecord, PersonStore, version_mismatch
from app.domain.open_set import IdentifyThreshold
from app.services.threshold import ThresholdPolicy
from app.domain.verification import Candidate, best_match, cosine_distance, is_match
from app.vision.detect import DetectedFace
from app.vision.pipeline import FaceSample, PhotoFaces

FaceBox = tuple[float, float, float, float]  # x, y, w, h in the photo's pixels
# aligned face -> L2-normalised embedding
Embed = Callable[[np.ndarray], Awaitable[np.ndarray]]


class FaceReader(Protocol):
    """Bytes -> faces (decode, detect, align off the event loop, with the detection queue's
    load shedding)."""

    async def one(self, image: bytes, enroll: bool, face_box: FaceBox | None) -> FaceSample:
        """The subject's face (or the one at face_box), aligned; enroll checks its rules."""

    async def all(self, image: bytes, limit: int) -> tuple[PhotoFaces, list[np.ndarray]]:
        """Every face and the subject; the `limit` largest aligned."""

    async def detect(self, image: bytes) -> PhotoFaces:
        """Every face and the subject; nothing aligned."""


@dataclass(frozen=True)
class Enrolled:
    person: PersonRecord
    replaced: bool
    sample: FaceSample


@dataclass(frozen=True)
class FaceAdded:
    change: FaceChange  # the person after re-pooling, and the stored face
    sample: FaceSample


@dataclass(frozen=True)
class Verified:
    person: PersonRecord
    match: bool
    distance: float
    threshold: float
    sample: FaceSample


@dataclass(frozen=True)
class FaceIdentified:
    face: DetectedFace
    subject: bool
    candidates: list[Candidate]
    match: Candidate | None
    thresholds: list[float]  # per candidate: the identify threshold moved to its template's size


@dataclass(frozen=True)
class IdentifiedAll:
    faces: list[FaceIdentified]  # largest first, at most the cap
    faces_detected: int
    decision: IdentifyThreshold


@dataclass(frozen=True)
class Compared:
    match: bool
    distance: float
    threshold: float
    a: FaceSample
    b: FaceSample


@dataclass(frozen=True)
class Identified:
    candidates: list[Candidate]  # nearest first
    match: Candidate | None  # the nearest one when within the identify threshold
    decision: IdentifyThreshold  # that threshold, for the gallery's size, and where it came from
    sample: FaceSample
    thresholds: list[float]  # per candidate: decision.threshold moved to its template's size


class FaceService:
    """The model-backed use cases, over one store, face reader, embedder and threshold."""

    def __init__(self, store: PersonStore, reader: FaceReader, embed: Embed,
                 threshold: ThresholdPolicy, model_version: str,
                 all_faces_max: int = default_of("identify_all_faces_max")) -> None:
        self.store = store
        self.reader = reader
        self.embed = embed
        self.threshold = threshold
        self.model_version = model_version
        self.all_faces_max = all_faces_max

    async def enroll(self, person_id: str, display_name: str | None, image: bytes,
                     replace: bool, face_box: FaceBox | None = None) -> Enrolled:
        if not replace:  # answer 409 before spending the model on the photo
            await call(self.store.engine, self.store.ensure_absent, person_id)
        sample = await self.reader.one(image, True, face_box)
        embedding = await self.embed(sample.aligned)
        box, score = _where(sample)
        record, replaced = await call(
            self.store.engine, self.store.enroll, person_id, display_name, embedding, replace, box, score)
        return Enrolled(record, replaced, sample)

    async def add_face(self, person_id: str, image: bytes, face_box: FaceBox | None = None) -> FaceAdded:
        """One more photo of an enrolled person, under the enroll rules; the person's reference
        is re-pooled from all their faces."""
        person = await call(self.store.engine, self.store.get, person_id)  # 404 before the model runs
        if person.model_version != self.model_version:
            raise _other_version(person, self.model_version)
        sample = await self.reader.one(image, True, face_box)
        embedding = await self.embed(sample.aligned)
        box, score = _where(sample)
        change = await call(self.store.engine, self.store.add_face, person_id, embedding, box, score)
        return FaceAdded(change, sample)

    async def verify(self, person_id: str, image: bytes, face_box: FaceBox | None = None) -> Verified:
        person = await call(self.store.engine, self.store.get, person_id)
        if person.model_version != self.model_version:
            raise _other_version(person, self.model_version)
        sample = await self.reader.one(image, False, face_box)
        embedding = await self.embed(sample.aligned)
        distance = cosine_distance(person.embedding, embedding)
        threshold = self.threshold.verify_threshold(person.template_size)
        return Verified(person, is_match(distance, threshold), distance, threshold, sample)

    async def identify(self, image: bytes, top_k: int, face_box: FaceBox | None = None) -> Identified:
        sample = await self.reader.one(image, False, face_box)
        embedding = await self.embed(sample.aligned)
        candidates = await call(self.store.engine, self.store.nearest, embedding, top_k)
        decision = await call(self.store.engine, self.identify_threshold)  # may re-read the count (PostgreSQL)
        thresholds, match = self._decide(candidates, decision)
        return Identified(candidates, match, decision, sample, thresholds)

    async def identify_all(self, image: bytes, top_k: int) -> IdentifiedAll:
        """Every face of the photo (the all_faces_max largest), each searched on its own and
        decided at the gallery-size identify threshold."""
        photo, aligned = await self.reader.all(image, self.all_faces_max)
        embeddings = await asyncio.gather(*(self.embed(face) for face in aligned))
        decision = await call(self.store.engine, self.identify_threshold)

        def search() -> list[list[Candidate]]:
            return [self.store.nearest(e, top_k) for e in embeddings]

        found = await call(self.store.engine, search)
        faces = []
        for i, cands in enumerate(found):
            thresholds, match = self._decide(cands, decision)
            faces.append(FaceIdentified(photo.faces[i], i == photo.subject, cands, match, thresholds))
        return IdentifiedAll(faces, len(photo.faces), decision)

    def _decide(self, candidates: list[Candidate], decision: IdentifyThreshold
                ) -> tuple[list[float], Candidate | None]:
        """The identify threshold moved to each candidate's template size, and the match it gives."""
        thresholds = [self.threshold.for_template(decision.threshold, c.template_size) for c in candidates]
        return thresholds, best_match(candidates, thresholds)

    async def compare(self, image_a: bytes, image_b: bytes) -> Compared:
        """Two photos, the subject of each (nothing stored): the same person?"""
        a, b = await asyncio.gather(_which(self.reader.one(image_a, False, None), "image_a"),
                                    _which(self.reader.one(image_b, False, None), "image_b"))
        ea, eb = await asyncio.gather(self.embed(a.aligned), self.embed(b.aligned))
        distance = cosine_distance(ea, eb)
        threshold = self.threshold.value
        return Compared(is_match(distance, threshold), distance, threshold, a, b)

    async def detect(self, image: bytes) -> PhotoFaces:
        return await self.reader.detect(image)

    def identify_threshold(self) -> IdentifyThreshold:
        return self.threshold.for_identify(self.store.gallery_size())


async def _which(read: Awaitable[FaceSample], name: str) -> FaceSample:
    """A refusal of one of two photos says which photo it is about."""
    try:
        return await read
    except errors.DomainError as exc:
        if exc.code in ("overloaded", "not_ready"):
            raise
        exc.detail = f"{name}: {exc.detail}"
        exc.args = (exc.detail,)
        exc.extra = {**exc.extra, "image": name}
        raise


# --- person records: no model needed, so these work while the model warms up -----------------

async def list_persons(store: PersonStore, offset: int, limit: int) -> tuple[list[PersonRecord], int]:
    return await call(store.engine, store.list, offset, limit)


async def get_person(store: PersonStore, person_id: str) -> PersonRecord:
    return await call(store.engine, store.get, person_id)


async def get_person_with_faces(store: PersonStore, person_id: str) -> tuple[PersonRecord, list[FaceRecord]]:
    return await call(store.engine, store.get_with_faces, person_id)


async def remove_face(store: PersonStore, person_id: str, face_id: int) -> FaceChange:
    """Remove one face and re-pool the reference; needs no model (the faces keep embeddings)."""
    return await call(store.engine, store.remove_face, person_id, face_id)


async def delete_person(store: PersonStore, person_id: str) -> None:
    await call(store.engine, store.delete, person_id)


def _where(sample: FaceSample) -> tuple[list[float], float]:
    """Where the face was and how sure the detector was: kept with the face's embedding."""
    return [round(float(v), 1) for v in sample.face.box], round(float(sample.face.score), 4)


def _other_version(person: PersonRecord, running: str) -> errors.ModelVersionMismatch:
    return version_mismatch(person.person_id, person.model_version, running)
