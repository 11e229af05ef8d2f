"""Where the enroll thresholds come from: the dominance ratio and the minimum detector score.

Every CelebA photo is labelled with the celebrity it shows. In the photos where YuNet finds
two or more faces, the labelled person is the face nearest (cosine, base FaceNet) to the
mean embedding of that person's single-face photos. Per bin of the size ratio (largest face
/ second largest), it counts how often the largest face is the labelled person: below the
ratio where that stops being near-certain, the photo is ambiguous and enroll must refuse;
and how often the more confident of the two is (what verify and identify take there).
For the score, it reports the share of photos whose largest face falls under each candidate
minimum, and the verification accuracy of those faces.

    python bench/enroll_rules.py        # after bench/detect_coverage.py --detector yunet

These are the figures behind the size-only rule the service used before the subject score;
bench/subject_choice.py compares that rule with the current one (app/vision/subject.py).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REFERENCE_PHOTOS = 4  # single-face photos per identity for its reference embedding
RATIO_BINS = (1.0, 1.25, 1.5, 1.75, 2.0, 3.0, 1e9)


def main() -> int:
    from tqdm import tqdm

    from app.inference.artifacts import load_artifact
    from app.inference.registry import build_embedder
    from app.vision.align import align_face
    from app.vision.decode import decode_image
    from app.vision.detect import YuNetDetector
    from model.faces import data
    from model.faces.artifact import ARTIFACTS, BASE_VERSION

    artifact = load_artifact(ARTIFACTS / BASE_VERSION)
    embedder, template = build_embedder(artifact), artifact.alignment
    celeba = data.load_celeba()
    det = data.detect_all(celeba)
    detector = YuNetDetector()
    multi = np.flatnonzero(det.n_faces >= 2)
    single = det.n_faces == 1
    ids = np.unique(celeba.identities[multi])
    refs = {}
    for ident in tqdm(ids, desc="references", mininterval=10):
        idx = np.flatnonzero(single & (celeba.identities == ident))[:REFERENCE_PHOTOS]
        if len(idx) == 0:
            continue
        faces = np.stack([align_face(decode_image(celeba.path(i).read_bytes()), det.landmarks[i], template)
                          for i in idx])
        v = embedder.embed(faces).mean(0)
        refs[ident] = v / np.linalg.norm(v)
    rows = []
    for i in tqdm(multi, desc="multi-face photos", mininterval=10):
        ident = celeba.identities[i]
        if ident not in refs:
            continue
        rgb = decode_image(celeba.path(i).read_bytes())
        found = detector.detect(rgb)[:2]
        if len(found) < 2:
            continue
        emb = embedder.embed(np.stack([align_face(rgb, f.landmarks, template) for f in found]))
        sims = emb @ refs[ident]
        rows.append({"file": celeba.files[i], "ratio": found[0].size / found[1].size,
                     "sizes": [round(f.size, 1) for f in found], "scores": [round(f.score, 3) for f in found],
                     "sim": [round(float(s), 3) for s in sims], "largest_is_subject": bool(sims[0] > sims[1]),
                     # what verify and identify took between comparable faces before the subject score
                     "most_confident_is_subject": bool((sims[0] > sims[1]) == (found[0].score >= found[1].score))})
    ratios = np.array([r["ratio"] for r in rows])
    ok = np.array([r["largest_is_subject"] for r in rows])
    confident = np.array([r["most_confident_is_subject"] for r in rows])
    table = []
    for lo, hi in zip(RATIO_BINS[:-1], RATIO_BINS[1:]):
        m = (ratios >= lo) & (ratios < hi)
        table.append({"ratio": f"[{lo}, {hi if hi < 1e9 else 'inf'})", "photos": int(m.sum()),
                      "largest_is_subject": int(ok[m].sum()), "most_confident_is_subject": int(confident[m].sum())})
    scores = det.scores[det.found]
    score_share = {str(t): round(float(np.mean(scores < t)), 4) for t in (0.6, 0.7, 0.75, 0.8, 0.85, 0.9)}
    out = {"photos_with_2plus_faces": int(len(multi)), "scored": len(rows), "by_ratio": table,
           "share_of_celeba_largest_faces_below_score": score_share, "rows": rows}
    path = REPO / "var" / "bench" / "enroll_rules.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
