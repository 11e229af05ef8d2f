"""Request and response models. Requests (…Json) and public views (…Public) are separate:
nothing internal (embeddings, row ids, key hashes) has a field in a response model."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import json
import math

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_serializer

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


def _face_box_in(value):
    """A form field sends text: `[x, y, w, h]` (JSON) or `x,y,w,h`."""
    if isinstance(value, str):
        text = value.strip()
        if not text:  # an empty form field: no box
            return None
        try:
            return json.loads(text) if text.startswith("[") else [float(v) for v in text.split(",")]
        except ValueError:
            raise ValueError("face_box must be four numbers: [x, y, width, height]") from None
    return value


def _face_box_valid(box: list[float] | None) -> list[float] | None:
    if box is None:
        return box
    if len(box) != 4:
        raise ValueError("face_box must be four numbers: [x, y, width, height]")
    if not all(math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0:
        raise ValueError("face_box must be finite, with a positive width and height")
    return box


FaceBox = Annotated[
    Annotated[list[float], Field(min_length=4, max_length=4)] | None,
    BeforeValidator(_face_box_in), AfterValidator(_face_box_valid),
    Field(default=None,
          description="Which face to use when the photo has several: [x, y, width, height] in the "
                      "photo's pixels (e.g. a box from a multiple_faces refusal's `candidates` or "
                      "from POST /detect); the detected face overlapping it most is taken. In a "
                      "multipart form: `[x, y, w, h]` or `x,y,w,h`",
          examples=[[120.0, 64.0, 88.0, 112.0]]),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrollJson(_Strict):
    person_id: PersonId
    image_base64: ImageBase64
    display_name: DisplayName = None
    replace: bool = Field(default=False, description="Re-enroll an existing person with this photo")
    face_box: FaceBox = None
    return_aligned: ReturnAligned = False


class AddFaceJson(_Strict):
    image_base64: ImageBase64
    face_box: FaceBox = None
    return_aligned: ReturnAligned = False


class VerifyJson(_Strict):
    person_id: PersonId
    image_base64: ImageBase64
    face_box: FaceBox = None
    return_aligned: ReturnAligned = False


class IdentifyJson(_Strict):
    image_base64: ImageBase64
    top_k: Annotated[int, Field(ge=1, le=100)] = 5
    face_box: FaceBox = None
    all_faces: bool = Field(default=False, description="Identify every face of the photo (the "
                            "FACEAPI_IDENTIFY_ALL_FACES_MAX largest): the answer lists `faces`")
    return_aligned: ReturnAligned = False


class CompareJson(_Strict):
    image_a_base64: ImageBase64
    image_b_base64: ImageBase64
    return_aligned: ReturnAligned = False


class DetectJson(_Strict):
    image_base64: ImageBase64


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


class FaceCandidate(BaseModel):
    box: list[float] = Field(description="x, y, width, height in the photo's pixels")
    size: float = Field(description="px, the box's shorter side")
    score: float = Field(description="detector confidence")
    landmarks: list[list[float]] = Field(
        description="x, y of the left eye, right eye, nose, left and right mouth corners "
                    "(left and right as seen in the photo)")
    subject_score: float | None = Field(
        default=None, description="the subject rule's score (higher: likelier the person the "
                                  "photo is of); multiple_faces only")

    @model_serializer(mode="wrap")
    def _omit_unset_score(self, handler):
        data = handler(self)
        if data.get("subject_score") is None:
            data.pop("subject_score", None)
        return data


def _as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive UTC timestamps; RFC 3339 (OpenAPI date-time) needs an offset."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


Timestamp = Annotated[dt.datetime | None, AfterValidator(_as_utc)]


TemplateSize = Annotated[int, Field(description="photos (faces) pooled into the person's reference "
                                                "embedding, which verify and identify compare with")]


class PersonPublic(BaseModel):
    person_id: str
    display_name: str | None
    model_version: str
    created_at: Timestamp
    updated_at: Timestamp
    template_size: TemplateSize


class FacePublic(BaseModel):
    """One stored photo of a person: where the face was, never the image or its embedding."""

    id: int = Field(description="the face's id, for DELETE /persons/{person_id}/faces/{face_id}")
    added_at: Timestamp
    box: list[float] | None = Field(description="x, y, width, height in that photo's pixels; null for "
                                    "a face stored before photos were kept per face")
    score: float | None = Field(description="detector confidence; null as for box")


class PersonDetail(PersonPublic):
    faces: list[FacePublic] = Field(description="the person's faces, oldest first")


class AddedFace(FaceInfo):
    id: int = Field(description="the new face's id")
    added_at: Timestamp


class AddFaceResponse(BaseModel):
    person_id: str
    template_size: TemplateSize
    face: AddedFace


class EnrollResponse(BaseModel):
    person: PersonPublic
    replaced: bool
    face: FaceInfo


class VerifyResponse(BaseModel):
    person_id: str
    match: bool
    distance: float = Field(description="cosine distance, 0 (same) .. 2; match when <= threshold")
    similarity: float = Field(description="cosine similarity, 1 - distance")
    threshold: float = Field(description="for this person's template_size: the one-photo threshold "
                             "moved so that it accepts the same share of impostors")
    model_version: str
    face: FaceInfo
    template_size: TemplateSize


class CandidatePublic(BaseModel):
    person_id: str
    display_name: str | None
    distance: float
    similarity: float
    template_size: TemplateSize
    threshold: float = Field(description="this person's identify threshold: `threshold` moved to "
                             "their template's size (same share of strangers accepted); the match "
                             "is within it")


class IdentifyResponse(BaseModel):
    match: CandidatePublic | None = Field(description="the nearest person within the threshold, else null")
    candidates: list[CandidatePublic] = Field(description="nearest enrolled persons, nearest first")
    threshold: float = Field(description="the identify threshold `match` used: the distance at which "
                             "a share target_fpir of strangers would be named someone in a gallery of "
                             "gallery_size people, capped at verify_threshold; for one-photo "
                             "references (each candidate's `threshold` is it moved to their template_size)")
    gallery_size: int = Field(description="persons enrolled with the running model (searched)")
    target_fpir: float | None = Field(description="FACEAPI_IDENTIFY_FPIR; null when the artefact has "
                                      "no impostor tail and the 1:1 threshold is used")
    verify_threshold: float = Field(description="the 1:1 threshold of POST /verify, for comparison")
    threshold_source: str = Field(description="`fpir` (computed for target_fpir and gallery_size) "
                                  "or `verify` (the 1:1 threshold was stricter, or no tail)")
    model_version: str
    face: FaceInfo


class FaceIdentity(BaseModel):
    box: list[float] = Field(description="x, y, width, height in the photo's pixels")
    score: float = Field(description="detector confidence")
    subject: bool = Field(description="the face the photo is of (the one a plain /identify uses)")
    match: CandidatePublic | None = Field(description="the nearest person within the threshold, else null")
    candidates: list[CandidatePublic] = Field(description="nearest enrolled persons, nearest first")


class IdentifyAllResponse(BaseModel):
    faces: list[FaceIdentity] = Field(description="every face identified, largest first")
    faces_detected: int = Field(description="faces found; more than len(faces) when over the cap")
    max_faces: int = Field(description="FACEAPI_IDENTIFY_ALL_FACES_MAX")
    threshold: float = Field(description="the identify threshold every face's `match` used")
    gallery_size: int
    target_fpir: float | None
    verify_threshold: float
    threshold_source: str
    model_version: str


class CompareResponse(BaseModel):
    match: bool = Field(description="the two photos show the same person: distance <= threshold")
    distance: float = Field(description="cosine distance, 0 (same) .. 2")
    similarity: float = Field(description="cosine similarity, 1 - distance")
    threshold: float = Field(description="the 1:1 threshold of POST /verify")
    model_version: str
    face_a: FaceInfo = Field(description="the face used in image_a (the person the photo is of)")
    face_b: FaceInfo = Field(description="the face used in image_b")


class DetectedFacePublic(FaceCandidate):
    subject: bool = Field(description="the face enroll, verify and identify would use")


class DetectResponse(BaseModel):
    faces: list[DetectedFacePublic] = Field(description="every face, largest first")
    subject: int = Field(description="index in `faces` of the face the photo is of")
    ambiguous: bool = Field(description="true when enroll would refuse the photo as multiple_faces "
                            "(the two likeliest subjects cannot be told apart); send face_box then")
    faces_detected: int
    image_size: list[int] = Field(description="width, height in pixels")


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
        default=None, description="multiple_faces: faces that cannot be told apart as the subject")
    face_sizes: list[float] | None = Field(
        default=None, description="multiple_faces: px, largest first (at most 10)")
    size_ratio: float | None = Field(
        default=None, description="multiple_faces: larger / smaller size of the two likeliest subjects")
    required_ratio: float | None = Field(
        default=None, description="multiple_faces: FACEAPI_ENROLL_DOMINANCE_RATIO")
    face_size: float | None = Field(default=None, description="face_too_small: px")
    min_face_size: int | None = Field(default=None, description="face_too_small: FACEAPI_MIN_FACE_SIZE")
    score: float | None = Field(default=None, description="low_quality: detector confidence")
    min_score: float | None = Field(default=None, description="low_quality: FACEAPI_ENROLL_MIN_SCORE")
    box: list[float] | None = Field(
        default=None, description="face_too_small, low_quality: x, y, width, height of the face")
    candidates: list[FaceCandidate] | None = Field(
        default=None, description="multiple_faces, face_box_no_match: every detected face, "
                                  "largest first; send one's box as face_box to choose it")
    face_box: list[float] | None = Field(default=None, description="face_box_no_match: the box sent")
    best_overlap: float | None = Field(
        default=None, description="face_box_no_match: the best IoU of face_box with a detected face")
    min_overlap: float | None = Field(default=None, description="face_box_no_match: the IoU needed")
    image: str | None = Field(default=None, description="POST /compare only: which photo a refusal "
                              "is about (image_a or image_b)")
    retry_after: int | None = Field(default=None, description="429 and 503 only: seconds, as in "
                                    "the Retry-After header")


class Health(BaseModel):
    status: str
    checks: dict[str, bool | str | int | float | None] = Field(default_factory=dict)
