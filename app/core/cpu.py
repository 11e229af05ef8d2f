"""TensorFlow's x86 wheels need AVX; without it `import tensorflow` dies with SIGILL
and no message. Check first and say so plainly."""

from __future__ import annotations

import platform
import sys
from pathlib import Path


def missing_cpu_features() -> list[str]:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return []
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []  # not Linux: cannot tell, let TensorFlow decide
    line = next((ln for ln in flags.splitlines() if ln.startswith("flags")), "")
    have = set(line.split(":", 1)[-1].split())
    return [f for f in ("avx", "avx2") if f not in have] if have else []


def check_cpu() -> None:
    missing = missing_cpu_features()
    if missing:
        sys.exit(f"This CPU lacks {', '.join(missing).upper()}, which the TensorFlow build needs. "
                 "Run on a CPU with AVX2 (most x86 CPUs since 2013); the face detector runs on "
                 "TensorFlow in-process even when FACEAPI_EMBEDDER_URL points at a remote embedder.")
