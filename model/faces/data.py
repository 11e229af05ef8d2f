"""The CelebA face subset: identity splits, balanced pairs, and aligned faces.

Faces go through the service's own code (app.vision: decode, YuNet detection,
landmark alignment), so what the trainer and the threshold see is exactly what
the service will see. Detection is slow (~60 ms an image), so its results are
cached under ``var/cache``; alignment is cheap and is redone from the cache.

The shipped pair lists are biased (every different pair uses one image), so pairs
are built here from ``identity_CelebA.txt``, with disjoint identities per split.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model.common.paths import cache_dir, data_dir
from model.faces.artifact import ARTIFACTS, BASE_VERSION

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class CelebA:
    root: Path
    files: tuple[str, ...]
    identities: np.ndarray  # CelebA identity id per file

    def path(self, i: int) -> Path:
        return self.root / "images" / self.files[i]

    def paths(self) -> list[Path]:
        return [self.path(i) for i in range(len(self.files))]


def load_celeba(path: str | os.PathLike | None = None) -> CelebA:
    root = data_dir(path) / "celeba_subset"
    lines = (root / "identity_CelebA.txt").read_text().split("\n")[1:]
    rows = [line.split() for line in lines if line.strip()]
    rows.sort()
    return CelebA(root, tuple(r[0] for r in rows), np.array([int(r[1]) for r in rows]))


def split_identities(
    identities: np.ndarray, seed: int = 0, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
) -> dict[str, np.ndarray]:
    """Disjoint, seeded identity sets {"train", "val", "test"}."""
    ids = np.unique(identities)
    order = np.random.default_rng(seed).permutation(ids)
    n_train = round(fractions[0] * len(ids))
    n_val = round(fractions[1] * len(ids))
    return {
        "train": np.sort(order[:n_train]),
        "val": np.sort(order[n_train : n_train + n_val]),
        "test": np.sort(order[n_train + n_val :]),
    }


@dataclass(frozen=True)
class Pairs:
    a: np.ndarray  # image index
    b: np.ndarray
    same: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.a)


def balanced_pairs(
    identities: np.ndarray, usable: np.ndarray, allowed_ids: np.ndarray, n_same: int, seed: int
) -> Pairs:
    """n_same same-identity pairs and as many different-identity pairs, among usable images
    of the allowed identities; no pair repeats, no image is paired with itself."""
    rng = np.random.default_rng(seed)
    idx = np.flatnonzero(usable & np.isin(identities, allowed_ids))
    by_id: dict[int, np.ndarray] = {}
    for i in idx:
        by_id.setdefault(int(identities[i]), []).append(i)  # type: ignore[union-attr]
    all_same = [(a, b) for members in by_id.values() for k, a in enumerate(members) for b in members[k + 1 :]]
    if len(all_same) < n_same:
        n_same = len(all_same)
    pick = rng.choice(len(all_same), size=n_same, replace=False)
    same = np.array([all_same[k] for k in pick], dtype=np.int64).reshape(-1, 2)
    seen: set[tuple[int, int]] = set()
    diff: list[tuple[int, int]] = []
    while len(diff) < n_same:
        a, b = rng.choice(idx, size=2, replace=False)
        key = (min(a, b), max(a, b))
        if identities[a] != identities[b] and key not in seen:
            seen.add(key)
            diff.append(key)
    both = np.vstack([same, np.array(diff, dtype=np.int64).reshape(-1, 2)])
    labels = np.r_[np.ones(len(same), bool), np.zeros(len(diff), bool)]
    order = rng.permutation(len(both))
    return Pairs(both[order, 0], both[order, 1], labels[order])


@dataclass(frozen=True)
class Detections:
    """Per image: faces found, and the largest face's box, score and landmarks (NaN if none)."""

    n_faces: np.ndarray
    boxes: np.ndarray  # (N, 4) x, y, w, h
    scores: np.ndarray
    landmarks: np.ndarray  # (N, 5, 2)

    @property
    def found(self) -> np.ndarray:
        return self.n_faces > 0


def detector_key() -> str:
    """Identifies the service's detector: a change of its code or weights invalidates caches."""
    import app.vision.detect as detect

    h = hashlib.sha256(Path(detect.__file__).read_bytes())
    h.update(detect.yunet_model_path().read_bytes())
    return h.hexdigest()[:12]


def detect_images(name: str, images: list[Path], cache: Path | None = None, workers: int = 2) -> Detections:
    """Run the service's decoder and detector (default settings) on every image (CelebA, Yale),
    cached under `<name>_detections_<hash of the file names>_yunet<detector_key()>.npz`."""
    from app.vision.decode import decode_image
    from app.vision.detect import YuNetDetector

    key = hashlib.sha256("\n".join(p.name for p in images).encode()).hexdigest()[:12]
    path = cache_dir(cache) / f"{name}_detections_{key}_yunet{detector_key()}.npz"
    if path.exists():
        z = np.load(path)
        return Detections(z["n_faces"], z["boxes"], z["scores"], z["landmarks"])
    detector = YuNetDetector()  # thread-safe: one OpenCV net per thread
    n = len(images)
    out = Detections(np.zeros(n, np.int32), np.full((n, 4), np.nan), np.full(n, np.nan),
                     np.full((n, 5, 2), np.nan))

    def work(i: int) -> None:
        faces = detector.detect(decode_image(images[i].read_bytes()))
        out.n_faces[i] = len(faces)
        if faces:
            out.boxes[i], out.scores[i], out.landmarks[i] = faces[0].box, faces[0].score, faces[0].landmarks

    with ThreadPoolExecutor(workers) as pool:
        list(tqdm(pool.map(work, range(n)), total=n, desc=f"detect {name}", unit="img"))
    np.savez(path, n_faces=out.n_faces, boxes=out.boxes, scores=out.scores, landmarks=out.landmarks)
    return out


def default_template():
    """The alignment the FaceNet artefacts use (the base artefact's, measured on YuNet landmarks
    by `python -m model faces template`)."""
    from app.inference.artifacts import load_artifact

    return load_artifact(ARTIFACTS / BASE_VERSION).alignment


def align_images(images: list[Path], detections: Detections, template=None) -> np.ndarray:
    """(N, size, size, 3) uint8 faces aligned by the service's code on `template` (default:
    default_template()); zeros where no face was found."""
    from app.vision.align import align_face
    from app.vision.decode import decode_image

    template = template or default_template()
    faces = np.zeros((len(images), template.size, template.size, 3), np.uint8)
    for i in tqdm(np.flatnonzero(detections.found), desc="align", unit="img", mininterval=5):
        faces[i] = align_face(decode_image(images[i].read_bytes()), detections.landmarks[i], template)
    return faces


def detect_all(celeba: CelebA, cache: Path | None = None, workers: int = 2) -> Detections:
    return detect_images("celeba", celeba.paths(), cache, workers)


def aligned_faces(celeba: CelebA, detections: Detections, template=None) -> np.ndarray:
    return align_images(celeba.paths(), detections, template)


def embed_all(embedder, faces: np.ndarray, usable: np.ndarray, batch: int = 64) -> np.ndarray:
    """Embeddings of the usable faces (rows of other faces stay zero)."""
    out = np.zeros((len(faces), embedder.embedding_dim), np.float32)
    idx = np.flatnonzero(usable)
    for s in tqdm(range(0, len(idx), batch), desc=f"embed ({embedder.model_version})", unit="batch"):
        chunk = idx[s : s + batch]
        out[chunk] = embedder.embed(faces[chunk])
    return out


def pair_distances(embeddings: np.ndarray, pairs: Pairs) -> np.ndarray:
    """Cosine distance 1 - <a, b> of L2-normalised embeddings (the service's metric)."""
    return 1.0 - np.sum(embeddings[pairs.a] * embeddings[pairs.b], axis=1)
