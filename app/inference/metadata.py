"""The contract of a model artefact's metadata.json (model/artifacts/<version>/), typed.

The service reads it (app/inference/artifacts.py: load_artifact) and the trainer writes it
(model/faces/artifact.py: write_metadata), both through these models: a file either side
cannot read fails when it is written or loaded, not when a request reaches the missing key.

Unknown keys are refused (extra="forbid") at every level, the trainer's records included: every
shipped file validates, and a misspelt key (`threshold_far_1e3`, `input_sise`) would otherwise
be dropped without a word. Keys that are not Python names keep their JSON spelling through an
alias (`threshold_far_1e-3`); `to_json()` writes a model back exactly as it was read (the
fields it was given, in the files' order).

`embedding_dim` has one meaning: the number of values the embedder makes, which the database
stores. A fusion's is the sum of its parts' widths, and the model refuses a file that says
otherwise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.domain.open_set import ImpostorTail
from app.domain.templates import TemplateCalibration
from app.vision.align import AlignmentTemplate

FILE_NAME = "metadata.json"


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_json(self) -> dict:
        """The JSON form: the fields that were given (or set), under their file names."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


# --------------------------------------------------------------------------- what the service runs


class Alignment(_Part):
    """Where the embedder wants the five landmarks (eyes, nose tip, mouth corners) in its
    `size` x `size` input (app/vision/align.py)."""

    size: int = Field(gt=0)
    template: list[tuple[float, float]] = Field(min_length=5, max_length=5)
    landmarks: str | None = None
    source: str | None = None

    def template_(self) -> AlignmentTemplate:
        return AlignmentTemplate.from_metadata(self.to_json())


class EmbedderSpec(_Part):
    """How to build the embedder: its `kind` (app/inference/registry.py maps it to a builder;
    none is the FaceNet graph), the pinned base file and where the trained head (if any) takes over."""

    kind: str | None = None
    base: str | None = None  # "<distribution>==<version>:<file>"
    base_sha256: str | None = None  # the base file the head and thresholds were made with
    base_output: str | None = None  # the layer (tensor) of the base the head takes
    head: str | None = None  # a Keras file in the artefact's folder
    input_size: int | None = Field(default=None, gt=0)
    flip: bool | None = None  # embed each face and its mirror image (app/inference/flip.py)
    preprocessing: str | None = None
    parts: list[FusionPart] | None = None  # kind "fusion" (app/inference/fusion.py)

    @model_validator(mode="after")
    def _fusion_has_parts(self) -> EmbedderSpec:
        if self.kind == "fusion" and not self.parts:
            raise ValueError("a fusion embedder lists its parts")
        return self


class FusionPart(EmbedderSpec):
    """One part of a fusion: an embedder of its own kind, on its own framing, with its weight."""

    embedding_dim: int = Field(gt=0)
    weight: float = Field(ge=0)
    alignment: Alignment


EmbedderSpec.model_rebuild()


# --------------------------------------------------------------------------- thresholds


class ThresholdSource(_Part):
    """Where the thresholds were chosen: `threshold` by `criterion` on `pairs` pairs of `split`;
    the false-accept thresholds on `far_thresholds`."""

    split: str
    pairs: int
    criterion: str
    far_thresholds: str | None = None


class Extrapolation(_Part):
    model: str
    slope: float = Field(gt=0)


class ImpostorTailSpec(_Part):
    """The low tail of impostor-pair distances (app/domain/open_set.py), for the identify threshold."""

    split: str | None = None
    identities: int | None = None
    quantiles: str | None = None
    pairs: int
    rates: list[float]
    distances: list[float]
    extrapolation: Extrapolation | None = None

    @model_validator(mode="after")
    def _a_tail(self) -> ImpostorTailSpec:
        self.tail()  # ValueError when the points do not make a tail
        return self

    def tail(self) -> ImpostorTail:
        return ImpostorTail.from_dict(self.to_json())


class CalibrationSource(_Part):
    split: str
    identities: int
    draws: int
    pooling: str
    pairs: str


class TemplateCalibrationSpec(_Part):
    """Per-template-size thresholds (app/domain/templates.py), keyed by the number of photos."""

    rates: list[float]
    distances: dict[int, list[float]]
    pairs: dict[int, int] | None = None
    source: CalibrationSource | None = None
    command: str | None = None

    @model_validator(mode="after")
    def _a_calibration(self) -> TemplateCalibrationSpec:
        self.calibration()  # ValueError when malformed
        return self

    def calibration(self) -> TemplateCalibration:
        return TemplateCalibration.from_dict(self.to_json())


# --------------------------------------------------------------------------- measured, recorded


class OperatingPoint(_Part):
    threshold: float
    far: float
    tar: float


class TarAtFar(_Part):
    tar: float
    ci95: tuple[float, float]
    impostor_pairs_accepted: int


class AllPairs(_Part):
    """Every pair of a split's identities: TAR at each FAR (bootstrap interval), and the false-
    and true-accept rates of the FAR thresholds chosen on validation."""

    identities: int | None = None
    genuine_pairs: int | None = None
    impostor_pairs: int | None = None
    tar_at_far: dict[str, TarAtFar] | None = None
    bootstrap: str | None = None
    threshold_far_1e3: OperatingPoint | None = Field(default=None, alias="threshold_far_1e-3")
    threshold_far_1e4: OperatingPoint | None = Field(default=None, alias="threshold_far_1e-4")


class SplitMetrics(_Part):
    """A split's balanced pairs scored at `threshold` (the trainer's VerificationReport is this model)."""

    pairs: int
    same_pairs: int
    threshold: float
    accuracy: float
    roc_auc: float
    tar_at_far_1e3: float
    far_at_threshold: float
    tar_at_threshold: float
    all_pairs: AllPairs | None = None


class Metrics(_Part):
    val: SplitMetrics | None = None
    test: SplitMetrics | None = None
    yale: SplitMetrics | None = None


class EmbeddingTiming(_Part):
    value: float  # ms per face at `batch`
    batch: int
    device: str
    includes: str
    batch_1: float | None = None
    batch_32: float | None = None


class YaleData(_Part):
    images: int
    identities: int | None = None
    pairs: str | None = None


class DataRecord(_Part):
    """The data the thresholds and metrics were measured on."""

    dataset: str
    split_seed: int
    fractions: tuple[float, float, float]
    identities: dict[Literal["train", "val", "test"], int]
    faces_detected: str
    yale: YaleData | None = None


class TrainingRecord(_Part):
    """How the head was trained; `config` is the trainer's own record (model/faces/config.py)."""

    preset: str
    objective: str
    base: str | None = None
    base_stage: str | None = None
    best_epoch: int
    best_val_auc: float
    minutes: float
    config: dict[str, Any]


class Provenance(_Part):
    command: str
    git_commit: str
    created: str


class Retuned(Provenance):
    why: str


# --------------------------------------------------------------------------- the file


class EmbedderMetadata(_Part):
    """What building an embedder needs: an artefact being exported has this before it has
    thresholds (model/faces/fusion.py), and so does each part of a fusion."""

    model_version: str = Field(min_length=1)
    embedding_dim: int = Field(gt=0)
    metric: Literal["cosine_distance"] = "cosine_distance"
    embedder: EmbedderSpec
    alignment: Alignment

    @model_validator(mode="after")
    def _width_is_the_parts_sum(self) -> EmbedderMetadata:
        if self.embedder.kind == "fusion" and self.embedder.parts:
            parts = sum(p.embedding_dim for p in self.embedder.parts)
            if parts != self.embedding_dim:
                raise ValueError(f"embedding_dim is {self.embedding_dim}, but the fusion's parts make "
                                 f"{parts} values (the sum of their embedding_dim)")
        return self


class ArtifactMetadata(EmbedderMetadata):
    """metadata.json of a model artefact: the embedder, its thresholds, and how they were measured."""

    threshold: float = Field(description="the threshold of maximum validation accuracy")
    threshold_far_1e3: float | None = Field(default=None, alias="threshold_far_1e-3")
    threshold_far_1e4: float | None = Field(default=None, alias="threshold_far_1e-4")
    threshold_source: ThresholdSource | None = None
    impostor_tail: ImpostorTailSpec | None = None
    template_calibration: TemplateCalibrationSpec | None = None
    metrics: Metrics | None = None
    embedding_ms_per_face: EmbeddingTiming | None = None
    data: DataRecord | None = None
    training: TrainingRecord | None = None
    command: str | None = None
    git_commit: str | None = None
    created: str | None = None
    retuned: Retuned | None = None
    all_pairs_provenance: Provenance | None = None

    @field_validator("threshold", "threshold_far_1e3", "threshold_far_1e4")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("a threshold is a finite distance")
        return value

    def threshold_for(self, policy: str) -> float | None:
        """`max_accuracy`, `far_1e-3` or `far_1e-4`; None when the artefact has not that threshold."""
        if policy == "max_accuracy":
            return self.threshold
        return {"far_1e-3": self.threshold_far_1e3, "far_1e-4": self.threshold_far_1e4}.get(policy)

    @classmethod
    def read(cls, folder: Path) -> ArtifactMetadata:
        """The folder's metadata.json (OSError, ValueError: pydantic's ValidationError)."""
        return cls.model_validate_json((Path(folder) / FILE_NAME).read_bytes())

    def write(self, folder: Path) -> Path:
        """Into `folder`/metadata.json, indented as the shipped files are."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / FILE_NAME
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path
