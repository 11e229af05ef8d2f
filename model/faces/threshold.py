"""Threshold tuning: the cosine-distance threshold of maximum validation accuracy (and the
FAR = 1e-3 one), with metrics per split; `tune_base_threshold` does it for the plain base."""

from __future__ import annotations

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
    from app.inference.facenet_graph import EMBEDDING_DIM, FaceNetGraphEmbedder, graph_sha256

    celeba = data.load_celeba(data_dir)
    det = data.detect_all(celeba)
    faces = data.aligned_faces(celeba, det)
    embedder = FaceNetGraphEmbedder(version)
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
    write_metadata(out / version, meta)
    return meta
