"""An RGB array as a PNG in base64: how the API shows the aligned face the model saw."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image


def png_base64(rgb: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")
