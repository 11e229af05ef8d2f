"""Embedder cost per artefact: load time, RSS, and ms per face at batch 1 and 32.

    python -m bench.embedders VERSION [VERSION ...] [--repeats 7]

Each artefact runs in its own fresh process (so RSS is its own): RSS after importing
TensorFlow, after building the embedder the service builds (app.inference.artifacts),
and after one batch of 32; then the median time per face at batch 1 and at batch 32 over
`--repeats` runs; the artefacts run one after another in the same invocation. Faces are random
uint8 crops of the artefact's input size: the cost of these networks does not depend on
pixel values. Prints a Markdown table. Wrap in `flock /tmp/timing.lock` on a shared machine
and compare rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def measure(version: str, repeats: int) -> dict:
    """In this process: RSS steps and per-face times of one artefact."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out = {"version": version, "rss_start_mib": _rss_mib()}
    import tensorflow  # noqa: F401  (its import is the floor every candidate pays)

    out["rss_tf_mib"] = _rss_mib()
    from app.core.config import Settings
    from app.inference.artifacts import build_embedder, load_artifact

    t = time.perf_counter()
    embedder = build_embedder(load_artifact(Settings(model=version).model_dir()))
    out["load_s"] = time.perf_counter() - t
    out["rss_loaded_mib"] = _rss_mib()
    s = embedder.input_size
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (32, s, s, 3), dtype=np.uint8)
    embedder.embed(faces[:1])
    embedder.embed(faces)
    out["rss_batch32_mib"] = _rss_mib()
    for batch in (1, 32):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            embedder.embed(faces[:batch])
            times.append((time.perf_counter() - t) / batch)
        out[f"ms_per_face_b{batch}"] = 1000 * float(np.median(times))
    out["rss_end_mib"] = _rss_mib()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("versions", nargs="+")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child process mode
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.versions[0], args.repeats)))
        return 0
    rows = []
    for v in args.versions:
        res = subprocess.run([sys.executable, "-m", "bench.embedders", v, "--one", "--repeats", str(args.repeats)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(f"load average: {os.getloadavg()[0]:.1f} (1 min)")
    print("| artefact | load s | RSS after `import tensorflow` MiB | + embedder loaded | after a batch of 32 "
          "| ms/face batch 1 | ms/face batch 32 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['version']} | {r['load_s']:.1f} | {r['rss_tf_mib']:.0f} | {r['rss_loaded_mib']:.0f} "
              f"| {r['rss_batch32_mib']:.0f} | {r['ms_per_face_b1']:.1f} | {r['ms_per_face_b32']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
