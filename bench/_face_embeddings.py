"""Embeddings of every CelebA-subset photo through the service's own pipeline (decode,
the service's detector, alignment, the artefact's embedder), cached under var/cache.

The cache key names the detector class, the artefact's version, the SHA-256 of its embedder
spec and head file, and the file list: embeddings of two detectors or two artefacts never mix.

    python bench/_face_embeddings.py [--model VERSION]     # fills the cache (~12 min on 2 cores)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _detector():
    """The detector the service builds at start-up, with its default settings."""
    from app.core.config import Settings
    from app.vision import detect

    s = Settings(_env_file=None)
    return detect.YuNetDetector(input_side=s.detect_max_side)


def pipeline(settings, alignment, detector=None):
    """The service's face pipeline for `alignment`: its detector, decode limits and enroll rules,
    from `settings`."""
    from app.vision.decode import DecodeLimits
    from app.vision.pipeline import EnrollRules, FacePipeline

    limits = DecodeLimits(settings.max_upload_bytes, settings.max_pixels, settings.min_image_side)
    rules = EnrollRules(settings.min_face_size, settings.enroll_min_score, settings.enroll_dominance_ratio)
    return FacePipeline(detector or _detector(), limits, alignment, rules)


TRAIN_PHOTOS_PER_IDENTITY = 8  # training identities only make up gallery size: fewer photos


def selection(celeba, split: dict[str, np.ndarray]) -> np.ndarray:
    """Photo indices to embed, validation identities first (they carry the impostor tail), then
    test, then training identities (at most TRAIN_PHOTOS_PER_IDENTITY photos each)."""
    ids = celeba.identities
    train = [np.flatnonzero(ids == i)[:TRAIN_PHOTOS_PER_IDENTITY] for i in split["train"]]
    return np.concatenate([np.flatnonzero(np.isin(ids, split["val"])),
                           np.flatnonzero(np.isin(ids, split["test"])), *train])


def celeba_embeddings(model: str | None = None, data_dir: str | None = None) -> dict[str, np.ndarray]:
    """{"embeddings" (n, d), "identities" (n,), "found" (n,), "faces" (n,), "score" (n,), "size" (n,)}
    for the photos of `selection` (other rows, and rows without a face, are zero, found False)."""
    from app.core.config import Settings
    from app.domain.errors import DomainError
    from app.inference.artifacts import load_artifact
    from app.inference.registry import build_embedder
    from model.common import paths
    from model.faces import data as facedata

    settings = Settings(_env_file=None, **({"model": model} if model else {}))
    artifact = load_artifact(settings.model_dir())
    celeba = facedata.load_celeba(data_dir)
    detector = _detector()
    # what makes the embeddings: the embedder's spec and its head file (not the thresholds,
    # which re-tuning rewrites in the same metadata.json)
    spec = json.dumps(artifact.metadata["embedder"], sort_keys=True).encode()
    head_name = artifact.embedder.head
    head_bytes = (artifact.path / head_name).read_bytes() if head_name else b""
    meta_sha = hashlib.sha256(spec + head_bytes).hexdigest()
    todo = selection(celeba, facedata.split_identities(celeba.identities, 0))
    key = hashlib.sha256("\n".join([type(detector).__name__, artifact.model_version, meta_sha,
                                    *celeba.files, *map(str, todo)]).encode()).hexdigest()[:12]
    cache = paths.cache_dir() / f"fpir_celeba_{type(detector).__name__}_{artifact.model_version}_{key}.npz"
    if cache.exists():
        return dict(np.load(cache))
    faces = pipeline(settings, artifact.alignment, detector)
    n = len(celeba.files)
    partial = cache.with_suffix(".partial.npz")  # detection is slow: resume after an interruption
    if partial.exists():
        z = np.load(partial)
        aligned, found, faces, score, size, done = (z[k].copy() for k in
                                                    ("aligned", "found", "faces", "score", "size", "done"))
    else:
        side = artifact.alignment.size  # the artefact's aligned-face side (FaceNet 160, SFace 112)
        aligned = np.zeros((n, side, side, 3), np.uint8)
        found, faces, score, size = np.zeros(n, bool), np.zeros(n, np.int32), np.zeros(n), np.zeros(n)
        done = np.zeros(n, bool)

    def extract(i: int) -> None:
        try:
            s = faces.extract(celeba.path(i).read_bytes(), enroll=False)
        except DomainError:
            return
        aligned[i], found[i], faces[i] = s.aligned, True, s.faces_detected
        score[i], size[i] = s.face.score, s.face.size

    t0 = time.perf_counter()
    left = [int(i) for i in todo if not done[i]]
    with ThreadPoolExecutor(2) as pool:
        for k, i in enumerate(pool.map(lambda i: (extract(i), i)[1], left)):
            done[i] = True
            if k % 300 == 299 or k == len(left) - 1:
                print(f"  detect {int(done.sum())}/{len(todo)} ({time.perf_counter() - t0:.0f} s)", flush=True)
                np.savez(partial, aligned=aligned, found=found, faces=faces, score=score, size=size, done=done)
    embedder = build_embedder(artifact)
    emb = np.zeros((n, artifact.embedding_dim), np.float32)
    idx = np.flatnonzero(found)
    for s in range(0, len(idx), 32):
        emb[idx[s:s + 32]] = embedder.embed(aligned[idx[s:s + 32]])
    print(f"  {found.sum()}/{n} faces embedded ({time.perf_counter() - t0:.0f} s)", flush=True)
    out = {"embeddings": emb, "identities": celeba.identities, "found": found, "faces": faces,
           "score": score, "size": size}
    np.savez(cache, **out)
    partial.unlink(missing_ok=True)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None)
    a = p.parse_args()
    z = celeba_embeddings(a.model)
    print(f"{int(z['found'].sum())} faces, {len(np.unique(z['identities']))} identities")
