"""Typed dependencies: the runtime, the caller's role, and the image request body
(multipart or JSON, one parser for both)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ValidationError
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.domain import errors
from app.core.db import call
from app.core.security import KEY_PREFIX_CHARS, Role, hash_key
from app.runtime import Runtime
from app.services.faces import FaceService

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="Admin keys enroll and delete; client keys verify and identify")
log = logging.getLogger("app.auth")
# bodies above this are parsed in a worker thread, so a 13 MB base64 photo never stalls the loop
OFF_LOOP_BYTES = 64 * 1024


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_faces(runtime: RuntimeDep) -> FaceService:
    """The face use cases; 503 `not_ready` (with Retry-After) until the model is warm."""
    return runtime.require_faces()


FacesDep = Annotated[FaceService, Depends(get_faces)]


def require(needed: Role):
    async def check(request: Request, runtime: RuntimeDep,
                    key: Annotated[str | None, Security(api_key_header)] = None) -> Role:
        address = request.client.host if request.client else "-"
        if runtime.settings.auth_disabled:
            _per_key_limit(runtime, f"ip:{address}")
            return Role.admin
        if not key:
            raise errors.Unauthenticated("Send an API key in the X-API-Key header")
        # An address that keeps sending wrong keys has a budget of failures; past it, a key
        # already found wrong is refused before the database is asked, and any other wrong key
        # gets 429 instead of 401 (and no log line). A valid key is never refused by this rule:
        # behind a proxy or NAT one client's wrong key would otherwise lock out everyone's
        # valid ones from that address. A key is 256 random bits: no budget is needed against
        # guessing, only against spending lookups and log lines on one wrong key.
        digest = hash_key(key)
        wait = runtime.failed_auth.wait(address)
        if wait > 0 and digest in runtime.wrong_keys:
            raise _too_many_wrong_keys(runtime, wait)
        role = await call(runtime.engine, runtime.keys.role_of, key)
        if role is None:
            runtime.wrong_keys.add(digest)
            if wait > 0:
                raise _too_many_wrong_keys(runtime, wait)
            runtime.failed_auth.acquire(address)
            log.info("invalid API key from %s", address)
            raise errors.Unauthenticated("The API key is not valid")
        _per_key_limit(runtime, digest)
        if not role.allows(needed):
            raise errors.Forbidden(f"This needs an {needed.value} key; yours is a {role.value} key")
        request.state.api_key_prefix = key[:KEY_PREFIX_CHARS]  # the prefix `keys list` shows
        return role

    return check


def _too_many_wrong_keys(runtime: Runtime, wait: float) -> errors.DomainError:
    runtime.metrics.rate_limited.inc()
    return errors.RateLimited("Too many requests with invalid API keys from this address; retry later",
                              retry_after=max(1, math.ceil(wait)))


def _per_key_limit(runtime: Runtime, bucket_id: str) -> None:
    if runtime.rate_limiter is None:
        return
    wait = runtime.rate_limiter.acquire(bucket_id)
    if wait > 0:
        runtime.metrics.rate_limited.inc()
        limit = runtime.settings.rate_limit_per_minute
        raise errors.RateLimited(f"This API key may make {limit} requests per minute; retry in "
                                 f"{wait:.1f} s", retry_after=max(1, math.ceil(wait)))


AdminDep = Annotated[Role, Depends(require(Role.admin))]
ClientDep = Annotated[Role, Depends(require(Role.client))]


@dataclass(frozen=True)
class ImageRequest:
    fields: BaseModel  # the JSON model, with the base64 fields emptied
    image: bytes  # the first (or only) photo
    images: dict[str, bytes]  # every photo, by its field name (`image`, or image_a and image_b)


async def read_image_request(request: Request, model: type[BaseModel],
                             names: tuple[str, ...] = ("image",)) -> ImageRequest:
    """Parse multipart/form-data (file fields `names`, e.g. `image`) or JSON (`<name>_base64`)
    into `model`. Size limits are enforced while the body streams in (app.main)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        try:
            form = await request.form(max_files=len(names), max_fields=10)
        except StarletteHTTPException as exc:  # Starlette's 400 for a body it cannot parse
            raise errors.InvalidMultipart(f"The multipart body cannot be read: {exc.detail}") from None
        images = {}
        for name in names:
            upload = form.get(name)
            if isinstance(upload, str):
                raise errors.EmptyImage(f"The `{name}` part came as a text field: give it a filename "
                                        f"(curl -F {name}=@photo.jpg)")
            if upload is None:  # absent, misnamed, or cut off before its closing boundary
                raise errors.EmptyImage(f"Send the photo as the multipart file field `{name}` (none "
                                        "arrived whole: check the field's name and that the body "
                                        "ends with the closing boundary)")
            images[name] = await upload.read()
        raw = {k: v for k, v in form.items() if k not in names and isinstance(v, str)}
        for name in names:
            raw[f"{name}_base64"] = "-"  # placeholder: the bytes travel apart
    elif content_type == "application/json":
        body = await request.body()
        if len(body) > OFF_LOOP_BYTES:
            return await asyncio.to_thread(_parse_json, body, model, names)
        return _parse_json(body, model, names)
    else:
        files = ", ".join(names)
        raise errors.UnsupportedMediaType(
            f"Send multipart/form-data (file fields {files}) or application/json "
            f"({', '.join(n + '_base64' for n in names)})")
    try:
        return ImageRequest(model.model_validate(raw), images[names[0]], images)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


def _parse_json(body: bytes, model: type[BaseModel], names: tuple[str, ...] = ("image",)) -> ImageRequest:
    try:
        parsed = model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    images = {}
    for name in names:
        field = f"{name}_base64"
        try:
            images[name] = base64.b64decode(_base64_payload(getattr(parsed, field)), validate=True)
        except (binascii.Error, ValueError):
            raise errors.InvalidBase64(f"{field} is not valid base64 (a data: URL prefix and line "
                                       "breaks are fine; other characters are not)") from None
    emptied = parsed.model_copy(update={f"{n}_base64": "-" for n in names})
    return ImageRequest(emptied, images[names[0]], images)


def image_request_body(json_model: type[BaseModel], names: tuple[str, ...] = ("image",)) -> dict:
    """OpenAPI requestBody for endpoints that take multipart or JSON: both schemas come from
    `json_model` (multipart_schema), so a field's limits are written once, in the model."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": multipart_schema(json_model, names)},
                "application/json": {"schema": json_model.model_json_schema()},
            },
        }
    }


def multipart_schema(json_model: type[BaseModel], names: tuple[str, ...] = ("image",)) -> dict:
    """The multipart/form-data schema of `json_model`, as read_image_request parses it: each
    `<name>_base64` field becomes the file field `<name>`; every other field is the model's own
    JSON schema, as a form sends it (form_field). Required: the model's required fields (the file
    fields in place of their base64 ones). The service refuses any other field (422), as the
    JSON models do, hence additionalProperties false."""
    schema = json_model.model_json_schema()
    if "$defs" in schema:
        raise TypeError(f"{json_model.__name__}: a multipart form has no nested models")
    files = {f"{n}_base64": n for n in names}
    missing = set(files) - set(schema["properties"])
    if missing:
        raise TypeError(f"{json_model.__name__} lacks the fields {sorted(missing)}")
    properties = {files.get(name, name): ({"type": "string", "format": "binary"} if name in files
                                         else form_field(field))
                  for name, field in schema["properties"].items()}
    return {"type": "object", "required": [files.get(n, n) for n in schema.get("required", [])],
            "additionalProperties": False, "properties": properties}


def form_field(field: dict) -> dict:
    """A field's JSON schema as a multipart form sends it: an optional field (`X | None`) is
    left out rather than sent as null, so its schema is X's (without a null default); a list
    travels as text, its JSON (the model's before-validator parses it, e.g. face_box)."""
    out = dict(field)
    branches = out.pop("anyOf", None)
    if branches is not None:
        kept = [b for b in branches if b.get("type") != "null"]
        if len(kept) != 1:
            raise TypeError(f"a form field has one type besides null, not {branches}")
        out = {**kept[0], **out}
        if "default" in out and out["default"] is None:
            del out["default"]
    if out.get("type") in ("array", "object"):
        text = {"type": "string", **{k: out[k] for k in ("title", "description") if k in out}}
        if "examples" in out:
            text["examples"] = [json.dumps(e) for e in out["examples"]]
        out = text
    return out


def _base64_payload(text: str) -> str:
    """What browsers and shells send: `data:image/jpeg;base64,` before it (FileReader,
    canvas.toDataURL) and line breaks every 76 characters (`base64` without -w0)."""
    if text[:5].lower() == "data:" and "," in text[:100]:
        text = text.split(",", 1)[1]
    return "".join(text.split())
