"""Whom a photo with several faces is of: the subject rule (app/vision/subject.py) against the
rule before it (the largest face; enroll refused when another face is within the dominance
ratio), on the same detections, case by case.

Cases, from the CelebA subset and the Yale faces (real photos only; composites are real
photos pasted together):

* ``celeba_2plus``: CelebA photos in which the detector finds two or more faces. The
  subject is the labelled celebrity: the face whose embedding (the service's default model)
  is within the 1:1 threshold of the mean of that person's single-face photos, when no other
  face of the photo is. Photos where no face (or more than one) matches are left out.
* composites on a 480x360 canvas (the subject photo's colours, smoothed, as the background): the
  subject (a CelebA photo of one face, its face 90 px wide) with a second person (another
  CelebA identity, or a Yale subject) at a size ratio of 0.8-1.2 of the subject's face:
  ``beside`` (same height, 1.7 face widths apart), ``behind`` (higher, partly hidden by the
  subject, out of focus), ``cut_side`` (30 % of the face past the left or right edge),
  ``cut_top`` (behind the subject's shoulder, 40 % past the top edge); the subject's face at
  -0.3, -0.15, 0, 0.15 and 0.3 half-widths from the centre (positive: towards the other face).
  The subject is the detected face overlapping the pasted subject's face box.

Validation identities calibrate the weights (a grid search, ``--grid``); test identities are
the held-out check. Per case it prints, for enroll: subject chosen / another face chosen /
refused, and for verify (which never refuses): subject chosen.

    python bench/subject_choice.py           # the table for the shipped weights
    python bench/subject_choice.py --grid    # and the grid search on validation identities
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CANVAS = (480, 360)  # width, height
SUBJECT_PX = 90
RATIOS = (0.8, 0.9, 1.0, 1.1, 1.2)
OFFSETS = (-0.3, -0.15, 0.0, 0.15, 0.3)
CASES = ("beside", "behind", "cut_side", "cut_top")
SUBJECTS_PER_SPLIT = 8
REFERENCE_PHOTOS = 5
CACHE = REPO / "var" / "bench" / "subject_cases.json"


def _head(rgb: np.ndarray, box, face_px: float):
    """The head and shoulders around `box` (as far as the photo goes), scaled so the face is
    `face_px` wide; returns the crop (RGBA: alpha 0 outside the photo) and the face box in it."""
    from PIL import Image

    x, y, w, h = box
    x0, x1, y0, y1 = x - 0.6 * w, x + 1.6 * w, y - 0.5 * h, y + 2.0 * h
    pad = int(max(w, h) * 3)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    padded = np.pad(rgba, ((pad, pad), (pad, pad), (0, 0)))
    crop = padded[int(y0) + pad:int(y1) + pad, int(x0) + pad:int(x1) + pad]
    s = face_px / w
    size = (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s)))
    out = np.asarray(Image.fromarray(crop).resize(size, Image.LANCZOS if s < 1 else Image.BICUBIC))
    return out, ((x - int(x0)) * s, (y - int(y0)) * s, w * s, h * s)


def _paste(canvas: np.ndarray, crop: np.ndarray, left: float, top: float, blur: float = 0.0):
    """`crop` (RGBA) onto `canvas` at (left, top) through a soft elliptical mask."""
    from PIL import Image, ImageFilter

    h, w = crop.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    r = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h * 0.6) / (h * 0.6)) ** 2
    alpha = (np.clip((1.0 - r) / 0.3, 0, 1) * (crop[..., 3] / 255.0))[..., None]
    rgb = crop[..., :3]
    if blur:
        rgb = np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(blur)))
    H, W = canvas.shape[:2]
    l, t = int(round(left)), int(round(top))
    cx0, cy0 = max(0, l), max(0, t)
    cx1, cy1 = min(W, l + w), min(H, t + h)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    sub = (slice(cy0 - t, cy1 - t), slice(cx0 - l, cx1 - l))
    a = alpha[sub]
    canvas[cy0:cy1, cx0:cx1] = (a * rgb[sub] + (1 - a) * canvas[cy0:cy1, cx0:cx1]).astype(np.uint8)


def composite(subject, other, case: str, ratio: float, offset: float, side: int):
    """(image, the subject's face box in it). `subject` and `other` are (rgb, face box)."""
    from PIL import Image, ImageFilter

    W, H = CANVAS
    # the background: the subject photo's colours, smoothed until no face is left in it
    bg = np.asarray(Image.fromarray(subject[0]).resize((6, 4), Image.BOX).resize((W, H), Image.BICUBIC))
    canvas = bg.copy()
    s_crop, s_box = _head(*subject, SUBJECT_PX)
    o_crop, o_box = _head(*other, SUBJECT_PX * ratio)
    cx = W / 2 + side * offset * W / 2
    cy = 0.42 * H
    o_w, o_h = o_box[2], o_box[3]
    blur = 0.0
    if case == "beside":
        ox, oy = cx + side * 1.7 * SUBJECT_PX * (1 + ratio) / 2, cy
    elif case == "behind":
        ox, oy, blur = cx + side * 1.1 * SUBJECT_PX, cy - 0.35 * SUBJECT_PX, 1.5
    elif case == "cut_side":
        ox, oy = (W + 0.2 * o_w if side > 0 else -0.2 * o_w), cy
    else:  # cut_top
        ox, oy = cx + side * 1.0 * SUBJECT_PX, 0.1 * o_h
    _paste(canvas, o_crop, ox - o_box[0] - o_w / 2, oy - o_box[1] - o_h / 2, blur)
    left, top = cx - s_box[0] - s_box[2] / 2, cy - s_box[1] - s_box[3] / 2
    _paste(canvas, s_crop, left, top)
    return canvas, (left + s_box[0], top + s_box[1], s_box[2], s_box[3])


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter) if inter else 0.0


def _face_rows(faces):
    return [{"box": [float(v) for v in f.box], "score": float(f.score),
             "landmarks": np.asarray(f.landmarks).round(2).tolist()} for f in faces]


def collect() -> dict:
    """Detections and the true subject of every case photo, per split (cached)."""
    from tqdm import tqdm

    from app.core.config import Settings
    from app.inference.artifacts import load_artifact
    from app.inference.registry import build_embedder
    from app.vision.align import align_face
    from app.vision.decode import decode_image
    from app.vision.detect import YuNetDetector
    from model.faces import data

    detector = YuNetDetector()
    celeba = data.load_celeba()
    splits = data.split_identities(celeba.identities)
    artifact = load_artifact(Settings().model_dir())
    embedder, template = build_embedder(artifact), artifact.alignment
    threshold = artifact.threshold_for("far_1e-3")
    yale = sorted((Settings().data_dir / "yalefaces").glob("subject*.normal.png"))
    rng = np.random.default_rng(0)
    out = {"model": artifact.model_version, "threshold": threshold}
    for split in ("val", "test"):
        idx = np.flatnonzero(np.isin(celeba.identities, splits[split]))
        found = {}
        for i in tqdm(idx, desc=f"detect {split}", mininterval=10):
            rgb = decode_image(celeba.path(i).read_bytes())
            found[int(i)] = (rgb.shape[1], rgb.shape[0], detector.detect(rgb))
        rows = []
        # CelebA photos with 2+ faces: the labelled person
        single = {int(i) for i, (_, _, f) in found.items() if len(f) == 1}
        for i, (w, h, faces) in tqdm(found.items(), desc=f"label {split}", mininterval=10):
            if len(faces) < 2:
                continue
            ident = celeba.identities[i]
            refs = [j for j in idx if j in single and celeba.identities[j] == ident][:REFERENCE_PHOTOS]
            if not refs:
                continue
            ref = embedder.embed(np.stack([align_face(decode_image(celeba.path(j).read_bytes()),
                                                      found[int(j)][2][0].landmarks, template) for j in refs])).mean(0)
            ref /= np.linalg.norm(ref)
            rgb = decode_image(celeba.path(i).read_bytes())
            emb = embedder.embed(np.stack([align_face(rgb, f.landmarks, template) for f in faces]))
            dist = 1 - emb @ ref
            matches = np.flatnonzero(dist <= threshold)
            rows.append({"case": "celeba_2plus", "file": celeba.files[i], "size": [w, h],
                         "faces": _face_rows(faces),
                         "truth": int(matches[0]) if len(matches) == 1 else None,
                         "distances": dist.round(4).tolist()})
        # composites
        by_id = {}
        for i in sorted(single):
            f = found[i][2][0]
            if f.size >= 60 and f.score >= 0.85:
                by_id.setdefault(int(celeba.identities[i]), []).append(i)
        ids = sorted(by_id)
        rng.shuffle(ids)
        subjects = ids[:SUBJECTS_PER_SPLIT]
        others = ids[SUBJECTS_PER_SPLIT:2 * SUBJECTS_PER_SPLIT]
        # Yale subjects: 08-11 with validation identities, 12-15 with test identities
        yale_split = yale[7:11] if split == "val" else yale[11:15]
        for k, ident in enumerate(tqdm(subjects, desc=f"composites {split}", mininterval=10)):
            si = by_id[ident][0]
            s_rgb = decode_image(celeba.path(si).read_bytes())
            subject = (s_rgb, found[si][2][0].box)
            for n, (case, ratio, offset) in enumerate(itertools.product(CASES, RATIOS, OFFSETS)):
                if n % 2:  # alternate the second person: CelebA, Yale
                    o_rgb = decode_image(yale_split[(k + n) % len(yale_split)].read_bytes())
                    o_box = detector.detect(o_rgb)[0].box
                    o_name = yale_split[(k + n) % len(yale_split)].name
                else:
                    oi = by_id[others[(k + n) % len(others)]][0]
                    o_rgb, o_box, o_name = decode_image(celeba.path(oi).read_bytes()), found[oi][2][0].box, celeba.files[oi]
                side = 1 if (n // 2) % 2 else -1
                img, s_box = composite(subject, (o_rgb, o_box), case, ratio, offset, side)
                faces = detector.detect(img)
                ious = [_iou(f.box, s_box) for f in faces]
                truth = int(np.argmax(ious)) if ious and max(ious) >= 0.4 else None
                rows.append({"case": case, "file": f"{celeba.files[si]}+{o_name}", "size": list(CANVAS),
                             "ratio": ratio, "offset": offset, "faces": _face_rows(faces),
                             "truth": truth})
        out[split] = rows
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    CACHE.write_text(json.dumps(out))
    return out


def _faces(row):
    from app.vision.detect import DetectedFace

    return [DetectedFace(tuple(f["box"]), f["score"], np.asarray(f["landmarks"])) for f in row["faces"]]


def outcomes(rows, rule, ratio: float, weights=None):
    """Per case: photos, enroll (subject, other, refused), verify subject."""
    from app.vision.subject import choose_subject, largest_rule

    table = {}
    for row in rows:
        if row["truth"] is None or len(row["faces"]) < 2:
            continue
        faces = _faces(row)
        if rule == "old":
            pick, refused = largest_rule(faces, ratio)
        else:
            c = choose_subject(faces, *row["size"], ratio, weights) if weights else \
                choose_subject(faces, *row["size"], ratio)
            pick, refused = c.index, c.ambiguous
        t = table.setdefault(row["case"], {"photos": 0, "enroll_subject": 0, "enroll_other": 0,
                                           "refused": 0, "verify_subject": 0})
        t["photos"] += 1
        ok = pick == row["truth"]
        t["verify_subject"] += ok
        if refused:
            t["refused"] += 1
        else:
            t["enroll_subject" if ok else "enroll_other"] += 1
    return table


def total(table):
    keys = ("photos", "enroll_subject", "enroll_other", "refused", "verify_subject")
    return {k: sum(t[k] for t in table.values()) for k in keys}


def _cue_arrays(rows):
    """Rows with a known subject and 2+ faces as padded arrays (faces x cues), for the grid."""
    from app.vision.subject import cues

    rows = [r for r in rows if r["truth"] is not None and len(r["faces"]) >= 2]
    n, m = len(rows), max(len(r["faces"]) for r in rows)
    a = {k: np.full((n, m), np.nan) for k in ("size", "centre", "cut", "confidence")}
    for i, r in enumerate(rows):
        for j, f in enumerate(_faces(r)):
            c = cues(f, *r["size"])
            for k in a:
                a[k][i, j] = getattr(c, k)
    return a, np.array([r["truth"] for r in rows])


def grid(rows, ratio):
    """Every combination of weights and tolerances, scored on `rows` (vectorised)."""
    from app.vision.subject import SubjectWeights

    a, truth = _cue_arrays(rows)
    n = len(truth)
    ar = np.arange(n)
    rel = np.log(a["size"] / np.nanmax(a["size"], axis=1, keepdims=True))
    best = None
    for cw, tw, sw in itertools.product((0, 0.25, 0.5, 1, 2, 4, 8), (0, 0.5, 1, 2, 4, 8), (0, 1, 2, 4, 8, 16, 32)):
        score = rel - cw * a["centre"] - tw * a["cut"] + sw * a["confidence"]
        score = np.where(np.isnan(score), -np.inf, score)
        order = np.argsort(-score, axis=1, kind="stable")
        pick, second = order[:, 0], order[:, 1]
        ok = pick == truth
        size_p, size_s = a["size"][ar, pick], a["size"][ar, second]
        same_size = np.maximum(size_p, size_s) < ratio * np.minimum(size_p, size_s)
        d_centre = np.abs(a["centre"][ar, pick] - a["centre"][ar, second])
        d_cut = np.abs(a["cut"][ar, pick] - a["cut"][ar, second])
        d_conf = np.abs(a["confidence"][ar, pick] - a["confidence"][ar, second])
        for ct, tt, st in itertools.product((0.05, 0.1, 0.15, 0.2, 0.3), (0.05, 0.1, 0.2, 0.3),
                                            (0.02, 0.05, 0.1, 0.15)):
            refused = same_size & (d_centre <= ct) & (d_cut <= tt) & (d_conf <= st)
            other = int((~refused & ~ok).sum())
            t = {"photos": n, "enroll_subject": int((~refused & ok).sum()), "enroll_other": other,
                 "refused": int(refused.sum()), "verify_subject": int(ok.sum())}
            # a wrong person enrolled is worse than a refusal; verify's choice breaks ties
            cost = 5 * other + t["refused"] + 0.5 * (n - t["verify_subject"])
            if best is None or cost < best[0]:
                best = (cost, SubjectWeights(cw, tw, sw, ct, tt, st), t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", action="store_true")
    ap.add_argument("--recollect", action="store_true")
    args = ap.parse_args()
    from app.core.config import Settings

    ratio = Settings.model_fields["enroll_dominance_ratio"].default
    data = collect() if args.recollect or not CACHE.exists() else json.loads(CACHE.read_text())
    if args.grid:
        cost, w, t = grid(data["val"], ratio)
        print("grid best on validation:", w, t, "cost", cost)
    print(f"model {data['model']}, 1:1 threshold {data['threshold']:.4f}, dominance ratio {ratio}")
    header = ("split", "case", "photos", "rule", "enroll: subject", "enroll: other face",
              "refused", "verify: subject")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for split in ("val", "test"):
        rows = data[split]
        skipped = sum(1 for r in rows if r["truth"] is None and len(r["faces"]) >= 2)
        one = sum(1 for r in rows if len(r["faces"]) < 2)
        old, new = outcomes(rows, "old", ratio), outcomes(rows, "new", ratio)
        for case in ["celeba_2plus", *CASES, "all"]:
            for name, tab in (("old", old), ("new", new)):
                t = total(tab) if case == "all" else tab.get(case)
                if not t:
                    continue
                print(f"| {split} | {case} | {t['photos']} | {name} | {t['enroll_subject']} | "
                      f"{t['enroll_other']} | {t['refused']} | {t['verify_subject']} |")
        print(f"<!-- {split}: left out {skipped} photos with 2+ faces and no single labelled face, "
              f"{one} photos where fewer than 2 faces were found -->")
    print()
    print("Composites by the subject's offset from the centre (positive: towards the other face), "
          "both splits, enroll with the new rule: subject / other face / refused (old rule's refusals)")
    print("| offset | photos | enroll: subject | enroll: other face | refused | refused by the old rule |")
    print("|---|---|---|---|---|---|")
    rows = [r for r in data["val"] + data["test"] if r["case"] in CASES]
    for off in OFFSETS:
        sub = [r for r in rows if r["offset"] == off]
        t, o = total(outcomes(sub, "new", ratio)), total(outcomes(sub, "old", ratio))
        print(f"| {off:+.2f} | {t['photos']} | {t['enroll_subject']} | {t['enroll_other']} | "
              f"{t['refused']} | {o['refused']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
