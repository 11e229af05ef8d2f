"""Identity splits and the evaluation pairs of a face set (the same seeds everywhere)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.faces import data as facedata
from model.faces.config import FaceTuneConfig
from model.faces.faceset import FaceSet


@dataclass(frozen=True)
class Splits:
    ids: dict[str, np.ndarray]  # identities per split
    train_idx: np.ndarray  # usable training faces
    val_pairs: facedata.Pairs


def make_splits(fs: FaceSet, cfg: FaceTuneConfig) -> Splits:
    ids = facedata.split_identities(fs.identities, cfg.split_seed, tuple(cfg.fractions))
    train_ids = ids["train"][: cfg.max_train_identities] if cfg.max_train_identities else ids["train"]
    ids = {**ids, "train": train_ids}
    idx = []
    for i in train_ids:
        members = np.flatnonzero(fs.usable & (fs.identities == i))
        idx.extend(members[: cfg.max_images_per_identity] if cfg.max_images_per_identity else members)
    # same pair seeds as `faces tune-threshold` (val: split_seed, test: split_seed + 1)
    val = facedata.balanced_pairs(fs.identities, fs.usable, ids["val"], cfg.eval_pairs, cfg.split_seed)
    return Splits(ids, np.array(sorted(idx), np.int64), val)


def test_pairs(fs: FaceSet, cfg: FaceTuneConfig) -> facedata.Pairs:
    ids = facedata.split_identities(fs.identities, cfg.split_seed, tuple(cfg.fractions))
    return facedata.balanced_pairs(fs.identities, fs.usable, ids["test"], cfg.eval_pairs, cfg.split_seed + 1)


def all_pairs(identities: np.ndarray, usable: np.ndarray) -> facedata.Pairs:
    """Every unordered pair of usable faces (used for Yale)."""
    idx = np.flatnonzero(usable)
    a, b = np.triu_indices(len(idx), k=1)
    return facedata.Pairs(idx[a], idx[b], identities[idx[a]] == identities[idx[b]])
