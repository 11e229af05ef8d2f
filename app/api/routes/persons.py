"""Enroll, list, read and delete persons; add and remove a person's faces."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from app.api import examples
from app.api.deps import AdminDep, ClientDep, FacesDep, RuntimeDep, image_request_body, read_image_request
from app.storage.persons import FaceRecord, PersonRecord
from app.services import faces as use_cases
from app.vision.encode import png_base64
from app.api.schemas import (
    PERSON_ID_PATTERN, EnrollJson, EnrollResponse, FaceInfo, PersonList, PersonPublic,
)
from app.api.schemas import AddedFace, AddFaceJson, AddFaceResponse, FacePublic, PersonDetail

router = APIRouter(tags=["persons"])
PersonIdPath = Annotated[str, Path(pattern=PERSON_ID_PATTERN, max_length=128)]
FaceIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="a face's id, as GET /persons/{person_id} lists")]

def face_box(fields) -> tuple[float, float, float, float] | None:
    return tuple(fields.face_box) if fields.face_box is not None else None


def public(p: PersonRecord) -> PersonPublic:
    return PersonPublic(person_id=p.person_id, display_name=p.display_name,
                        model_version=p.model_version, created_at=p.created_at, updated_at=p.updated_at,
                        template_size=p.template_size)


def face_public(f: FaceRecord) -> FacePublic:
    return FacePublic(id=f.id, added_at=f.added_at, box=f.box, score=f.score)


def face_info(sample, with_aligned: bool = False) -> FaceInfo:
    return FaceInfo(box=[round(v, 1) for v in sample.face.box], score=round(sample.face.score, 4),
                    faces_detected=sample.faces_detected,
                    aligned_png_base64=png_base64(sample.aligned) if with_aligned else None)


@router.post(
    "/enroll", response_model=EnrollResponse, status_code=201, responses=examples.ENROLL,
    summary="Enroll a person from one photo",
    description="Creates the person with this photo as their first face: stores its embedding "
                "(never the photo), which is their reference until more photos are added "
                "(POST /persons/{person_id}/faces). The face used is the person the photo is of "
                "(large, central, whole, clearly detected); with several faces that cannot be told "
                "apart the answer is 422 `multiple_faces`, listing every face in `candidates`: send "
                "one's box as `face_box` to choose it. 409 if the person exists, unless "
                "`replace=true` (their faces are all replaced by this one).",
    openapi_extra=image_request_body(EnrollJson),
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


@router.get("/persons/{person_id}", response_model=PersonDetail, responses=examples.GET_PERSON,
            summary="Read one person, with their faces",
            description="The person and their faces (id, when added, box, detector score): never "
                        "the photos, which are not kept, nor embeddings.")
async def get_person(person_id: PersonIdPath, runtime: RuntimeDep, _: ClientDep) -> PersonDetail:
    person, stored = await use_cases.get_person_with_faces(runtime.store, person_id)
    return PersonDetail(**public(person).model_dump(), faces=[face_public(f) for f in stored])


@router.post(
    "/persons/{person_id}/faces", response_model=AddFaceResponse, status_code=201,
    responses=examples.ADD_FACE, summary="Add a photo to an enrolled person",
    description="The same rules and refusals as /enroll (exactly one clear face). Stores the "
                "photo's embedding (never the photo) and re-pools the person's reference embedding "
                "from all their faces, in one transaction; `template_size` is the new number of faces.",
    openapi_extra=image_request_body(AddFaceJson),
)
async def add_face(person_id: PersonIdPath, request: Request, _: AdminDep, faces: FacesDep) -> AddFaceResponse:
    req = await read_image_request(request, AddFaceJson)
    done = await faces.add_face(person_id, req.image, face_box(req.fields))
    stored, person = done.change.face, done.change.person
    info = face_info(done.sample, req.fields.return_aligned)
    return AddFaceResponse(person_id=person.person_id, template_size=person.template_size,
                           face=AddedFace(**info.model_dump(), id=stored.id, added_at=stored.added_at))


@router.delete("/persons/{person_id}/faces/{face_id}", status_code=204, responses=examples.DELETE_FACE,
               summary="Remove one photo of a person",
               description="Re-pools the person's reference from the faces left. A person's only "
                           "face cannot be removed (409 last_face): delete the person instead.")
async def delete_face(person_id: PersonIdPath, face_id: FaceIdPath, runtime: RuntimeDep,
                      _: AdminDep) -> Response:
    await use_cases.remove_face(runtime.store, person_id, face_id)
    return Response(status_code=204)


@router.delete("/persons/{person_id}", status_code=204, responses=examples.DELETE_PERSON,
               summary="Delete a person and their embedding")
async def delete_person(person_id: PersonIdPath, runtime: RuntimeDep, _: AdminDep) -> Response:
    await use_cases.delete_person(runtime.store, person_id)
    return Response(status_code=204)
