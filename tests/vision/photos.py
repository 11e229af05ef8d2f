"""Real photos from ../shared/data, re-framed the way users' photos differ: the face
enlarged until it fills the frame, shrunk into a large photo, rotated, a second real
face pasted into the background. Nothing here draws a face."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tests.conftest import DATA_DIR

CELEBA = DATA_DIR / "celeba_subset" / "images"
# frontal portraits whose face is large in the original (box >= 110 px)
PORTRAITS = ("yalefaces/subject01.normal.png", "yalefaces/subject07.happy.png",
             "celeba_subset/images/186017.jpg", "celeba_subset/images/190282.jpg")


def rgb_of(relative: str) -> np.ndarray:
    from app.vision.decode import decode_image

    return decode_image((DATA_DIR / relative).read_bytes())


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def resized(rgb: np.ndarray, scale: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BICUBIC if scale > 1 else Image.LANCZOS))


def fill_frame(rgb: np.ndarray, box, fill: float, long_side: int, aspect: float = 4 / 3):
    """A 3:4 portrait in which the face box is `fill` of the width, scaled to `long_side` px.
    Where the frame goes past the photo, its edge pixels are repeated. Returns the image and
    the face box in it."""
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    width = w / fill
    height = width * aspect
    pad = int(max(width, height)) + 2
    padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    x0, y0 = int(round(cx - width / 2)) + pad, int(round(cy - height / 2)) + pad
    crop = padded[y0:y0 + int(round(height)), x0:x0 + int(round(width))]
    s = long_side / max(crop.shape[:2])
    out = resized(crop, s)
    return out, ((x + pad - x0) * s, (y + pad - y0) * s, w * s, h * s)


def paste(background: np.ndarray, photo: np.ndarray, at: tuple[int, int]) -> np.ndarray:
    out = background.copy()
    x, y = at
    h, w = photo.shape[:2]
    out[y:y + h, x:x + w] = photo[: out.shape[0] - y, : out.shape[1] - x]
    return out


def rotated(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """Rotated in the image plane about the centre, the canvas grown to keep every pixel; the
    corners are filled with the photo's mean colour."""
    fill = tuple(int(v) for v in rgb.reshape(-1, 3).mean(0))
    return np.asarray(Image.fromarray(rgb).rotate(degrees, Image.BICUBIC, expand=True, fillcolor=fill))
