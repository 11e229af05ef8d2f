"""Evaluation of a face embedder on held-out data, shared by every export (model/faces/export.py,
fusion.py, sface.py) and the candidates study (candidates.py).

The embedder is the service's own class for the artefact (what is measured is what is
served). CelebA: every usable photo of the validation and test identities; thresholds are
tuned on validation pairs, then test pairs and Yale (all pairs) are scored with them, with
the all-pairs statistics (TAR at low FAR with confidence intervals).
"""

from __future__ import annotations

import time

import numpy as np

from model.faces import data as facedata
from model.faces.splits import all_pairs, make_splits, test_pairs
from model.faces.threshold import all_pairs_statistics, tune_threshold


def embed_indices(emb, faces: np.ndarray, idx: np.ndarray, feats=None, batch: int = 64):
    """Embeddings of faces[idx] (other rows zero); `feats` are cached base_output features if given."""
    out = None
    for s in range(0, len(idx), batch):
        chunk = idx[s : s + batch]
        e = emb.embed_features(np.asarray(feats[chunk])) if feats is not None else emb.embed(faces[chunk])
        if out is None:
            out = np.zeros((len(faces), e.shape[1]), np.float32)
        out[chunk] = e
    return out


def time_per_face(emb, faces: np.ndarray, batch: int = 32, repeats: int = 3) -> float:
    """Median milliseconds per face for a batch of `batch` aligned faces (base + head)."""
    x = faces[:batch]
    emb.embed(x)  # warm-up: graph and head tracing
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        emb.embed(x)
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times)) / len(x)


def evaluate_variant(emb, cfg, celeba, yale, celeba_feats=None) -> tuple[dict, dict, dict]:
    """(tuned thresholds + metrics, distances per split, labels per split) on val, test, Yale."""
    idx = np.flatnonzero(evaluation_faces(celeba, cfg))
    e_celeba = embed_indices(emb, celeba.faces, idx, celeba_feats)
    e_yale = embed_indices(emb, yale.faces, np.flatnonzero(yale.usable))
    return evaluate_embeddings(e_celeba, e_yale, cfg, celeba, yale)


def evaluation_faces(celeba, cfg) -> np.ndarray:
    """Mask of the CelebA faces the evaluation embeds: every usable photo of the validation and
    test identities (the low-FAR figures use all their pairs)."""
    ids = facedata.split_identities(celeba.identities, cfg.split_seed, tuple(cfg.fractions))
    return celeba.usable & np.isin(celeba.identities, np.r_[ids["val"], ids["test"]])


def evaluate_embeddings(e_celeba: np.ndarray, e_yale: np.ndarray, cfg, celeba, yale) -> tuple[dict, dict, dict]:
    """evaluate_variant on embeddings already computed (rows of evaluation_faces; others unused)."""
    splits = make_splits(celeba, cfg)
    pairs = {"val": splits.val_pairs, "test": test_pairs(celeba, cfg),
             "yale": all_pairs(yale.identities, yale.usable)}
    ids = facedata.split_identities(celeba.identities, cfg.split_seed, tuple(cfg.fractions))
    distances = {k: facedata.pair_distances(e_yale if k == "yale" else e_celeba, p) for k, p in pairs.items()}
    labels = {k: p.same for k, p in pairs.items()}
    tuned = tune_threshold(distances, labels)
    tuned["all_pairs"] = all_pairs_statistics(e_celeba, celeba.identities, evaluation_faces(celeba, cfg), ids)
    return tuned, distances, labels
