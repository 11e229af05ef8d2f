"""The alignment template: where MTCNN's 5 landmarks sit in the framing the base was trained with."""

from __future__ import annotations

import numpy as np

from model.faces import data


def measure_template(data_dir: str | None = None, margin: float = 0.16) -> tuple[int, np.ndarray]:
    """(faces used, 5x2 template at 160x160): median landmark position of detected faces inside the
    upstream FaceNet crop (box grown by `margin` per side)."""
    celeba = data.load_celeba(data_dir)
    det = data.detect_all(celeba)
    ok = det.found
    boxes, marks = det.boxes[ok], det.landmarks[ok]
    x, y, w, h = boxes.T
    x0, y0 = x - w * margin, y - h * margin
    side_w, side_h = w * (1 + 2 * margin), h * (1 + 2 * margin)
    rel = (marks - np.stack([x0, y0], 1)[:, None, :]) / np.stack([side_w, side_h], 1)[:, None, :]
    template = np.median(rel, axis=0) * 160
    return int(ok.sum()), template
