"""The use cases: enroll, verify, identify, and the person reads and delete.

Each takes its collaborators as arguments (the person store, the face reader that turns
bytes into an aligned face, the embedder, the threshold policy) and knows nothing of HTTP:
routes parse the request, call one use case and shape its result. Store calls block, so
they run in a worker thread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from app.core import errors
from app.core.db import call
from app.repositories import PersonRecord, PersonStore
from app.services.open_set import IdentifyThreshold
from app.services.threshold import ThresholdPolicy
from app.services.verification import Candidate, best_match, cosine_distance, is_match
from app.vision.pipeline import FaceSample

# bytes, enroll rules? -> one aligned face (decode, detect, align off the event loop)
ReadFace = Callable[[bytes, bool], Awaitable[FaceSample]]
# aligned face -> L2-normalised embedding
Embed = Callable[[np.ndarray], Awaitable[np.ndarray]]


@dataclass(frozen=True)
class Enrolled:
    person: PersonRecord
    replaced: bool
    sample: FaceSample


@dataclass(frozen=True)
class Verified:
    person: PersonRecord
    match: bool
    distance: float
    threshold: float
    sample: FaceSample


@dataclass(frozen=True)
class Identified:
    candidates: list[Candidate]  # nearest first
    match: Candidate | None  # the nearest one when within the identify threshold
    decision: IdentifyThreshold  # that threshold, for the gallery's size, and where it came from
    sample: FaceSample


class FaceService:
    """The model-backed use cases, over one store, face reader, embedder and threshold."""

    def __init__(self, store: PersonStore, read_face: ReadFace, embed: Embed,
                 threshold: ThresholdPolicy, model_version: str) -> None:
        self.store = store
        self.read_face = read_face
        self.embed = embed
        self.threshold = threshold
        self.model_version = model_version

    async def enroll(self, person_id: str, display_name: str | None, image: bytes,
                     replace: bool) -> Enrolled:
        if not replace:  # answer 409 before spending the model on the photo
            await call(self.store.engine, self.store.ensure_absent, person_id)
        sample = await self.read_face(image, True)
        embedding = await self.embed(sample.aligned)
        record, replaced = await call(
            self.store.engine, self.store.enroll, person_id, display_name, embedding, replace)
        return Enrolled(record, replaced, sample)

    async def verify(self, person_id: str, image: bytes) -> Verified:
        person = await call(self.store.engine, self.store.get, person_id)
        if person.model_version != self.model_version:
            raise errors.ModelVersionMismatch(
                f"{person.person_id!r} was enrolled with model {person.model_version!r}, the service "
                f"runs {self.model_version!r}; re-enroll the person (POST /enroll with replace=true)")
        sample = await self.read_face(image, False)
        embedding = await self.embed(sample.aligned)
        distance = cosine_distance(person.embedding, embedding)
        threshold = self.threshold.value
        return Verified(person, is_match(distance, threshold), distance, threshold, sample)

    async def identify(self, image: bytes, top_k: int) -> Identified:
        sample = await self.read_face(image, False)
        embedding = await self.embed(sample.aligned)
        candidates = await call(self.store.engine, self.store.nearest, embedding, top_k)
        decision = await call(self.store.engine, self.identify_threshold)  # may re-read the count (PostgreSQL)
        return Identified(candidates, best_match(candidates, decision.threshold), decision, sample)

    def identify_threshold(self) -> IdentifyThreshold:
        return self.threshold.for_identify(self.store.gallery_size())


# --- person records: no model needed, so these work while the model warms up -----------------

async def list_persons(store: PersonStore, offset: int, limit: int) -> tuple[list[PersonRecord], int]:
    return await call(store.engine, store.list, offset, limit)


async def get_person(store: PersonStore, person_id: str) -> PersonRecord:
    return await call(store.engine, store.get, person_id)


async def delete_person(store: PersonStore, person_id: str) -> None:
    await call(store.engine, store.delete, person_id)
