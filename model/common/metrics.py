"""Verification metrics on scored pairs: threshold tuning, ROC, AUC, TAR@FAR.

Convention used everywhere in this project: a pair has a *distance* (smaller means
more alike) and a boolean label ``same``; a pair is accepted as a match when
``distance <= threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.inference.metadata import SplitMetrics


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


class VerificationReport(SplitMetrics):
    """A threshold's figures on scored pairs: the fields of an artefact's `metrics` entry, which
    the service's metadata model owns."""

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.to_json().items()}


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


# ----------------------------------------------------------------------------- all pairs


@dataclass(frozen=True)
class ScoredPairs:
    """Every pair of a set of photos: distance, same person or not, and whose photos."""

    distances: np.ndarray
    same: np.ndarray  # bool
    id_a: np.ndarray  # identity index (0..K-1) of each side, for the identity bootstrap
    id_b: np.ndarray

    @property
    def impostor(self) -> np.ndarray:
        return self.distances[~self.same]


def all_pairs(embeddings: np.ndarray, identities: np.ndarray) -> ScoredPairs:
    """All i < j pairs of L2-normalised embeddings, with the cosine distance 1 - <a, b>.

    Low-FAR figures need them all: at FAR 1e-3, 3,000 impostor pairs leave 3 accepted
    pairs to set the threshold; all pairs of 60 identities with ~20 photos each are ~700k.
    """
    e = np.asarray(embeddings, np.float32)
    _, ids = np.unique(np.asarray(identities), return_inverse=True)
    i, j = np.triu_indices(len(e), 1)
    sim = e @ e.T
    return ScoredPairs((1.0 - sim[i, j]).astype(np.float64), ids[i] == ids[j], ids[i], ids[j])


def _tar_at_far_sorted(cum_pos: np.ndarray, cum_neg: np.ndarray, target_far: float) -> float:
    """TAR at the largest cut (accept the first k sorted pairs) with FAR <= target."""
    k = int(np.searchsorted(cum_neg / cum_neg[-1], target_far, side="right"))  # cuts 0..k-1 qualify
    return float(cum_pos[k - 1] / cum_pos[-1]) if k > 0 else 0.0


def tar_at_far_bootstrap(pairs: ScoredPairs, fars=(1e-3, 1e-4), n_boot: int = 200,
                         seed: int = 0) -> dict[str, dict]:
    """TAR at each FAR on all pairs, with a 95 % percentile interval from a bootstrap over
    identities (pairs of one person are not independent: resample people, not pairs).

    A replicate draws K identities with replacement; identity i drawn m_i times weighs its
    genuine pairs m_i and an impostor pair of i and j m_i * m_j.
    """
    order = np.argsort(pairs.distances, kind="mergesort")
    same = pairs.same[order]
    a, b = pairs.id_a[order], pairs.id_b[order]
    d = pairs.distances[order]
    last = np.r_[d[1:] != d[:-1], True]  # a cut between equal distances is not a threshold
    n_ids = int(max(a.max(), b.max())) + 1
    rng = np.random.default_rng(seed)

    def tars(m: np.ndarray) -> list[float]:
        w = np.where(same, m[a], m[a] * m[b])
        cum_pos, cum_neg = np.cumsum(w * same)[last], np.cumsum(w * ~same)[last]
        if cum_pos[-1] <= 0 or cum_neg[-1] <= 0:
            return [float("nan")] * len(fars)
        return [_tar_at_far_sorted(cum_pos, cum_neg, f) for f in fars]

    point = tars(np.ones(n_ids))
    boot = np.array([tars(rng.multinomial(n_ids, np.full(n_ids, 1 / n_ids)).astype(np.float64))
                     for _ in range(n_boot)])
    n_impostor = int((~pairs.same).sum())
    return {f"{far:g}": {"tar": round(p, 6),
                         "ci95": [round(float(np.nanquantile(boot[:, k], 0.025)), 6),
                                  round(float(np.nanquantile(boot[:, k], 0.975)), 6)],
                         "impostor_pairs_accepted": int(far * n_impostor)}
            for k, (far, p) in enumerate(zip(fars, point))}
