"""Which cosine-distance thresholds decide a match, and where they came from: the 1:1
threshold of /verify, and the open-set one of /identify that moves with the gallery's size
(app/domain/open_set.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from app.core.config import default_of
from app.inference.artifacts import ModelArtifact
from app.domain.open_set import IdentifyThreshold, ImpostorTail, identify_threshold
from app.domain.templates import TemplateCalibration

CRITERIA = {
    "far_1e-3": "false-accept rate <= 1e-3 on validation pairs",
    "max_accuracy": "maximum accuracy on balanced validation pairs",
}


@dataclass
class ThresholdPolicy:
    value: float  # the 1:1 threshold
    origin: str  # shown by GET /model and in the start-up log
    criterion: str  # what the 1:1 threshold was chosen for
    impostor_tail: ImpostorTail | None = None
    identify_fpir: float = default_of("identify_fpir")
    templates: TemplateCalibration | None = None  # None: one threshold for every template size
    _cache: tuple | None = field(default=None, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def choose(cls, artifact: ModelArtifact, policy: str, override: float | None,
               identify_fpir: float = default_of("identify_fpir")) -> "ThresholdPolicy":
        """The operator's override (FACEAPI_THRESHOLD), else the artefact's tuned threshold for
        `policy`; an artefact without that threshold fails here, at start, not per request."""
        if override is not None:
            value, origin, criterion = override, "settings (FACEAPI_THRESHOLD)", "set by the operator"
        else:
            value, origin = artifact.threshold_for(policy), f"model artefact, policy {policy}"
            criterion = CRITERIA[policy]
        return cls(value, origin, criterion, artifact.impostor_tail, identify_fpir,
                   artifact.template_calibration)

    def for_template(self, threshold: float, template_size: int) -> float:
        """`threshold` (of a one-photo reference) moved to a template of `template_size`
        photos so that it accepts the same share of impostor pairs (app/domain/templates.py)."""
        if self.templates is None or template_size <= 1:
            return threshold
        return self.templates.threshold(threshold, template_size)

    def verify_threshold(self, template_size: int) -> float:
        """The 1:1 threshold for a person whose reference pools `template_size` photos."""
        return self.for_template(self.value, template_size)

    def for_identify(self, gallery_size: int) -> IdentifyThreshold:
        """The 1:N threshold for `gallery_size` enrolled people and FACEAPI_IDENTIFY_FPIR
        (recomputed only when the size changes; the tail is a few dozen points)."""
        with self._lock:
            cached = self._cache
            if cached is None or cached[0] != gallery_size:
                cached = self._cache = (gallery_size, identify_threshold(
                    self.impostor_tail, self.identify_fpir, gallery_size, self.value))
            return cached[1]
