"""`python -m model faces template|tune-threshold|finetune|export`: arguments in, library calls out.

Library code lives in the modules this file calls; nothing imports this file but
model/__main__.py. Each command imports its library inside its function, so `--help` and
the light commands do not start TensorFlow (model/faces/train.py, heads.py and facenet_keras.py
import Keras at module level).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.core.config import DEFAULT_MODEL
from model.faces.artifact import ARTIFACTS, BASE_VERSION
from model.faces.config import PRESETS


def register(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("template", help="measure the alignment template on CelebA (prints it)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--margin", type=float, default=0.16,
                   help="box growth per side, as a fraction of the box (upstream FaceNet framing)")
    p.add_argument("--sweep", type=float, nargs="+", metavar="MARGIN", default=None,
                   help="instead: base-model accuracy and TAR@FAR=1e-3 on validation pairs per margin")
    p.add_argument("--write", nargs="+", metavar="VERSION", default=None,
                   help="write the template into these artefacts' metadata.json (key alignment)")
    p.add_argument("--dlib", action="store_true",
                   help="instead: where YuNet's landmarks sit in dlib's 150 chip (needs dlib: bench extra)")
    p.set_defaults(run=run_template)

    p = commands.add_parser("candidates", help="SFace, dlib, flip and fusion compared on the same photos "
                                               "(fusion weight chosen on validation identities)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--head", type=Path, default=None, metavar="RUN_DIR",
                   help="instead: validation TAR of the fused vector with and without a fusion-triplet run's head")
    p.set_defaults(run=run_candidates)

    p = commands.add_parser("tune-threshold", help="tune and record the base embedder's threshold")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0, help="identity split seed")
    p.add_argument("--pairs", type=int, default=3000, help="same pairs per split (as many different)")
    p.add_argument("--version", default=BASE_VERSION)
    p.add_argument("--out", type=Path, default=ARTIFACTS)
    p.add_argument("--retune", nargs="+", metavar="VERSION", default=None,
                   help="instead: re-tune these existing artefacts as shipped (head and alignment "
                        "kept) with the current detector")
    p.set_defaults(run=run_tune_threshold)

    p = commands.add_parser(
        "all-pairs", help="recompute an artefact's FAR thresholds, TAR@FAR intervals and impostor tail "
                          "from all pairs of the validation and test identities (current detector)")
    p.add_argument("--version", default=DEFAULT_MODEL, help="artefact under --out (default: the service's)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0, help="identity split seed")
    p.add_argument("--out", type=Path, default=ARTIFACTS)
    p.set_defaults(run=run_all_pairs)

    p = commands.add_parser("export-ports", help="artefact of the frozen Keras ports (SFace, dlib) alone or "
                                                 "fused, with flip test-time augmentation or not")
    p.add_argument("--version", required=True)
    p.add_argument("--parts", nargs="+", required=True, metavar="NAME:WEIGHT",
                   help="e.g. sface:0.3 dlib:0.7 (weights sum to 1), or one part: dlib:1")
    p.add_argument("--flip", action="store_true", help="average each face's embedding with its mirror's")
    p.add_argument("--flip-parts", nargs="+", default=None, metavar="NAME",
                   help="instead of --flip: only these parts average with the mirror image (e.g. dlib)")
    p.add_argument("--out", type=Path, default=ARTIFACTS)
    p.add_argument("--data-dir", default=None)
    p.set_defaults(run=run_export_ports)

    p = commands.add_parser("finetune", help="siamese fine-tuning of the face embedder on CelebA")
    p.add_argument("--preset", default="triplet", choices=sorted(PRESETS))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set embedding_dim=128 (repeatable)")
    p.add_argument("--run-dir", type=Path, default=None, help="default runs/faces/<preset>")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(run=run_finetune)

    p = commands.add_parser("export", help="write model/artifacts/<version>/ and a SavedModel")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="a finetune run (uses best_embedding.keras); omit with --base-only")
    p.add_argument("--base-only", action="store_true", help="export the pretrained base without a head")
    p.add_argument("--base", choices=("facenet", "sface"), default="facenet",
                   help="with --base-only: which pretrained base (a run's config names its own)")
    p.add_argument("--version", required=False, help="artefact name, e.g. facenet-casia-triplet-v1")
    p.add_argument("--out", type=Path, default=ARTIFACTS, help="artefact root (default model/artifacts)")
    p.add_argument("--saved-model-dir", type=Path, default=None,
                   help="default var/export/<version>/saved_model")
    p.add_argument("--no-saved-model", action="store_true")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--report", nargs="+", metavar="VERSION", default=None,
                   help="instead of exporting: plot ROC curves and distance histograms of exported "
                        "versions (var/export/<v>/eval.npz) into docs/img and print the table")
    p.set_defaults(run=run_export)


def run_template(args: argparse.Namespace) -> int:
    import numpy as np

    from model.faces.template import measure_template, sweep_margins

    if args.dlib:
        from model.faces.dlib import framing_agreement
        from model.faces.dlib import measure_template as measure_dlib

        n, points = measure_dlib(args.data_dir)
        print(f"{n} validation faces; YuNet landmarks in dlib's 150 chip (x, y):")
        print(np.array2string(np.round(points, 2), separator=", "))
        print("dlib's own chip vs the template's (port descriptors, cosine):", framing_agreement(args.data_dir))
        return 0
    if args.sweep:
        for row in sweep_margins(args.sweep, args.data_dir):
            print(json.dumps(row))
        return 0
    n, template = measure_template(args.data_dir, args.margin)
    print(f"{n} faces; template for {template.size}x{template.size} (x, y):")
    print(np.array2string(np.round(template.points, 1), separator=", "))
    for version in args.write or ():
        from model.faces.artifact import write_metadata

        meta = json.loads((ARTIFACTS / version / "metadata.json").read_text())
        meta["alignment"] = template.to_metadata()
        write_metadata(ARTIFACTS / version, meta)
        print(f"written into {ARTIFACTS / version / 'metadata.json'}")
    return 0


def run_candidates(args: argparse.Namespace) -> int:
    from model.faces.candidates import head_on_fusion, run

    if args.head:
        print(json.dumps(head_on_fusion(args.head, args.data_dir)))
        return 0
    rows, sweep = run(args.data_dir)
    print(json.dumps({"fusion_sweep_val": sweep, "rows": rows}, indent=1))
    return 0


def run_export_ports(args: argparse.Namespace) -> int:
    from model.faces.fusion import export_ports

    parts = []
    for item in args.parts:
        name, _, weight = item.partition(":")
        if name not in ("sface", "dlib"):
            raise SystemExit(f"export-ports: unknown part {name!r} (sface, dlib)")
        parts.append((name, float(weight or 1)))
    meta = export_ports(args.version, parts, set(args.flip_parts) if args.flip_parts else args.flip, args.out,
                        args.data_dir)
    print(json.dumps({k: meta[k] for k in ("threshold", "threshold_far_1e-3", "embedding_ms_per_face")}))
    print(json.dumps({s: meta["metrics"][s]["all_pairs"]["tar_at_far"] for s in ("val", "test")}, indent=1))
    print(f"artefact: {args.out / args.version}")
    return 0


def run_tune_threshold(args: argparse.Namespace) -> int:
    from model.faces.threshold import tune_base_threshold

    if args.retune:
        from model.faces.export import retune

        for meta in retune([args.out / v for v in args.retune], args.data_dir):
            print(meta["model_version"], json.dumps({k: meta[k] for k in ("threshold", "threshold_far_1e-3")}),
                  json.dumps(meta["metrics"]["val"]), json.dumps(meta["metrics"]["test"]), flush=True)
        return 0

    meta = tune_base_threshold(args.data_dir, args.seed, args.pairs, args.version, args.out)
    print(json.dumps({k: meta[k] for k in ("threshold", "threshold_far_1e-3", "metrics")}, indent=2))
    return 0


def run_all_pairs(args: argparse.Namespace) -> int:
    from model.faces.threshold import retune_all_pairs

    meta = retune_all_pairs(args.out / args.version, args.data_dir, args.seed)
    keys = ("threshold_far_1e-3", "threshold_far_1e-4")
    print(json.dumps({**{k: meta[k] for k in keys},
                      **{s: meta["metrics"][s]["all_pairs"]["tar_at_far"] for s in ("val", "test")}}, indent=2))
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from model.faces.config import resolve
    from model.faces.faceset import celeba_faces
    from model.faces.train import RUNS, train

    cfg = resolve(args.preset, args.overrides)
    run_dir = args.run_dir or RUNS / cfg.preset
    print(cfg.to_json())
    template = None
    if cfg.base in ("sface", "fusion"):  # fusion: the SFace-aligned set gives identities and faces
        from model.faces.sface import arcface_template

        template = arcface_template()
    state = train(cfg, celeba_faces(args.data_dir, template=template), run_dir, resume=args.resume)
    print(f"best val AUC {state['best_val_auc']:.4f} at epoch {state['best_epoch']}; "
          f"{state['seconds'] / 60:.1f} min; run dir {run_dir}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    if args.report:
        from model.faces.report import report

        print(report(args.report))
        return 0
    if not args.version:
        raise SystemExit("export: --version is required")
    if (args.run_dir is None) != args.base_only:
        raise SystemExit("export: give either --run-dir or --base-only")
    if args.base == "sface" or (args.run_dir and json.loads((args.run_dir / "config.json").read_text())
                                .get("base") == "sface"):
        from model.faces.sface import export_sface

        meta = export_sface(args.run_dir, args.version, args.out, args.data_dir)
        print(json.dumps({k: meta[k] for k in ("threshold", "threshold_far_1e-3", "embedding_ms_per_face")}))
        print(f"artefact: {args.out / args.version}")
        return 0
    from model.faces.export import export

    meta = export(args.run_dir, args.version, args.out, args.saved_model_dir, not args.no_saved_model,
                  args.data_dir)
    print(json.dumps({k: meta[k] for k in ("threshold", "threshold_far_1e-3", "metrics",
                                           "embedding_ms_per_face")}, indent=2))
    print(f"artefact: {args.out / args.version}")
    return 0
