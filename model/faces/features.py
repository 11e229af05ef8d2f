"""Frozen-graph features of a face set (and of its mirror images), cached under var/cache.

Where the base is frozen, fine-tuning trains on these instead of images, so an epoch
costs a head's forward pass, and flip augmentation costs nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model.common import paths
from model.faces.faceset import FaceSet


def faces_key(faces: np.ndarray) -> str:
    return hashlib.sha256(faces.tobytes()).hexdigest()[:12]


def base_features(fs: FaceSet, tensors: list[str], flip: bool, cache: Path | None = None,
                  batch: int = 32) -> dict[str, np.ndarray]:
    """Frozen-graph tensors for every usable face (mirrored faces when `flip`), cached.

    Returns {tensor name: (N, ...) float32}; rows of unusable faces are zero.
    """
    from app.inference.backbones.facenet.graph import graph_sha256, load_graph_function
    from app.inference.layers import prewhiten

    key = f"{faces_key(fs.faces)}_{graph_sha256()[:8]}_{'flip' if flip else 'orig'}"
    files = {t: paths.cache_dir(cache) / f"facenet_{t.replace('/', '.').replace(':', '')}_{key}.npy"
             for t in tensors}
    missing = [t for t in tensors if not files[t].exists()]
    if missing:
        fn = load_graph_function(missing)
        idx = np.flatnonzero(fs.usable)
        out = {t: None for t in missing}
        for s in tqdm(range(0, len(idx), batch), desc=f"base features ({'flipped' if flip else 'faces'})",
                      unit="batch"):
            chunk = fs.faces[idx[s : s + batch]]
            if flip:
                chunk = chunk[:, :, ::-1]
            values = fn(prewhiten(chunk))
            for t, v in zip(missing, values):
                if out[t] is None:
                    out[t] = np.zeros((len(fs.faces), *v.shape[1:]), np.float32)
                out[t][idx[s : s + batch]] = v.numpy()
        for t in missing:
            np.save(files[t], out[t])
    return {t: np.load(files[t], mmap_mode="r") for t in tensors}


def port_features(name: str, build_model, weights_sha256: str, faces: np.ndarray, usable: np.ndarray,
                  flip: bool, cache: Path | None = None, batch: int = 8) -> np.ndarray:
    """A frozen Keras port's output for every usable face (mirrored when `flip`), cached by the
    content of the faces and the weight file (`name`_<faces>_<weights>_orig|flip.npy).
    Rows of unusable faces are zero."""
    key = f"{faces_key(faces)}_{weights_sha256[:8]}_{'flip' if flip else 'orig'}"
    path = paths.cache_dir(cache) / f"{name}_{key}.npy"
    if path.exists():
        return np.load(path, mmap_mode="r")
    model = build_model()
    out = np.zeros((len(faces), model.output_shape[-1]), np.float32)
    idx = np.flatnonzero(usable)
    for s in tqdm(range(0, len(idx), batch), desc=f"{name} ({'flipped' if flip else 'faces'})",
                  unit="batch", mininterval=5):
        chunk = faces[idx[s : s + batch]]
        out[idx[s : s + batch]] = model.predict_on_batch((chunk[:, :, ::-1] if flip else chunk).astype(np.float32))
    np.save(path, out)
    return out
