"""Threshold tuning: the cosine-distance threshold of maximum validation accuracy on balanced
pairs, with metrics per split; the FAR thresholds (1e-3, 1e-4), TAR at those FARs with a
bootstrap interval, and the impostor-distance tail (for the identify threshold) from all
pairs of the validation and test identities. `tune_base_threshold` does it for the plain
base, `retune_all_pairs` redoes the all-pairs part for any existing artefact."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from model.common import metrics
from model.faces import data
from model.faces.artifact import base_embedder_spec, provenance, write_metadata


def tune_threshold(distances: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict:
    """Threshold chosen on val (max accuracy, and FAR 1e-3); metrics reported per split."""
    t_acc, _ = metrics.best_accuracy_threshold(distances["val"], labels["val"])
    t_far = metrics.threshold_at_far(distances["val"], labels["val"], 1e-3)
    return {
        "threshold": round(t_acc, 6),
        "threshold_far_1e-3": round(t_far, 6),
        "metrics": {s: metrics.evaluate_at(distances[s], labels[s], t_acc).to_dict() for s in distances},
    }


def tune_base_threshold(data_dir: str | None, seed: int, n_pairs: int, version: str, out: Path) -> dict:
    """Embed the CelebA subset with the base graph, tune its threshold, write the artefact's metadata."""
    from app.inference.backbones.facenet.graph import EMBEDDING_DIM, INPUT_SIZE, FaceNetGraphEmbedder, graph_sha256

    celeba = data.load_celeba(data_dir)
    det = data.detect_all(celeba)
    template = data.default_template()
    faces = data.aligned_faces(celeba, det, template)
    embedder = FaceNetGraphEmbedder(version, EMBEDDING_DIM, INPUT_SIZE)
    emb = data.embed_all(embedder, faces, det.found)
    split = data.split_identities(celeba.identities, seed)
    distances, labels, sizes = {}, {}, {}
    for i, name in enumerate(("val", "test")):
        pairs = data.balanced_pairs(celeba.identities, det.found, split[name], n_pairs, seed + i)
        distances[name], labels[name], sizes[name] = data.pair_distances(emb, pairs), pairs.same, len(pairs)
    tuned = tune_threshold(distances, labels)
    meta = {
        "model_version": version,
        "embedding_dim": EMBEDDING_DIM,
        "metric": "cosine_distance",
        "embedder": base_embedder_spec(graph_sha256()),
        "alignment": template.to_metadata(),
        **{k: tuned[k] for k in ("threshold", "threshold_far_1e-3")},
        "threshold_source": {"split": "val", "pairs": sizes["val"], "criterion": "max accuracy"},
        "metrics": tuned["metrics"],
        "data": {
            "dataset": "celeba_subset", "split_seed": seed, "fractions": [0.6, 0.2, 0.2],
            "identities": {k: int(len(v)) for k, v in split.items()},
            "faces_detected": f"{int(det.found.sum())}/{len(det.found)}",
        },
        **provenance(),
    }
    apply_all_pairs(meta, all_pairs_statistics(emb, celeba.identities, det.found, split))
    write_metadata(out / version, meta)
    return meta


# --------------------------------------------------------------------------- all pairs (1:N tail)

FARS = (1e-3, 1e-4)


def far_key(far: float) -> str:
    """1e-3 -> "1e-3" (the metadata's spelling)."""
    return f"{far:.0e}".replace("e-0", "e-")


def all_pairs_statistics(emb: np.ndarray, identities: np.ndarray, usable: np.ndarray,
                         split: dict[str, np.ndarray], n_boot: int = 200) -> dict:
    """Low-FAR figures from every pair of photos of the validation and test identities.

    FAR 1e-3 from 3,000 impostor pairs rests on 3 accepted pairs; all pairs of 60 identities
    are ~700,000, so the FAR thresholds (chosen on validation), TAR at FAR 1e-3 and 1e-4
    with a 95 % identity-bootstrap interval, and the impostor tail that sets the identify
    threshold (app/domain/open_set.py) rest on hundreds of accepted pairs.
    """
    from app.domain.open_set import ImpostorTail

    pairs = {}
    for name in ("val", "test"):
        sel = usable & np.isin(identities, split[name])
        pairs[name] = metrics.all_pairs(emb[sel], identities[sel])
    val = pairs["val"]
    thresholds = {far_key(f): round(metrics.threshold_at_far(val.distances, val.same, f), 6) for f in FARS}
    report = {}
    for name, p in pairs.items():
        at = {}
        for key, t in thresholds.items():
            at[f"threshold_far_{key}"] = {"threshold": t, "far": round(float(np.mean(p.impostor <= t)), 7),
                                          "tar": round(float(np.mean(p.distances[p.same] <= t)), 6)}
        report[name] = {
            "identities": int(len(np.unique(np.r_[p.id_a, p.id_b]))),
            "genuine_pairs": int(p.same.sum()), "impostor_pairs": int((~p.same).sum()),
            "tar_at_far": metrics.tar_at_far_bootstrap(p, FARS, n_boot=n_boot, seed=0),
            "bootstrap": f"{n_boot} resamples of identities, 95 % percentile interval",
            **at,
        }
    imp = ~val.same
    tail = {"split": "val", "identities": report["val"]["identities"],
            "quantiles": "one-sided 99 % lower bound of each quantile over 200 bootstrap resamples "
                         "of the identities (app/domain/open_set.py: ImpostorTail.from_distances)",
            **ImpostorTail.from_distances(val.impostor, val.id_a[imp], val.id_b[imp]).to_dict()}
    return {"thresholds": {f"threshold_far_{k}": v for k, v in thresholds.items()},
            "impostor_tail": tail, "all_pairs": report}


def apply_all_pairs(meta: dict, stats: dict) -> dict:
    """Write the all-pairs statistics into an artefact's metadata (FAR thresholds, tail, metrics)."""
    meta.update(stats["thresholds"])
    meta["impostor_tail"] = stats["impostor_tail"]
    meta.setdefault("threshold_source", {})["far_thresholds"] = (
        f"all {stats['all_pairs']['val']['impostor_pairs']:,} impostor pairs of the "
        f"{stats['all_pairs']['val']['identities']} validation identities")
    for name, report in stats["all_pairs"].items():
        meta.setdefault("metrics", {}).setdefault(name, {})["all_pairs"] = report
    return meta


def retune_all_pairs(folder: Path, data_dir: str | None, seed: int) -> dict:
    """The all-pairs statistics of an existing artefact (base or with a head), with the current
    detector, written into its metadata.json; the max-accuracy threshold and the balanced-pair
    metrics are left as they are."""
    from app.inference.artifacts import load_artifact
    from app.inference.registry import build_embedder

    artifact = load_artifact(folder)
    celeba = data.load_celeba(data_dir)
    det = data.detect_all(celeba)
    split = data.split_identities(celeba.identities, seed)
    need = det.found & np.isin(celeba.identities, np.r_[split["val"], split["test"]])
    emb = data.embed_all(build_embedder(artifact), data.aligned_faces(celeba, det, artifact.alignment),
                         need)
    stats = all_pairs_statistics(emb, celeba.identities, need, split)
    meta = apply_all_pairs(copy.deepcopy(artifact.metadata), stats)
    meta["all_pairs_provenance"] = provenance()
    write_metadata(folder, meta)
    return meta
