"""1:1 verify, 1:N identify (one face or every face), compare two photos, detect faces."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.api import examples
from app.domain import errors
from app.api.deps import ClientDep, FacesDep, image_request_body, read_image_request
from app.api.routes.persons import face_box, face_info
from app.api.schemas import (
    CandidatePublic, CompareJson, CompareResponse, DetectedFacePublic, DetectJson,
    DetectResponse, FaceIdentity, IdentifyAllResponse, IdentifyJson, IdentifyResponse, VerifyJson,
    VerifyResponse,
)
from app.services.faces import FaceIdentified
from app.domain.verification import Candidate, similarity
from app.vision.pipeline import face_summary

router = APIRouter(tags=["verification"])


@router.post(
    "/verify", response_model=VerifyResponse, responses=examples.VERIFY,
    summary="Is this photo the enrolled person? (1:1)",
    description="Uses the face of the person the photo is of (large, central, whole, clearly "
                "detected), or the one at `face_box`. `match` is `distance <= threshold`; the "
                "threshold and model version used are in every response.",
    openapi_extra=image_request_body(VerifyJson),
)
async def verify(request: Request, _: ClientDep, faces: FacesDep) -> VerifyResponse:
    req = await read_image_request(request, VerifyJson)
    v = await faces.verify(req.fields.person_id, req.image, face_box(req.fields))
    return VerifyResponse(
        person_id=v.person.person_id, match=v.match, distance=round(v.distance, 6),
        similarity=round(similarity(v.distance), 6), threshold=v.threshold,
        model_version=faces.model_version, face=face_info(v.sample, req.fields.return_aligned),
        template_size=v.person.template_size)


@router.post(
    "/identify", response_model=IdentifyResponse | IdentifyAllResponse, responses=examples.IDENTIFY,
    summary="Who is this? (1:N)",
    description="Nearest enrolled persons (enrolled with the running model version). `match` is "
                "the nearest one when within the identify threshold, else null. That threshold is "
                "set for the gallery's size: a share FACEAPI_IDENTIFY_FPIR of photos of people who "
                "are not enrolled is named someone; it is never looser than /verify's threshold. "
                "The face used is the person the photo is of, or the one at `face_box`. With "
                "`all_faces=true` every face is identified (the FACEAPI_IDENTIFY_ALL_FACES_MAX "
                "largest), each at the same threshold: the answer lists `faces` instead of one "
                "`match`.",
    openapi_extra=image_request_body(IdentifyJson),
)
async def identify(request: Request, _: ClientDep, faces: FacesDep) -> IdentifyResponse | IdentifyAllResponse:
    req = await read_image_request(request, IdentifyJson)
    fields: IdentifyJson = req.fields
    if fields.all_faces:
        if fields.face_box is not None:
            raise errors.InvalidRequest("all_faces=true identifies every face: leave face_box out")
        found = await faces.identify_all(req.image, fields.top_k)
        d = found.decision
        return IdentifyAllResponse(
            faces=[_face_identity(f) for f in found.faces],
            faces_detected=found.faces_detected, max_faces=faces.all_faces_max,
            threshold=d.threshold, gallery_size=d.gallery_size, target_fpir=d.target_fpir,
            verify_threshold=d.verify_threshold, threshold_source=d.source,
            model_version=faces.model_version)
    found = await faces.identify(req.image, fields.top_k, face_box(fields))
    d = found.decision
    match, candidates = _ranked(found.candidates, found.thresholds, found.match)
    return IdentifyResponse(
        match=match, candidates=candidates,
        threshold=d.threshold, gallery_size=d.gallery_size, target_fpir=d.target_fpir,
        verify_threshold=d.verify_threshold, threshold_source=d.source,
        model_version=faces.model_version, face=face_info(found.sample, fields.return_aligned))


@router.post(
    "/compare", response_model=CompareResponse, responses=examples.COMPARE,
    summary="Are two photos the same person? (nothing stored)",
    description="The face of the person each photo is of, compared at /verify's threshold. "
                "Nothing is enrolled or kept. Both photos travel in one request: together they "
                "must fit the request body limit. A face refusal names the photo it is about "
                "(`image`).",
    openapi_extra=image_request_body(CompareJson, ("image_a", "image_b")),
)
async def compare(request: Request, _: ClientDep, faces: FacesDep) -> CompareResponse:
    req = await read_image_request(request, CompareJson, ("image_a", "image_b"))
    c = await faces.compare(req.images["image_a"], req.images["image_b"])
    aligned = req.fields.return_aligned
    return CompareResponse(match=c.match, distance=round(c.distance, 6),
                           similarity=round(similarity(c.distance), 6), threshold=c.threshold,
                           model_version=faces.model_version, face_a=face_info(c.a, aligned),
                           face_b=face_info(c.b, aligned))


@router.post(
    "/detect", response_model=DetectResponse, responses=examples.DETECT,
    summary="Every face in a photo, and which one it is of",
    description="Boxes, five landmarks and detector scores of every face, largest first; "
                "`subject` is the face enroll, verify and identify would use, `ambiguous` says "
                "enroll would refuse the photo (send that face's box as `face_box`). No "
                "embedding is computed and nothing is stored.",
    openapi_extra=image_request_body(DetectJson),
)
async def detect(request: Request, _: ClientDep, faces: FacesDep) -> DetectResponse:
    req = await read_image_request(request, DetectJson)
    photo = await faces.detect(req.image)
    return DetectResponse(
        faces=[DetectedFacePublic(**face_summary(f), subject=i == photo.subject)
               for i, f in enumerate(photo.faces)],
        subject=photo.subject, ambiguous=photo.choice.ambiguous, faces_detected=len(photo.faces),
        image_size=list(photo.image_size))


def candidate(c: Candidate, threshold: float) -> CandidatePublic:
    return CandidatePublic(person_id=c.person_id, display_name=c.display_name,
                           distance=round(c.distance, 6), similarity=round(c.similarity, 6),
                           template_size=c.template_size, threshold=threshold)


def _ranked(candidates: list[Candidate], thresholds: list[float], match: Candidate | None
            ) -> tuple[CandidatePublic | None, list[CandidatePublic]]:
    """The candidates as answered, each with its own threshold, and the match among them."""
    public = [candidate(c, t) for c, t in zip(candidates, thresholds)]
    return next((p for c, p in zip(candidates, public) if c is match), None), public


def _face_identity(f: FaceIdentified) -> FaceIdentity:
    match, candidates = _ranked(f.candidates, f.thresholds, f.match)
    return FaceIdentity(box=[round(v, 1) for v in f.face.box], score=round(f.face.score, 4), subject=f.subject,
                        match=match, candidates=candidates)
