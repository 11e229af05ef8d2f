"""Settings from FACEAPI_* environment variables (and an optional .env), checked at start.

The one settings model of the project: the service and the trainer (`python -m model`,
through model/common/paths.py) both read it, so a FACEAPI_* name that one of them
documents is never unknown to the other.

Unknown FACEAPI_* variables are an error too: a typo such as FACEAPI_TRESHOLD
must not silently leave the default in force.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
# the shipped model artefacts (written by `python -m model faces export`, read by the service)
ARTIFACTS_DIR = REPO_ROOT / "model" / "artifacts"
PREFIX = "FACEAPI_"
DEFAULT_MODEL = "fusion-sface-dlib-flip-v1"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_file=".env", env_file_encoding="utf-8", extra="forbid",
        frozen=True,
    )

    database_url: str = Field(
        default=f"sqlite:///{REPO_ROOT / 'var' / 'faceapi.db'}",
        description="SQLAlchemy URL: sqlite:///path (embedded default) or postgresql+psycopg://...",
    )
    model: str = Field(
        default=DEFAULT_MODEL,
        description="Model artefact: a folder with metadata.json, or a version under model/artifacts/",
    )
    threshold: Annotated[float, Field(gt=0.0, lt=2.0)] | None = Field(
        default=None, description="Override of the artefact's tuned cosine-distance threshold"
    )
    threshold_policy: Literal["far_1e-3", "max_accuracy"] = Field(
        default="far_1e-3",
        description="Which tuned threshold of the artefact to use: the one with false-accept rate "
        "<= 1e-3 on validation pairs (default: a wrong person is the costly error), or the one of "
        "maximum validation accuracy on balanced pairs",
    )
    identify_fpir: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        default=0.01,
        description="Target false-positive identification rate of POST /identify: the share of "
        "photos of people who are not enrolled that may be named as someone. With the gallery's "
        "size N and the artefact's impostor-distance tail F it sets the identify threshold "
        "t = F^-1(1 - (1 - FPIR)^(1/N)), never looser than the 1:1 threshold. 0.01: one "
        "stranger in a hundred is named (an operating point NIST FRVT 1:N reports FNIR at); "
        "docs/benchmarks.md shows what 0.001 costs in missed enrolled people",
    )
    database_timeout_s: Annotated[float, Field(gt=0.0, le=600.0)] = Field(
        default=10.0, description="deadline of each database call of a request (and the connect, "
        "pool-checkout and PostgreSQL statement timeouts): past it the request is 503 "
        "database_unavailable, so a stalled database cannot hold requests (app/core/db.py)")
    max_upload_bytes: Annotated[int, Field(ge=1024, le=200 * 1024 * 1024)] = Field(
        default=10 * 1024 * 1024, description="largest photo in bytes; the body limit follows from it "
        "(base64 and multipart overhead) and bodies are cut off while streaming (413)")
    max_inflight_body_bytes: Annotated[int, Field(ge=1024 * 1024)] = Field(
        default=512 * 1024 * 1024, description="request bodies held at once (all requests in "
        "progress); a body beyond it is 503 overloaded")
    max_inflight_body_bytes_per_client: Annotated[int, Field(ge=1024 * 1024)] = Field(
        default=64 * 1024 * 1024, description="the share of max_inflight_body_bytes that the bodies "
        "of one API key (or, without a key, one client address) may hold at once; a body beyond "
        "it is 429 rate_limited, so one client cannot reserve the whole budget")
    max_pixels: Annotated[int, Field(ge=1024, le=200_000_000)] = Field(
        default=40_000_000, description="largest photo in pixels, checked from the header before "
        "decoding (413 image_too_many_pixels)")
    min_image_side: Annotated[int, Field(ge=16, le=4096)] = Field(
        default=32, description="smaller photos (either side, px) are 422 image_too_small")
    min_face_size: Annotated[int, Field(ge=8, le=1024)] = Field(
        default=20, description="px (shorter side of the face box); smaller faces are not enrolled")
    enroll_min_score: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        default=0.75, description="YuNet confidence below which enroll answers low_quality")
    enroll_dominance_ratio: Annotated[float, Field(ge=1.0, le=100.0)] = Field(
        default=1.25, description="two faces whose sizes differ by less than this factor count as "
        "the same size when the subject is chosen (app/vision/subject.py): enroll answers "
        "multiple_faces only when the two likeliest subjects are also alike in closeness to the "
        "centre, edge cut and detector confidence")
    identify_all_faces_max: Annotated[int, Field(ge=1, le=100)] = Field(
        default=20, description="POST /identify with all_faces=true identifies at most this many "
        "faces of a photo (the largest)")
    detect_max_side: Annotated[int, Field(ge=160, le=4096)] = Field(
        default=640, description="YuNet's first pass runs on the photo scaled to this longer side")
    batch_max_size: Annotated[int, Field(ge=1, le=1024)] = Field(
        default=32, description="largest model batch (1 turns batching off)")
    batch_max_wait_ms: Annotated[float, Field(ge=0.0, le=1000.0)] = Field(
        default=5.0, description="how long a batch waits to fill while another request is still "
        "in detection (a lone face runs at once)")
    detect_threads: Annotated[int, Field(ge=1, le=64)] = Field(default=2, description="detection threads")
    # Load shedding: requests allowed in detection (running + waiting) and faces waiting for
    # the embedder; one more is a 503 `overloaded` at once. Sized in docs/benchmarks.md (load).
    detect_queue_max: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=12, description="requests in detection (running and waiting); one more is 503 "
        "overloaded at once")
    detect_max_inflight_pixels: Annotated[int, Field(ge=1024, le=2_000_000_000)] = Field(
        default=48_000_000, description="decoded pixels that the photos in detection (running and "
        "waiting) may hold together; a photo that would pass it is 503 overloaded. One photo at "
        "the pixel limit fits, with room for ordinary photos beside it (app/core/pools.py)")
    embed_queue_max: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=64, description="faces waiting for the embedder; one more is 503 overloaded at once")
    embedder_url: str | None = Field(
        default=None, description="TensorFlow Serving REST URL of a remote embedder, e.g. "
        "http://tfserving:8501/v1/models/faceapi"
    )
    runtime: Literal["litert", "keras", "remote"] | None = Field(
        default=None, description="What runs the embedder: litert (the Keras nets converted to "
        ".tflite, run by LiteRT without TensorFlow in the process), keras (TensorFlow in-process: "
        "a GPU host, or for comparison) or remote (TensorFlow Serving at FACEAPI_EMBEDDER_URL). "
        "Unset: remote when FACEAPI_EMBEDDER_URL is set, keras when a GPU is visible to an installed "
        "GPU TensorFlow, litert otherwise (keras for an artefact that has no LiteRT build)")
    model_cache_dir: Path = Field(
        default=REPO_ROOT / "var" / "models",
        description="The LiteRT runtime's .tflite files, built from the installed weights by "
        "`python -m app models prepare` (or once by `serve` when missing); keyed by the source "
        "files' SHA-256 and the converter version")
    litert_threads: Annotated[int, Field(ge=1, le=64)] = Field(
        default=2, description="CPU threads of each LiteRT net (XNNPACK)")
    data_dir: Path = Field(
        default=REPO_ROOT.parent / "shared" / "data",
        description="Data sets (CelebA subset, Yale, Omniglot) for the trainer, benchmarks and tests",
    )
    cache_dir: Path = Field(
        default=REPO_ROOT / "var" / "cache",
        description="The trainer's caches (detections, aligned faces, base features, decoded Omniglot)",
    )
    auth_disabled: bool = Field(
        default=False, description="Open API without keys; only for local experiments"
    )
    hnsw_ef_search: Annotated[int, Field(ge=1, le=1000)] | None = Field(
        default=None, description="PostgreSQL HNSW search breadth; unset: chosen for the gallery's "
        "size from measured recall@1 >= 0.99 (app/domain/hnsw.py)")
    # slow or endless requests (app/api/connections.py): one client must not hold a connection
    request_head_timeout_s: Annotated[float, Field(gt=0.0, le=600.0)] = Field(
        default=20.0, description="a request head (line and headers) must arrive within this; else 408")
    request_body_idle_timeout_s: Annotated[float, Field(gt=0.0, le=600.0)] = Field(
        default=30.0, description="a request body may not stall longer than this between reads; else 408")
    request_body_timeout_s: Annotated[float, Field(gt=0.0, le=3600.0)] = Field(
        default=300.0, description="a whole request body must arrive within this; else 408")
    request_body_min_rate: Annotated[int, Field(ge=0, le=100 * 1024 * 1024)] = Field(
        default=1024, description="bytes/s a request body must average once it has taken "
        "request_body_idle_timeout_s; else 408 (a body that trickles in holds its budget)")
    max_request_head_bytes: Annotated[int, Field(ge=4096, le=1024 * 1024)] = Field(
        default=64 * 1024, description="largest request head (line and headers); more is 431")
    rate_limit_per_minute: Annotated[int, Field(ge=0)] = Field(
        default=0, description="requests per API key and minute (per client address with auth "
        "disabled); 0: no limit")
    auth_failures_per_minute: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=30, description="wrong keys per client address and minute; past it a key already "
        "known to be wrong is 429 without a database lookup (a valid key is always checked)")
    forwarded_allow_ips: str = Field(
        default="", description="peers whose X-Forwarded-For names the client (the failed-key "
        "budget, the per-client body share, logs): comma-separated IPs or CIDRs of a reverse proxy "
        "in front, or * when only a proxy can reach the service; empty: the connecting address")
    cors_origins: list[str] = Field(default_factory=list, description="JSON list of allowed "
                                    "browser origins; empty: CORS off")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="DEBUG also shows third-party start-up notices")
    log_json: bool = Field(default=True, description="one JSON object per log line, with the request id")
    store_photos: bool = Field(default=False, description="privacy default: embeddings only; "
                               "storing photos is not implemented (true stops the start)")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, v: str) -> str:
        if not (v.startswith("sqlite") or v.startswith("postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return v

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses(cls, v: str) -> str:
        entries = []
        for entry in (e.strip() for e in v.split(",") if e.strip()):
            try:  # uvicorn reads networks strictly: 10.1.2.3/8 is written 10.0.0.0/8
                entries.append(entry if entry == "*" else
                               str(ipaddress.ip_network(entry, strict=False)) if "/" in entry else
                               str(ipaddress.ip_address(entry)))
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address, a CIDR or *") from None
        if "*" in entries and len(entries) > 1:
            raise ValueError("* trusts every peer: give it alone")
        return ",".join(entries)

    @field_validator("store_photos")
    @classmethod
    def _no_photo_storage(cls, v: bool) -> bool:
        if v:
            raise ValueError("storing photos is not implemented; this service keeps embeddings only")
        return v

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_env(cls, values: dict) -> dict:
        known = {PREFIX + name.upper() for name in cls.model_fields}
        unknown = sorted(k for k in os.environ if k.upper().startswith(PREFIX) and k.upper() not in known)
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return values

    @property
    def max_body_bytes(self) -> int:
        """The largest request body: the upload limit with room for base64's 4/3 and form overhead."""
        return body_bytes_for(self.max_upload_bytes)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def model_dir(self) -> Path:
        """The artefact folder named by `model` (a path, or a version under model/artifacts)."""
        candidate = Path(self.model)
        if candidate.is_dir():
            return candidate
        return ARTIFACTS_DIR / self.model


def body_bytes_for(max_upload_bytes: int) -> int:
    """The largest request body for a photo of `max_upload_bytes`: room for base64's 4/3 and
    the multipart or JSON overhead."""
    return max_upload_bytes * 4 // 3 + 64 * 1024


def default_of(name: str):
    """The default of setting `name`, for a parameter elsewhere that has one: each default is
    written once, in Settings (a dataclass or signature repeating the literal would drift)."""
    return Settings.model_fields[name].get_default(call_default_factory=True)


def load_settings(**overrides) -> Settings:
    """Settings from the environment; a readable message instead of a traceback on error."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = [f"  {PREFIX}{'.'.join(map(str, e['loc'])).upper() or '?'}: {e['msg']}" for e in exc.errors()]
        raise SystemExit("Invalid FACEAPI_ settings:\n" + "\n".join(lines)) from None
