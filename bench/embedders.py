"""Embedder candidates side by side: quality from each artefact's metadata.json plus Yale at
its default operating point, and cost: load time, RSS, ms per face at batch 1 and 32.

    python -m bench.embedders VERSION [VERSION ...] [--repeats 7]

Quality (CelebA test identities, written at export / re-tune time by the trainer):
accuracy at the default operating point is the balanced accuracy (TAR + TNR) / 2 over all
pairs of the test identities at the artefact's `threshold_far_1e-3` (the service's default
policy); accuracy at the max-accuracy threshold, ROC AUC (balanced test pairs); TAR at FAR
1e-3 and 1e-4 on all test pairs with the 95 % identity-bootstrap interval. Yale (all 164
photos, all 13,366 pairs, never used for tuning) is embedded here through the artefact's own
alignment, and scored at the same default threshold.

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
    from app.inference.artifacts import load_artifact
    from app.inference.registry import build_embedder

    t = time.perf_counter()
    artifact = load_artifact(Settings(model=version).model_dir())
    embedder = build_embedder(artifact)
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
    out["yale"] = yale_at_default(embedder, artifact)
    return out


def yale_at_default(embedder, artifact) -> dict:
    """Accuracy and ROC AUC on all Yale pairs at the artefact's default (FAR 1e-3) threshold."""
    from model.common import metrics
    from model.faces.faceset import yale_faces
    from model.faces.splits import all_pairs

    yale = yale_faces(template=artifact.alignment)
    idx = np.flatnonzero(yale.usable)
    emb = np.zeros((len(yale.faces), embedder.embedding_dim), np.float32)
    emb[idx] = embedder.embed(yale.faces[idx])
    pairs = all_pairs(yale.identities, yale.usable)
    d = 1.0 - np.sum(emb[pairs.a] * emb[pairs.b], axis=1)
    t = artifact.threshold_for("far_1e-3")
    return {"accuracy": metrics.accuracy_at(d, pairs.same, t), "roc_auc": metrics.roc_auc(d, pairs.same),
            "photos": int(yale.usable.sum())}


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
                             capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(f"{v}: measurement failed\n{res.stderr[-3000:]}")
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(f"load average: {os.getloadavg()[0]:.1f} (1 min)\n")
    print(quality_table(rows) + "\n")
    print("| artefact | load s | RSS after `import tensorflow` MiB | + embedder loaded | after a batch of 32 "
          "| ms/face batch 1 | ms/face batch 32 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['version']} | {r['load_s']:.1f} | {r['rss_tf_mib']:.0f} | {r['rss_loaded_mib']:.0f} "
              f"| {r['rss_batch32_mib']:.0f} | {r['ms_per_face_b1']:.1f} | {r['ms_per_face_b32']:.1f} |")
    return 0


LICENCES = {"facenet-graph": "MIT (davidsandberg/facenet; CASIA-WebFace)", "sface-keras": "Apache-2.0 (opencv_zoo)",
            "dlib-keras": "public domain / CC0 (dlib-models)",
            "fusion": "Apache-2.0 (SFace) + public domain / CC0 (dlib)"}


def _base_file(spec: dict):
    from app.inference.backbones.dlib.weights import dat_path
    from app.inference.backbones.facenet.graph import graph_path
    from app.inference.backbones.sface.weights import onnx_path

    return {"sface-keras": onnx_path, "dlib-keras": dat_path}.get(spec.get("kind"), graph_path)()


def _weights_mb(artifact) -> float:
    """The base files in their packages plus the artefact's head (a fusion: every part's)."""
    spec = artifact.metadata["embedder"]
    specs = spec["parts"] if spec.get("kind") == "fusion" else [spec]
    size = sum(_base_file(s).stat().st_size for s in specs)
    size += sum((artifact.path / h).stat().st_size for h in {s["head"] for s in [spec, *specs] if s.get("head")})
    return size / 1e6


def quality_table(rows: list[dict]) -> str:
    from app.core.config import Settings
    from app.inference.artifacts import load_artifact

    def tar(entry: dict) -> str:
        lo, hi = entry["ci95"]
        return f"{entry['tar']:.3f} [{lo:.3f}, {hi:.3f}]"

    lines = ["| candidate | CelebA test: acc at default op | acc at max-acc thr | ROC AUC | TAR@FAR=1e-3 [95 % CI] "
             "| TAR@FAR=1e-4 [95 % CI] | Yale: acc at default op | Yale ROC AUC | ms/face b1 / b32 | weights MB "
             "| licence |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        art = load_artifact(Settings(model=r["version"]).model_dir())
        m = art.metadata["metrics"]["test"]
        ap = m["all_pairs"]
        op = ap["threshold_far_1e-3"]
        acc_op = (op["tar"] + 1.0 - op["far"]) / 2
        lines.append(
            f"| {r['version']} | {acc_op:.4f} | {m['accuracy']:.4f} | {m['roc_auc']:.4f} "
            f"| {tar(ap['tar_at_far']['0.001'])} | {tar(ap['tar_at_far']['0.0001'])} "
            f"| {r['yale']['accuracy']:.4f} | {r['yale']['roc_auc']:.4f} "
            f"| {r['ms_per_face_b1']:.1f} / {r['ms_per_face_b32']:.1f} | {_weights_mb(art):.1f} "
            f"| {LICENCES[art.embedder.kind or 'facenet-graph']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
