"""The alignment template: where the detector's 5 landmarks sit in the framing the base was
trained with (the face box grown by a margin on each side, resized to 160x160), and the
margin that serves the base best on the validation identities."""

from __future__ import annotations

import numpy as np

from model.common import metrics
from model.faces import data

SIZE = 160


def template_at(det: data.Detections, margin: float, size: int = SIZE) -> np.ndarray:
    """5x2 template: median landmark position of the detected faces inside their box grown by
    `margin` (fraction of the box) per side, scaled to `size`."""
    ok = det.found
    boxes, marks = det.boxes[ok], det.landmarks[ok]
    x, y, w, h = boxes.T
    x0, y0 = x - w * margin, y - h * margin
    side_w, side_h = w * (1 + 2 * margin), h * (1 + 2 * margin)
    rel = (marks - np.stack([x0, y0], 1)[:, None, :]) / np.stack([side_w, side_h], 1)[:, None, :]
    return np.median(rel, axis=0) * size


def measure_template(data_dir: str | None = None, margin: float = 0.16):
    """(faces used, AlignmentTemplate) from the YuNet detections of the whole CelebA subset."""
    from app.vision.align import AlignmentTemplate

    det = data.detect_all(data.load_celeba(data_dir))
    source = f"python -m model faces template --margin {margin}"
    return int(det.found.sum()), AlignmentTemplate(template_at(det, margin), SIZE, source)


def sweep_margins(margins: list[float], data_dir: str | None = None, seed: int = 0,
                  n_pairs: int = 3000) -> list[dict]:
    """Base-model accuracy and TAR@FAR=1e-3 on balanced validation pairs for each margin's template
    (the validation identities only: the test identities stay unseen)."""
    from app.inference.backbones.facenet.graph import FaceNetGraphEmbedder
    from app.vision.align import AlignmentTemplate

    celeba = data.load_celeba(data_dir)
    det = data.detect_all(celeba)
    split = data.split_identities(celeba.identities, seed)
    pairs = data.balanced_pairs(celeba.identities, det.found, split["val"], n_pairs, seed)
    need = np.zeros(len(celeba.files), bool)
    need[np.r_[pairs.a, pairs.b]] = True
    only = data.Detections(np.where(need, det.n_faces, 0), det.boxes, det.scores, det.landmarks)
    embedder = FaceNetGraphEmbedder("template-sweep")
    rows = []
    for margin in margins:
        template = AlignmentTemplate(template_at(det, margin), SIZE)
        emb = data.embed_all(embedder, data.aligned_faces(celeba, only, template), need)
        dist = data.pair_distances(emb, pairs)
        _, acc = metrics.best_accuracy_threshold(dist, pairs.same)
        rows.append({"margin": margin, "val_accuracy": round(acc, 4),
                     "val_tar_at_far_1e3": round(metrics.tar_at_far(dist, pairs.same, 1e-3), 4),
                     "val_roc_auc": round(metrics.roc_auc(dist, pairs.same), 4),
                     "pairs": len(pairs.same)})
    return rows
