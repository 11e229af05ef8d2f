"""Base candidates compared on the same photos from cached features: SFace, dlib, each with and
without flip test-time augmentation, and their weighted fusion.

`python -m model faces candidates` embeds CelebA and Yale once per base (aligned on each base's
own template, cached under var/cache), then scores every candidate on the validation
identities (all pairs: TAR at FAR 1e-3 and 1e-4) and, for the report, on the test identities
and Yale with the statistics the export writes (thresholds chosen on validation).
The fusion weight is chosen on validation identities only.

Flip (fusion.flip_average): the embedding of the face plus that of its mirror image, each
L2-normalised, summed and normalised again (what app/inference/flip.py computes in the service).
Fusion with weight w (fusion.fuse): [sqrt(w) a, sqrt(1 - w) b] of the L2-normalised embeddings a (SFace) and
b (dlib), which is unit-length, so its cosine similarity is w cos_a + (1 - w) cos_b.
"""

from __future__ import annotations

import numpy as np

from app.domain.vectors import l2_normalize
from model.common import metrics
from model.faces import data as facedata
from model.faces.config import FaceTuneConfig
from model.faces.dlib import dlib_features, dlib_template
from model.faces.evaluation import evaluate_embeddings
from model.faces.faceset import celeba_faces, yale_faces
from model.faces.fusion import flip_average, fuse, fused_features
from model.faces.sface import arcface_template, sface_features


def val_low_far(emb: np.ndarray, celeba, seed: int = 0) -> dict:
    """TAR at FAR 1e-3 and 1e-4 on all pairs of the validation identities (no bootstrap: for sweeps)."""
    ids = facedata.split_identities(celeba.identities, seed)["val"]
    sel = celeba.usable & np.isin(celeba.identities, ids)
    p = metrics.all_pairs(emb[sel], celeba.identities[sel])
    return {f"tar_at_far_{f:g}": round(metrics.tar_at_far(p.distances, p.same, f), 4) for f in (1e-3, 1e-4)}


def row(name: str, tuned: dict) -> dict:
    """One line of the candidates table from evaluate_embeddings' result."""
    m = tuned["metrics"]
    ap = tuned["all_pairs"]["all_pairs"]

    def at_default(split: str) -> float:
        a = ap[split]["threshold_far_1e-3"]
        return round((a["tar"] + 1 - a["far"]) / 2, 4)

    def tar(split: str, far: str) -> str:
        t = ap[split]["tar_at_far"][far]
        return f"{t['tar']:.3f} [{t['ci95'][0]:.3f}, {t['ci95'][1]:.3f}]"

    yale_t = tuned["all_pairs"]["thresholds"]["threshold_far_1e-3"]
    return {"candidate": name,
            "val_tar_1e-3": ap["val"]["tar_at_far"]["0.001"]["tar"], "val_tar_1e-4": ap["val"]["tar_at_far"]["0.0001"]["tar"],
            "val_acc_default_op": at_default("val"), "val_best_acc": round(m["val"]["accuracy"], 4),
            "test_acc_default_op": at_default("test"), "test_best_acc": round(m["test"]["accuracy"], 4),
            "test_roc_auc": round(m["test"]["roc_auc"], 4),
            "test_tar_1e-3": tar("test", "0.001"), "test_tar_1e-4": tar("test", "0.0001"),
            "yale_threshold": yale_t, "yale_roc_auc": round(m["yale"]["roc_auc"], 4)}


def yale_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Balanced accuracy (TAR + TNR) / 2 on Yale's pairs at a threshold chosen on CelebA validation."""
    tar = float(np.mean(distances[same] <= threshold))
    tnr = float(np.mean(distances[~same] > threshold))
    return round((tar + tnr) / 2, 4)


WEIGHTS = tuple(round(w, 2) for w in np.arange(0.1, 0.81, 0.05))  # SFace's share in the fused cosine


def base_features(data_dir: str | None = None) -> dict[str, dict]:
    """{base: {"celeba"|"yale": (orig, flipped) features, "sets": (celeba, yale)}} for SFace and dlib,
    each on its own alignment template (cached)."""
    out = {}
    for name, template, features in (("sface", arcface_template(), sface_features),
                                     ("dlib", dlib_template(), dlib_features)):
        celeba = celeba_faces(data_dir, template=template)
        yale = yale_faces(data_dir, template=template)
        out[name] = {"sets": (celeba, yale)}
        for set_name, fs in (("celeba", celeba), ("yale", yale)):
            out[name][set_name] = tuple(features(fs.faces, fs.usable, flip) for flip in (False, True))
    return out


def embeddings(feats: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{candidate: (CelebA embeddings, Yale embeddings)} for the single-base candidates."""
    out = {}
    for base in ("sface", "dlib"):
        c, y = feats[base]["celeba"], feats[base]["yale"]
        out[base] = (l2_normalize(c[0]), l2_normalize(y[0]))
        out[f"{base}+flip"] = (flip_average(*c), flip_average(*y))
    return out


def run(data_dir: str | None = None) -> list[dict]:
    """Every candidate's row (module doc); the fusion weight and flip choice made on validation."""
    feats = base_features(data_dir)
    celeba, yale = feats["sface"]["sets"]
    if not np.array_equal(celeba.usable, feats["dlib"]["sets"][0].usable):
        raise RuntimeError("both bases must see the same detected faces")
    cands = embeddings(feats)
    sweep = []
    # flip on both parts, on neither, or on dlib only (the cheap part: see docs/models.md)
    for flip, (s, d) in ((True, ("sface+flip", "dlib+flip")), (False, ("sface", "dlib")),
                         ("dlib only", ("sface", "dlib+flip"))):
        for w in WEIGHTS:
            v = val_low_far(fuse(cands[s][0], cands[d][0], w), celeba)
            sweep.append({"w": w, "flip": flip, **v})
            print(f"fusion w={w} flip={flip}: val {v}", flush=True)
    for flip in (False, True):  # the best weight with and without flip, each chosen on validation
        best = max((r for r in sweep if r["flip"] == flip),
                   key=lambda r: (r["tar_at_far_0.001"], r["tar_at_far_0.0001"]))
        s = cands["sface+flip" if flip else "sface"]
        d = cands["dlib+flip" if flip else "dlib"]
        cands[f"fusion w={best['w']}" + ("+flip" if flip else "")] = (fuse(s[0], d[0], best["w"]),
                                                                      fuse(s[1], d[1], best["w"]))
    cfg = FaceTuneConfig(preset="base")
    rows = []
    for cand, (e_celeba, e_yale) in cands.items():
        tuned, distances, labels = evaluate_embeddings(e_celeba, e_yale, cfg, celeba, yale)
        r = row(cand, tuned)
        r["yale_acc_default_op"] = yale_at(distances["yale"], labels["yale"], r.pop("yale_threshold"))
        rows.append(r)
        print(r, flush=True)
    return rows, sweep


def head_on_fusion(run_dir, data_dir: str | None = None) -> dict:
    """Validation TAR at FAR 1e-3 / 1e-4 of the fused vector before and after a fine-tuned head
    (a `fusion-triplet` run's best_embedding.keras): is the head kept?"""
    import keras

    fs = celeba_faces(data_dir, template=arcface_template())
    x = fused_features(fs)
    head = keras.saving.load_model(f"{run_dir}/best_embedding.keras", compile=False)
    idx = np.flatnonzero(fs.usable)
    tuned = np.zeros((len(x), head.output_shape[-1]), np.float32)
    tuned[idx] = head.predict(x[idx], batch_size=512, verbose=0)
    return {"fused": val_low_far(x, fs), "fused + head": val_low_far(tuned, fs)}
