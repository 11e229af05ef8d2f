"""Modified Hausdorff distance (MHD) on stroke pixels: Lake et al.'s (2015) classical baseline.

As in Lake's `demo_classification` (brendenlake/omniglot, Matlab and Python), an image
becomes the set of its ink pixels' (row, column) coordinates, centred on their mean, and
two images are compared with Dubuisson & Jain's (1994) modified Hausdorff distance

    MHD(A, B) = max( mean_a min_b ||a - b||,  mean_b min_a ||a - b|| ).

Lake's code reports 38.8 % error (61.2 % correct) on his 20 runs with exactly this; it
has no parameters and nothing learned, so it checks the scoring harness itself.

To run through the same harness as every other method (`model.omniglot.evaluate`), the
features of an image are a single number, its id in a `PointClouds` store, and the
store's scorer looks the point clouds up; each cloud keeps a k-d tree, so a pair costs
two nearest-neighbour queries instead of a full distance matrix.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

INK_THRESHOLD = 128  # uint8 images with strokes = 255 (model.omniglot.data's convention)


def ink_points(image: np.ndarray, threshold: int = INK_THRESHOLD) -> np.ndarray:
    """(n, 2) float coordinates of the ink pixels of one uint8 image, centred on their mean."""
    rows, cols = np.nonzero(np.asarray(image) >= threshold)
    if len(rows) == 0:
        raise ValueError("image has no ink pixels; the MHD of an empty point set is undefined")
    pts = np.stack([rows, cols], axis=1).astype(np.float64)
    return pts - pts.mean(axis=0)


def modified_hausdorff(a: np.ndarray, b: np.ndarray) -> float:
    """MHD between two (n, 2) point sets (brute force; the reference for `PointClouds`)."""
    d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    return float(max(d.min(axis=1).mean(), d.min(axis=0).mean()))


class PointClouds:
    """Centred ink-point clouds with their k-d trees, addressed by integer id."""

    def __init__(self, threshold: int = INK_THRESHOLD):
        self.threshold = threshold
        self.points: list[np.ndarray] = []
        self.trees: list[cKDTree] = []

    def featurize(self, images_u8: np.ndarray) -> np.ndarray:
        """Register (n, H, W) uint8 images; their features are their ids, shape (n, 1)."""
        start = len(self.points)
        for im in images_u8:
            pts = ink_points(im, self.threshold)
            self.points.append(pts)
            self.trees.append(cKDTree(pts))
        return np.arange(start, len(self.points), dtype=np.float64)[:, None]

    def distance(self, i: int, j: int) -> float:
        mean_i = self.trees[j].query(self.points[i])[0].mean()  # each point of i to its nearest in j
        mean_j = self.trees[i].query(self.points[j])[0].mean()
        return float(max(mean_i, mean_j))

    def pair_distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Row-wise MHD of two (n, 1) id arrays (the harness's verification distance)."""
        return np.array([self.distance(int(i), int(j)) for i, j in zip(a[:, 0], b[:, 0], strict=True)])

    def score(self, q: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Harness scorer: (T, 1) query ids, (T, N, 1) support ids -> (T, N) scores = -MHD."""
        t, n, _ = s.shape
        out = np.empty((t, n))
        for r in range(t):
            for c in range(n):
                out[r, c] = -self.distance(int(q[r, 0]), int(s[r, c, 0]))
        return out
