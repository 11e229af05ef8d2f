"""Large JPEGs: the reduced-scale decode (app/vision/pipeline.py, `reduce_to`) against the
full decode, on real photos enlarged to the size of ordinary camera photos.

For the first N CelebA test pairs of bench/peers.py: photo A is enrolled as it is, photo B
is enlarged so its longer side is `--side` px and saved as a JPEG (quality 90); B goes through
the service's pipeline twice, decoded in full and at reduced scale. Reported: how many verify
decisions differ (at the default model's service threshold), the largest distance difference,
accuracy of both, and decode + detect + align ms per photo (p50 / p95).

    python bench/large_photos.py [--pairs 200] [--side 3000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> int:
    from PIL import Image

    from app.domain import errors
    from app.core.config import Settings
    from app.inference.artifacts import load_artifact
    from app.inference.registry import build_embedder
    from app.vision.decode import DecodeLimits
    from app.vision.detect import YuNetDetector
    from app.vision.pipeline import FacePipeline
    from bench.peers import celeba_pairs

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pairs", type=int, default=200)
    p.add_argument("--side", type=int, default=3000)
    args = p.parse_args()
    settings = Settings()
    artifact = load_artifact(settings.model_dir())
    embedder = build_embedder(artifact)
    detector = YuNetDetector(input_side=settings.detect_max_side)
    full = FacePipeline(detector, DecodeLimits(), artifact.alignment)
    reduced = FacePipeline(detector, DecodeLimits(), artifact.alignment, reduce_to=settings.detect_max_side)
    threshold = artifact.threshold_for(settings.threshold_policy)
    celeba, cp = celeba_pairs(3000, None)
    pairs = cp["test"]
    d = {"full": [], "reduced": []}
    ms = {"full": [], "reduced": []}
    same, skipped = [], 0
    for k in range(args.pairs):
        a, b = celeba.path(pairs.a[k]).read_bytes(), celeba.path(pairs.b[k]).read_bytes()
        img = Image.open(io.BytesIO(b)).convert("RGB")
        s = args.side / max(img.size)
        buf = io.BytesIO()
        img.resize((round(img.width * s), round(img.height * s)), Image.BICUBIC).save(buf, "JPEG", quality=90)
        try:
            ea = embedder.embed(full.extract(a, False).aligned[None])[0]
            got = {}
            for name, pipe in (("full", full), ("reduced", reduced)):
                t = time.perf_counter()
                sample = pipe.extract(buf.getvalue(), False)
                ms[name].append((time.perf_counter() - t) * 1e3)
                got[name] = embedder.embed(sample.aligned[None])[0]
        except errors.NoFace:
            skipped += 1
            continue
        for name in got:
            d[name].append(1.0 - float(ea @ got[name]))
        same.append(bool(pairs.same[k]))
    same = np.array(same)
    df, dr = np.array(d["full"]), np.array(d["reduced"])
    out = {
        "pairs": int(len(same)), "no_face_pairs": skipped, "side": args.side, "threshold": threshold,
        "model": artifact.model_version,
        "decisions_differ": int(((df <= threshold) != (dr <= threshold)).sum()),
        "max_abs_distance_diff": round(float(np.abs(df - dr).max()), 4),
        "median_abs_distance_diff": round(float(np.median(np.abs(df - dr))), 4),
        "accuracy_full": round(float(np.mean((df <= threshold) == same)), 4),
        "accuracy_reduced": round(float(np.mean((dr <= threshold) == same)), 4),
        **{f"ms_{n}": [round(float(np.percentile(v, q)), 1) for q in (50, 95)] for n, v in ms.items()},
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
