"""Pixel augmentation of aligned faces for end-to-end fine-tuning (base_stage="stem")."""

from __future__ import annotations

import numpy as np

from model.faces.config import FaceTuneConfig


def augment_images(faces: np.ndarray, rng: np.random.Generator, cfg: FaceTuneConfig) -> np.ndarray:
    """Flip, small affine (rotation +-8 deg, scale +-5 %, shift +-4 px) and colour jitter (+-20 %)."""
    from PIL import Image

    out = np.empty_like(faces)
    size = faces.shape[1]
    for k, face in enumerate(faces):
        img = face[:, ::-1] if cfg.flip and rng.random() < 0.5 else face
        if cfg.affine:
            angle = np.deg2rad(rng.uniform(-8, 8))
            scale = rng.uniform(0.95, 1.05)
            tx, ty = rng.uniform(-4, 4, size=2)
            c = (size - 1) / 2
            cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
            # inverse map (output -> input) about the centre, as Pillow wants
            coeffs = (cos, sin, c - cos * (c + tx) - sin * (c + ty), -sin, cos, c + sin * (c + tx) - cos * (c + ty))
            img = np.asarray(Image.fromarray(np.ascontiguousarray(img)).transform(
                (size, size), Image.AFFINE, data=coeffs, resample=Image.BILINEAR))
        if cfg.color_jitter:
            x = img.astype(np.float32)
            gray = x.mean(axis=2, keepdims=True)
            x = gray + (x - gray) * rng.uniform(0.8, 1.2)  # saturation
            x = (x - x.mean()) * rng.uniform(0.8, 1.2) + x.mean()  # contrast
            x = x * rng.uniform(0.8, 1.2)  # brightness
            img = np.clip(x, 0, 255).astype(np.uint8)
        out[k] = img
    return out
