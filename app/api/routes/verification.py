"""1:1 verify and 1:N identify."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.api.deps import ClientDep, RuntimeDep, image_request_body, read_image_request
from app.api import examples
from app.api.routes.persons import face_info
from app.core import errors
from app.schemas import (
    PERSON_ID_PATTERN, CandidatePublic, IdentifyJson, IdentifyResponse, VerifyJson, VerifyResponse,
)
from app.services.verification import best_match, cosine_distance, is_match, similarity

router = APIRouter(tags=["verification"])


@router.post(
    "/verify", response_model=VerifyResponse, responses=examples.VERIFY,
    summary="Is this photo the enrolled person? (1:1)",
    description="Uses the largest face in the photo. `match` is `distance <= threshold`; the "
                "threshold and model version used are in every response.",
    openapi_extra=image_request_body(
        VerifyJson, {"person_id": {"type": "string", "pattern": PERSON_ID_PATTERN, "maxLength": 128}},
        ["person_id"]),
)
async def verify(request: Request, runtime: RuntimeDep, _: ClientDep) -> VerifyResponse:
    runtime.require_ready()
    req = await read_image_request(request, VerifyJson)
    person = await runtime.db(runtime.store.get, req.fields.person_id)
    if person.model_version != runtime.model_version:
        raise errors.ModelVersionMismatch(
            f"{person.person_id!r} was enrolled with model {person.model_version!r}, the service runs "
            f"{runtime.model_version!r}; re-enroll the person (POST /enroll with replace=true)")
    sample = await runtime.extract(req.image, enroll=False)
    embedding = await runtime.embed(sample)
    distance = cosine_distance(person.embedding, embedding)
    threshold = runtime.threshold
    return VerifyResponse(
        person_id=person.person_id, match=is_match(distance, threshold), distance=round(distance, 6),
        similarity=round(similarity(distance), 6), threshold=threshold,
        model_version=runtime.model_version, face=face_info(sample, req.fields.return_aligned))


@router.post(
    "/identify", response_model=IdentifyResponse, responses=examples.IDENTIFY,
    summary="Who is this? (1:N)",
    description="Nearest enrolled persons (enrolled with the running model version). `match` is "
                "the nearest one when within the identify threshold, else null. That threshold is "
                "set for the gallery's size: a share FACEAPI_IDENTIFY_FPIR of photos of people who "
                "are not enrolled is named someone; it is never looser than /verify's threshold.",
    openapi_extra=image_request_body(
        IdentifyJson, {"top_k": {"type": "integer", "minimum": 1, "maximum": 100, "default": 5}}, []),
)
async def identify(request: Request, runtime: RuntimeDep, _: ClientDep) -> IdentifyResponse:
    runtime.require_ready()
    req = await read_image_request(request, IdentifyJson)
    sample = await runtime.extract(req.image, enroll=False)
    embedding = await runtime.embed(sample)
    candidates = await runtime.db(runtime.store.nearest, embedding, req.fields.top_k)
    decision = await runtime.db(runtime.identify_threshold)  # may re-read the count (PostgreSQL)
    best = best_match(candidates, decision.threshold)
    as_public = lambda c: CandidatePublic(  # noqa: E731
        person_id=c.person_id, display_name=c.display_name,
        distance=round(c.distance, 6), similarity=round(c.similarity, 6))
    return IdentifyResponse(
        match=as_public(best) if best else None, candidates=[as_public(c) for c in candidates],
        threshold=decision.threshold, gallery_size=decision.gallery_size,
        target_fpir=decision.target_fpir, verify_threshold=decision.verify_threshold,
        threshold_source=decision.source, model_version=runtime.model_version,
        face=face_info(sample, req.fields.return_aligned))
