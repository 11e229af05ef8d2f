"""Atomic writes for run folders: a checkpoint or state file is either the old one or the new
one, never half written, so a run killed mid-save still resumes (both trainers use this)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path


def save_atomic(path: Path, save: Callable[[str], object]) -> Path:
    """`save(tmp)` into a temporary file beside `path`, then rename it over `path`.

    The temporary name keeps the file's suffixes (Keras picks the format from
    `.keras` / `.weights.h5`), e.g. `model.save` or `model.save_weights`.
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    save(str(tmp))
    os.replace(tmp, path)
    return path


def write_json_atomic(path: Path, obj, indent: int = 2) -> Path:
    """JSON of `obj` into `path`, atomically."""
    return save_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=indent)))
