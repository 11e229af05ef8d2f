"""Weight files that PyPI wheels ship, found through importlib.metadata: the packages
themselves are never imported (some cannot be, some would run code we do not need)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path


def installed_file(distribution: str, relative_path: str, pin: str = "") -> Path:
    """Path of `relative_path` inside the installed `distribution`; a clear error if absent."""
    hint = f"pip install {pin or distribution}"
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(f"{relative_path} comes from the {distribution} wheel: {hint}") from None
    for f in dist.files or ():
        if str(f) == relative_path:
            return Path(dist.locate_file(f))
    raise FileNotFoundError(f"{relative_path} not found in the installed {distribution}: {hint}")
