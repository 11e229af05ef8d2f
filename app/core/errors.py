"""Domain errors: what went wrong, as a stable machine-readable ``code``. No HTTP here.

Vision, storage and the use cases raise these; app/api/problems.py is the one place that
maps each code to an HTTP status and an RFC 9457 problem+json body.
"""

from __future__ import annotations


class DomainError(Exception):
    code: str = "bad_request"
    title: str = "Bad request"
    retry_after: int | None = None  # seconds; for errors that pass with time

    def __init__(self, detail: str | None = None, *, retry_after: int | None = None,
                 **extra: object) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if retry_after is not None:
            self.retry_after = retry_after
        self.extra = extra  # more machine-readable fields for the problem body


def _error(name: str, code: str, title: str, retry_after: int | None = None) -> type[DomainError]:
    return type(name, (DomainError,), {"code": code, "title": title, "retry_after": retry_after})


# request and image intake
InvalidRequest = _error("InvalidRequest", "invalid_request", "The request is not valid")
EmptyImage = _error("EmptyImage", "image_missing", "No image was sent")
InvalidMultipart = _error("InvalidMultipart", "invalid_multipart", "The multipart body cannot be read")
InvalidBase64 = _error("InvalidBase64", "invalid_base64", "image_base64 is not valid base64")
UnsupportedImageType = _error("UnsupportedImageType", "unsupported_image_type",
                              "Not a JPEG, PNG, WebP, BMP or GIF image")
CorruptImage = _error("CorruptImage", "image_corrupt", "The image could not be decoded")
ImageTooSmall = _error("ImageTooSmall", "image_too_small", "The image is too small")
ImageTooManyPixels = _error("ImageTooManyPixels", "image_too_many_pixels", "The image has too many pixels")
UnsupportedMediaType = _error("UnsupportedMediaType", "unsupported_media_type",
                              "The request body type is not supported")
PayloadTooLarge = _error("PayloadTooLarge", "payload_too_large", "The request body is too large")
# faces
NoFace = _error("NoFace", "no_face", "No face was found in the image")
MultipleFaces = _error("MultipleFaces", "multiple_faces", "More than one face in the image")
FaceTooSmall = _error("FaceTooSmall", "face_too_small", "The face is too small to enroll")
LowQuality = _error("LowQuality", "low_quality", "The face is not clear enough")
FaceBoxNoMatch = _error("FaceBoxNoMatch", "face_box_no_match",
                        "No detected face overlaps face_box enough")
# persons
PersonNotFound = _error("PersonNotFound", "person_not_found", "No such person is enrolled")
PersonExists = _error("PersonExists", "person_exists", "This person is already enrolled")
FaceNotFound = _error("FaceNotFound", "face_not_found", "The person has no such face")
LastFace = _error("LastFace", "last_face", "A person's only face cannot be removed")
ModelVersionMismatch = _error("ModelVersionMismatch", "model_version_mismatch",
                              "The stored embedding was made by another model version")
# auth and limits
Unauthenticated = _error("Unauthenticated", "unauthenticated", "Missing or invalid API key")
Forbidden = _error("Forbidden", "forbidden", "This API key may not do that")
RateLimited = _error("RateLimited", "rate_limited", "Too many requests", retry_after=1)
# availability: these pass with time, so they carry Retry-After
NotReady = _error("NotReady", "not_ready", "The service is not ready", retry_after=5)
Overloaded = _error("Overloaded", "overloaded", "The service is at capacity", retry_after=1)
EmbedderUnavailable = _error("EmbedderUnavailable", "embedder_unavailable",
                             "The face embedder is unavailable", retry_after=5)
DatabaseUnavailable = _error("DatabaseUnavailable", "database_unavailable",
                             "The database is unavailable", retry_after=2)
# a full or read-only disk lasts until the operator acts: no Retry-After
StorageUnwritable = _error("StorageUnwritable", "storage_unwritable", "The database refuses writes")
