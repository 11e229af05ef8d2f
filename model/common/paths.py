"""Where the trainers read data and write caches, runs and exports.

The data and cache folders are settings of the service's own settings model
(app/core/config.py: FACEAPI_DATA_DIR, FACEAPI_CACHE_DIR, `.env`), so the trainer and the
service agree on every FACEAPI_* name and on its default.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.core.config import REPO_ROOT, load_settings

RUNS = REPO_ROOT / "runs"
EXPORTS = REPO_ROOT / "var" / "export"
FIGURES = REPO_ROOT / "docs" / "img"


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data sets folder: `path` if given, else the `data_dir` setting."""
    return Path(path) if path else load_settings().data_dir


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The cache folder (created): `path` if given, else the `cache_dir` setting."""
    d = Path(path) if path else load_settings().cache_dir
    d.mkdir(parents=True, exist_ok=True)
    return d
