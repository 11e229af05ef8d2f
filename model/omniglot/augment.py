"""Koch et al.'s affine distortions of Omniglot images (numpy only, seeded)."""

from __future__ import annotations

import numpy as np

from model.omniglot.data import ORIGINAL_SIZE


# Koch et al. (2015), section 4.1: T = (theta, rho_x, rho_y, s_x, s_y, t_x, t_y).
ROTATION_DEG = 10.0
SHEAR = 0.3
SCALE = (0.8, 1.2)
TRANSLATION_PX = 2.0  # at 105 x 105; scaled with the image size
COMPONENT_PROB = 0.5


def sample_affine_params(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 7) parameters [theta_deg, rho_x, rho_y, s_x, s_y, t_x, t_y] in 105-px units.

    Each of the seven components is drawn from its range with probability 0.5 and
    otherwise left at identity (0 or 1), as in the paper.
    """
    low = np.array([-ROTATION_DEG, -SHEAR, -SHEAR, SCALE[0], SCALE[0], -TRANSLATION_PX, -TRANSLATION_PX])
    high = np.array([ROTATION_DEG, SHEAR, SHEAR, SCALE[1], SCALE[1], TRANSLATION_PX, TRANSLATION_PX])
    identity = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    drawn = rng.uniform(low, high, size=(n, 7))
    on = rng.random((n, 7)) < COMPONENT_PROB
    return np.where(on, drawn, identity)


def affine_matrices(params: np.ndarray, size: int) -> np.ndarray:
    """(n, 2, 3) forward maps in pixel coordinates, about the image centre.

    A = R(theta) @ Shear(rho_x, rho_y) @ Scale(s_x, s_y); x' = A (x - c) + c + t.
    """
    th = np.deg2rad(params[:, 0])
    cos, sin = np.cos(th), np.sin(th)
    n = len(params)
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    shear = np.broadcast_to(np.eye(2), (n, 2, 2)).copy()
    shear[:, 0, 1], shear[:, 1, 0] = params[:, 1], params[:, 2]
    scale = np.zeros((n, 2, 2))
    scale[:, 0, 0], scale[:, 1, 1] = params[:, 3], params[:, 4]
    a = rot @ shear @ scale
    c = (size - 1) / 2.0
    t = params[:, 5:7] * (size / ORIGINAL_SIZE)
    offset = c + t - (a @ np.array([c, c]))
    return np.concatenate([a, offset[:, :, None]], axis=2)


def warp_affine(images: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Bilinear warp of a batch (n, H, W) float by forward maps (n, 2, 3); zero fill.

    Vectorised over the batch with one gather per corner: the inverse map sends each
    output pixel back into the source image.
    """
    n, h, w = images.shape
    a = matrices[:, :, :2]
    inv = np.linalg.inv(a)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    out_xy = np.stack([xs.ravel(), ys.ravel()], 0)  # (2, HW) as (x, y)
    src = inv @ (out_xy[None] - matrices[:, :, 2:3])  # (n, 2, HW)
    sx, sy = src[:, 0], src[:, 1]
    x0, y0 = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    fx, fy = (sx - x0).astype(np.float32), (sy - y0).astype(np.float32)
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))  # out-of-range reads hit zeros
    flat = padded.reshape(n, -1)
    pw = w + 2

    def gather(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        yy = np.clip(yy + 1, 0, h + 1)
        xx = np.clip(xx + 1, 0, w + 1)
        return np.take_along_axis(flat, yy * pw + xx, axis=1)

    out = (
        gather(y0, x0) * (1 - fx) * (1 - fy)
        + gather(y0, x0 + 1) * fx * (1 - fy)
        + gather(y0 + 1, x0) * (1 - fx) * fy
        + gather(y0 + 1, x0 + 1) * fx * fy
    )
    return out.reshape(n, h, w).astype(images.dtype, copy=False)


def distort(images: np.ndarray, rng: np.random.Generator, prob: float = 1.0) -> np.ndarray:
    """Apply a fresh random paper-style affine map to a fraction `prob` of a batch."""
    out = images.copy()
    chosen = np.flatnonzero(rng.random(len(images)) < prob)
    if len(chosen):
        mats = affine_matrices(sample_affine_params(len(chosen), rng), images.shape[-1])
        out[chosen] = warp_affine(images[chosen], mats)
    return out
