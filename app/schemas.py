"""Request and response models. Requests (…Json) and public views (…Public) are separate:
nothing internal (embeddings, row ids, key hashes) has a field in a response model."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_serializer

PERSON_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
PersonId = Annotated[
    str,
    Field(pattern=PERSON_ID_PATTERN, min_length=1, max_length=128,
          description="Your identifier for the person: letters, digits and . _ : @ -, up to 128",
          examples=["emp-00042"]),
]
# no control characters (C0, DEL, C1): PostgreSQL cannot store a NUL in text, and a name with
# escapes or line breaks would reach logs and pages as such
DISPLAY_NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
DisplayName = Annotated[str | None, Field(default=None, max_length=256, pattern=DISPLAY_NAME_PATTERN,
                                          description="Any text up to 256 characters, no control characters",
                                          examples=["Ada Lovelace"])]
# a whole, valid example (a 32x32 grey PNG: it decodes, and /verify answers 422 no_face); a
# truncated one ("/9j/4AAQ...") was invalid base64, so sending the documented example got 400
EXAMPLE_IMAGE_BASE64 = ("iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAAAAABWESUoAAAAGElEQVR42mNsYMAPmBhGFYwqGFUwQhUA"
                        "AJe+AMD8WknZAAAAAElFTkSuQmCC")
ImageBase64 = Annotated[
    str, Field(min_length=1, description="The photo (JPEG, PNG, WebP, BMP, GIF), base64-encoded; "
                           "a data: URL prefix and line breaks are allowed (the example is a "
                           "32x32 grey PNG, with no face)",
               examples=[EXAMPLE_IMAGE_BASE64])
]


ReturnAligned = Annotated[bool, Field(
    default=False, description="Add the aligned face the model saw to `face` (PNG, base64)")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrollJson(_Strict):
    person_id: PersonId
    image_base64: ImageBase64
    display_name: DisplayName = None
    replace: bool = Field(default=False, description="Re-enroll an existing person with this photo")
    return_aligned: ReturnAligned = False


class VerifyJson(_Strict):
    person_id: PersonId
    image_base64: ImageBase64
    return_aligned: ReturnAligned = False


class IdentifyJson(_Strict):
    image_base64: ImageBase64
    top_k: Annotated[int, Field(ge=1, le=100)] = 5
    return_aligned: ReturnAligned = False


class FaceInfo(BaseModel):
    box: list[float] = Field(description="x, y, width, height in the photo's pixels")
    score: float = Field(description="detector confidence")
    faces_detected: int
    aligned_png_base64: str | None = Field(
        default=None, description="only with return_aligned=true: the aligned face the embedder "
                                  "saw, a PNG, base64-encoded")

    @model_serializer(mode="wrap")
    def _omit_unrequested_crop(self, handler):
        # the key is absent unless asked for, so ordinary responses keep their shape
        data = handler(self)
        if data.get("aligned_png_base64") is None:
            data.pop("aligned_png_base64", None)
        return data


def _as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive UTC timestamps; RFC 3339 (OpenAPI date-time) needs an offset."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


Timestamp = Annotated[dt.datetime | None, AfterValidator(_as_utc)]


class PersonPublic(BaseModel):
    person_id: str
    display_name: str | None
    model_version: str
    created_at: Timestamp
    updated_at: Timestamp


class EnrollResponse(BaseModel):
    person: PersonPublic
    replaced: bool
    face: FaceInfo


class VerifyResponse(BaseModel):
    person_id: str
    match: bool
    distance: float = Field(description="cosine distance, 0 (same) .. 2; match when <= threshold")
    similarity: float = Field(description="cosine similarity, 1 - distance")
    threshold: float
    model_version: str
    face: FaceInfo


class CandidatePublic(BaseModel):
    person_id: str
    display_name: str | None
    distance: float
    similarity: float


class IdentifyResponse(BaseModel):
    match: CandidatePublic | None = Field(description="the nearest person within the threshold, else null")
    candidates: list[CandidatePublic] = Field(description="nearest enrolled persons, nearest first")
    threshold: float = Field(description="the identify threshold `match` used: the distance at which "
                             "a share target_fpir of strangers would be named someone in a gallery of "
                             "gallery_size people, capped at verify_threshold")
    gallery_size: int = Field(description="persons enrolled with the running model (searched)")
    target_fpir: float | None = Field(description="FACEAPI_IDENTIFY_FPIR; null when the artefact has "
                                      "no impostor tail and the 1:1 threshold is used")
    verify_threshold: float = Field(description="the 1:1 threshold of POST /verify, for comparison")
    threshold_source: str = Field(description="`fpir` (computed for target_fpir and gallery_size) "
                                  "or `verify` (the 1:1 threshold was stricter, or no tail)")
    model_version: str
    face: FaceInfo


class PersonList(BaseModel):
    items: list[PersonPublic]
    total: int
    offset: int
    limit: int


class ValidationIssue(BaseModel):
    loc: list[str] = Field(description="where: the field name (JSON) or form field")
    msg: str
    type: str = Field(description="pydantic's error type, e.g. missing, string_pattern_mismatch")


class Problem(BaseModel):
    """RFC 9457 problem details; `code` is stable and machine-readable."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[ValidationIssue] | None = Field(
        default=None, description="422 invalid_request only: one entry per invalid field")
    faces_detected: int | None = Field(default=None, description="422 multiple_faces only")
    # the measured values behind a face refusal (422 no_face, multiple_faces, face_too_small,
    # low_quality), next to the threshold each was compared with
    image_size: list[int] | None = Field(default=None, description="no_face: width, height")
    comparable_faces: int | None = Field(
        default=None, description="multiple_faces: faces within required_ratio of the largest")
    face_sizes: list[float] | None = Field(
        default=None, description="multiple_faces: px, largest first (at most 10)")
    size_ratio: float | None = Field(
        default=None, description="multiple_faces: largest face size / next comparable face size")
    required_ratio: float | None = Field(
        default=None, description="multiple_faces: FACEAPI_ENROLL_DOMINANCE_RATIO")
    face_size: float | None = Field(default=None, description="face_too_small: px")
    min_face_size: int | None = Field(default=None, description="face_too_small: FACEAPI_MIN_FACE_SIZE")
    score: float | None = Field(default=None, description="low_quality: detector confidence")
    min_score: float | None = Field(default=None, description="low_quality: FACEAPI_ENROLL_MIN_SCORE")
    box: list[float] | None = Field(
        default=None, description="face_too_small, low_quality: x, y, width, height of the face")
    retry_after: int | None = Field(default=None, description="429 and 503 only: seconds, as in "
                                    "the Retry-After header")


class Health(BaseModel):
    status: str
    checks: dict[str, bool | str | int | float | None] = Field(default_factory=dict)
