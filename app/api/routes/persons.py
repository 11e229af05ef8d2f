"""Enroll, list, read and delete persons."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from app.api import examples
from app.api.deps import AdminDep, ClientDep, FacesDep, RuntimeDep, image_request_body, read_image_request
from app.repositories import PersonRecord
from app.services import faces as use_cases
from app.vision.encode import png_base64
from app.schemas import (
    DISPLAY_NAME_PATTERN, PERSON_ID_PATTERN, EnrollJson, EnrollResponse, FaceInfo, PersonList, PersonPublic,
)

router = APIRouter(tags=["persons"])
PersonIdPath = Annotated[str, Path(pattern=PERSON_ID_PATTERN, max_length=128)]

# a multipart face_box: "[x, y, w, h]" or "x,y,w,h" (app/schemas.py parses both)
FACE_BOX_FORM = {"face_box": {"type": "string", "example": "[120, 64, 88, 112]",
                              "description": "[x, y, width, height] of the face to use, in the "
                                             "photo's pixels, when the photo has several"}}
ENROLL_FORM = {
    "person_id": {"type": "string", "pattern": PERSON_ID_PATTERN, "maxLength": 128},
    "display_name": {"type": "string", "maxLength": 256, "pattern": DISPLAY_NAME_PATTERN},
    "replace": {"type": "boolean", "default": False},
    **FACE_BOX_FORM,
}


def face_box(fields) -> tuple[float, float, float, float] | None:
    return tuple(fields.face_box) if fields.face_box is not None else None


def public(p: PersonRecord) -> PersonPublic:
    return PersonPublic(person_id=p.person_id, display_name=p.display_name,
                        model_version=p.model_version, created_at=p.created_at, updated_at=p.updated_at)


def face_info(sample, with_aligned: bool = False) -> FaceInfo:
    return FaceInfo(box=[round(v, 1) for v in sample.face.box], score=round(sample.face.score, 4),
                    faces_detected=sample.faces_detected,
                    aligned_png_base64=png_base64(sample.aligned) if with_aligned else None)


@router.post(
    "/enroll", response_model=EnrollResponse, status_code=201, responses=examples.ENROLL,
    summary="Enroll a person from one photo",
    description="Stores one reference embedding (never the photo). The face used is the person "
                "the photo is of (large, central, whole, clearly detected); with several faces "
                "that cannot be told apart the answer is 422 `multiple_faces`, listing every face "
                "in `candidates`: send one's box as `face_box` to choose it. 409 if the person "
                "exists, unless `replace=true`.",
    openapi_extra=image_request_body(EnrollJson, ENROLL_FORM, ["person_id"]),
)
async def enroll(request: Request, _: AdminDep, faces: FacesDep) -> EnrollResponse:
    req = await read_image_request(request, EnrollJson)
    fields: EnrollJson = req.fields
    done = await faces.enroll(fields.person_id, fields.display_name, req.image, fields.replace,
                              face_box(fields))
    return EnrollResponse(person=public(done.person), replaced=done.replaced,
                          face=face_info(done.sample, fields.return_aligned))


@router.get("/persons", response_model=PersonList, responses=examples.LIST_PERSONS,
            summary="List enrolled persons", description="Paged: `offset` (from 0) and `limit` (1..500, default 50); `total` counts everyone.")
async def list_persons(
    runtime: RuntimeDep, _: ClientDep,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PersonList:
    people, total = await use_cases.list_persons(runtime.store, offset, limit)
    return PersonList(items=[public(p) for p in people], total=total, offset=offset, limit=limit)


@router.get("/persons/{person_id}", response_model=PersonPublic, responses=examples.GET_PERSON,
            summary="Read one person")
async def get_person(person_id: PersonIdPath, runtime: RuntimeDep, _: ClientDep) -> PersonPublic:
    return public(await use_cases.get_person(runtime.store, person_id))


@router.delete("/persons/{person_id}", status_code=204, responses=examples.DELETE_PERSON,
               summary="Delete a person and their embedding")
async def delete_person(person_id: PersonIdPath, runtime: RuntimeDep, _: AdminDep) -> Response:
    await use_cases.delete_person(runtime.store, person_id)
    return Response(status_code=204)
