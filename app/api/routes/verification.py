"""1:1 verify and 1:N identify."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.api import examples
from app.api.deps import ClientDep, FacesDep, image_request_body, read_image_request
from app.api.routes.persons import face_info
from app.schemas import (
    PERSON_ID_PATTERN, CandidatePublic, IdentifyJson, IdentifyResponse, VerifyJson, VerifyResponse,
)
from app.services.verification import Candidate, similarity

router = APIRouter(tags=["verification"])


@router.post(
    "/verify", response_model=VerifyResponse, responses=examples.VERIFY,
    summary="Is this photo the enrolled person? (1:1)",
    description="Uses the largest face in the photo (of faces of comparable size, the clearest "
                "detection). `match` is `distance <= threshold`; the "
                "threshold and model version used are in every response.",
    openapi_extra=image_request_body(
        VerifyJson, {"person_id": {"type": "string", "pattern": PERSON_ID_PATTERN, "maxLength": 128}},
        ["person_id"]),
)
async def verify(request: Request, _: ClientDep, faces: FacesDep) -> VerifyResponse:
    req = await read_image_request(request, VerifyJson)
    v = await faces.verify(req.fields.person_id, req.image)
    return VerifyResponse(
        person_id=v.person.person_id, match=v.match, distance=round(v.distance, 6),
        similarity=round(similarity(v.distance), 6), threshold=v.threshold,
        model_version=faces.model_version, face=face_info(v.sample, req.fields.return_aligned),
        template_size=v.person.template_size)


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
async def identify(request: Request, _: ClientDep, faces: FacesDep) -> IdentifyResponse:
    req = await read_image_request(request, IdentifyJson)
    found = await faces.identify(req.image, req.fields.top_k)
    d = found.decision
    limits = {c.person_id: t for c, t in zip(found.candidates, found.thresholds)}
    return IdentifyResponse(
        match=candidate(found.match, limits[found.match.person_id]) if found.match else None,
        candidates=[candidate(c, t) for c, t in zip(found.candidates, found.thresholds)],
        threshold=d.threshold, gallery_size=d.gallery_size, target_fpir=d.target_fpir,
        verify_threshold=d.verify_threshold, threshold_source=d.source,
        model_version=faces.model_version, face=face_info(found.sample, req.fields.return_aligned))


def candidate(c: Candidate, threshold: float) -> CandidatePublic:
    return CandidatePublic(person_id=c.person_id, display_name=c.display_name,
                           distance=round(c.distance, 6), similarity=round(c.similarity, 6),
                           template_size=c.template_size, threshold=threshold)
