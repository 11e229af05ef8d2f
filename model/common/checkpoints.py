"""Atomic writes for run folders: a checkpoint or state file is either the old one or the new
one, never half written, so a run killed mid-save still resumes (both trainers use this)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def save_atomic(path: Path, save: Callable[[str], object]) -> Path:
    """`save(tmp)` into a temporary file beside `path`, then rename it over `path`.

    The temporary name keeps the file's suffixes (Keras picks the format from
    `.keras` / `.weights.h5`), e.g. `model.save` or `model.save_weights`. It is unique, so
    two processes writing the same file (two trainings filling one cache) cannot collide.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=f"-{path.name}")
    os.close(fd)
    try:
        save(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def write_json_atomic(path: Path, obj, indent: int = 2) -> Path:
    """JSON of `obj` into `path`, atomically."""
    return save_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=indent)))
