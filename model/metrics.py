"""Verification metrics on scored pairs: threshold tuning, ROC, AUC, TAR@FAR.

Convention used everywhere in this project: a pair has a *distance* (smaller means
more alike) and a boolean label ``same``; a pair is accepted as a match when
``distance <= threshold``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class RocCurve:
    thresholds: np.ndarray  # ascending distances; accept when distance <= threshold
    tar: np.ndarray  # true-accept rate (recall on same pairs)
    far: np.ndarray  # false-accept rate on different pairs


def roc_curve(distances: np.ndarray, same: np.ndarray) -> RocCurve:
    """Every distinct distance as a threshold, plus one below the minimum (accept none)."""
    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    if d.shape != y.shape or d.ndim != 1:
        raise ValueError("distances and labels must be 1-D and of equal length")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("need both same and different pairs")
    order = np.argsort(d, kind="mergesort")
    d_sorted, y_sorted = d[order], y[order]
    # keep the last index of each run of equal distances: ties are accepted together
    last_of_run = np.r_[d_sorted[1:] != d_sorted[:-1], True]
    tp = np.cumsum(y_sorted)[last_of_run]
    fp = np.cumsum(~y_sorted)[last_of_run]
    thresholds = np.r_[d_sorted[0] - 1e-12, d_sorted[last_of_run]]
    return RocCurve(
        thresholds=thresholds,
        tar=np.r_[0.0, tp / n_pos],
        far=np.r_[0.0, fp / n_neg],
    )


def roc_auc(distances: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids; equals P(d_same < d_diff), ties count half)."""
    roc = roc_curve(distances, same)
    return float(np.trapezoid(roc.tar, roc.far))


def accuracy_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    d = np.asarray(distances)
    return float(np.mean((d <= threshold) == np.asarray(same, dtype=bool)))


def best_accuracy_threshold(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """Threshold that maximises accuracy, returned as (threshold, accuracy).

    The threshold is placed midway between the accepted distance and the next
    larger one, so it generalises better than sitting on a sample.
    """
    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    roc = roc_curve(d, y)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    correct = roc.tar * n_pos + (1.0 - roc.far) * n_neg
    i = int(np.argmax(correct))
    t = roc.thresholds[i]
    if i + 1 < len(roc.thresholds):
        t = 0.5 * (t + roc.thresholds[i + 1])
    return float(t), float(correct[i] / len(d))


def threshold_at_far(distances: np.ndarray, same: np.ndarray, target_far: float) -> float:
    """Largest threshold whose false-accept rate stays <= target_far."""
    roc = roc_curve(distances, same)
    ok = np.flatnonzero(roc.far <= target_far)
    return float(roc.thresholds[ok[-1]])


def tar_at_far(distances: np.ndarray, same: np.ndarray, target_far: float) -> float:
    """True-accept rate at the largest threshold with FAR <= target_far."""
    roc = roc_curve(distances, same)
    ok = np.flatnonzero(roc.far <= target_far)
    return float(roc.tar[ok[-1]])


@dataclass(frozen=True)
class VerificationReport:
    pairs: int
    same_pairs: int
    threshold: float
    accuracy: float
    roc_auc: float
    tar_at_far_1e3: float
    far_at_threshold: float
    tar_at_threshold: float

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def evaluate_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> VerificationReport:
    """Metrics of a fixed threshold (tuned elsewhere) on held-out pairs."""
    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    accepted = d <= threshold
    return VerificationReport(
        pairs=len(d),
        same_pairs=int(y.sum()),
        threshold=float(threshold),
        accuracy=accuracy_at(d, y, threshold),
        roc_auc=roc_auc(d, y),
        tar_at_far_1e3=tar_at_far(d, y, 1e-3),
        far_at_threshold=float(accepted[~y].mean()),
        tar_at_threshold=float(accepted[y].mean()),
    )
