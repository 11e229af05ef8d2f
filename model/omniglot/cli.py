"""`python -m model omniglot train|eval|baseline|plot`: Koch et al. (2015) on Omniglot.

  train     --preset NAME [--set field=value ...] [--resume]; evaluates the best checkpoint
            at the end unless --no-eval. NAME: smoke | cpu | koch2015, or one of the best
            recipes: cpu-triplet-best | cpu-inbatch-rot | cpu-inbatch (model/omniglot/config.py)
  eval      --run-dir DIR [--scorer pairwise|prototype|all] [--tta K]
  ensemble  --run-dir DIR --run-dir DIR ... [--tta K]   (seed ensemble: averaged scores)
  mnist     [--run-dir DIR ...] [--tta K] [--ensemble]   Koch's 10-way one-shot MNIST transfer, 1-NN and MHD beside
  baseline  --which 1nn|mhd|chance|all [--image-size 105]
  plot      [--inputs JSON ...] --out docs/img/omniglot_accuracy_vs_n.png
Results are JSON files (eval_*.json in the run directory, runs/omniglot/baselines/*.json).

Each command imports its library inside its function, so `--help` does not start Keras and
TensorFlow (train.py, nets.py and evaluate.py's callers load them).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from model.common import paths
from model.omniglot.config import PRESETS, OmniglotConfig, resolve

DEFAULT_RUNS = paths.RUNS / "omniglot"


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a siamese (or triplet) net, then evaluate it")
    p.add_argument("--preset", default="cpu", help=" | ".join(PRESETS))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any config field, e.g. --set image_size=64 (repeatable)")
    p.add_argument("--run-dir", type=Path, help="default: runs/omniglot/<preset>[-triplet when --set loss=triplet]")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint; a larger time_budget_min/epochs/"
                   "patience or a later adam_decay_start extends a stopped run")
    p.add_argument("--no-eval", action="store_true")
    p.add_argument("--no-tensorboard", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _data_dir(p)
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("eval", help="evaluate a run's best checkpoint in the one-shot harness")
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--scorer", default="all", choices=["pairwise", "prototype", "all"])
    p.add_argument("--which", default="best", choices=["best", "last"])
    p.add_argument("--tta", type=int, default=0, metavar="K",
                   help="also score pairwise with test-time augmentation: K distorted copies per image")
    _data_dir(p)
    p.set_defaults(run=cmd_eval)

    p = sub.add_parser("ensemble", help="seed ensemble of runs (same input size): averaged pairwise scores")
    p.add_argument("--run-dir", type=Path, action="append", required=True, help="repeatable")
    p.add_argument("--tta", type=int, default=0, metavar="K")
    p.add_argument("--out", type=Path, help="default: runs/omniglot/ensembles/<names>.json")
    _data_dir(p)
    p.set_defaults(run=cmd_ensemble)

    p = sub.add_parser("mnist", help="Koch's 10-way one-shot transfer to MNIST, no fine-tuning; 1-NN and MHD beside")
    p.add_argument("--run-dir", type=Path, action="append", default=[], help="a trained run (repeatable)")
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--tta", type=int, default=0, metavar="K")
    p.add_argument("--ensemble", action="store_true",
                   help="also score the runs together as one seed ensemble (averaged scores)")
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_RUNS / "mnist")
    _data_dir(p)
    p.set_defaults(run=cmd_mnist)

    p = sub.add_parser("baseline", help="chance, 1-NN on raw pixels and MHD on strokes, same harness")
    p.add_argument("--which", default="all", choices=["1nn", "mhd", "chance", "all"])
    p.add_argument("--image-size", type=int, default=105)
    p.add_argument("--out-dir", type=Path, default=DEFAULT_RUNS / "baselines")
    _data_dir(p)
    p.set_defaults(run=cmd_baseline)

    p = sub.add_parser("plot", help="accuracy versus N (model, 1-NN, chance; random and within-alphabet)")
    p.add_argument("--inputs", type=Path, nargs="*",
                   help="result JSONs; default: every runs/omniglot/*/eval_*.json and the baselines")
    p.add_argument("--out", type=Path, default=paths.FIGURES / "omniglot_accuracy_vs_n.png")
    p.set_defaults(run=cmd_plot)


def _data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder holding omniglot/*.zip (default: the data_dir setting, FACEAPI_DATA_DIR)")


def _summary(result: dict) -> str:
    r, w = result["random"], result["within_alphabet"]
    top = max(r, key=int)
    line = (f"{result['method']}: Lake's runs {result['lake']['percent_correct']:.1f} %  |  "
            f"{top}-way random {100 * r[top]:.1f} %  within-alphabet {100 * w[top]:.1f} %")
    if "verification" in result:
        line += f"  |  verification {100 * result['verification']['accuracy']:.1f} %"
    return line


def _write(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(_summary(result))
    print(f"wrote {path}")


def _eval_run(run_dir: Path, scorers: list[str], which: str, data_dir, tta: int = 0) -> int:
    from model.omniglot import evaluate as ev
    from model.omniglot.train import load_trained

    model, cfg = load_trained(run_dir, which)
    data = ev.EvalData.load(cfg.image_size, cfg.eval_ways, cfg.eval_tasks, cfg.verification_pairs,
                            data_dir=data_dir)
    jobs = [(scorer, 0) for scorer in scorers] + ([("pairwise", tta)] if tta else [])
    for scorer, copies in jobs:
        t0 = time.time()
        result = ev.evaluate_model(model, cfg, data, scorer, tta=copies)
        label = f"{scorer}_tta{copies}" if copies else scorer
        result.update(preset=cfg.preset, loss=cfg.loss, scorer=label, run_dir=str(run_dir),
                      eval_seconds=round(time.time() - t0, 1))
        state_file = Path(run_dir) / "state.json"
        if state_file.exists():
            st = json.loads(state_file.read_text())
            result["training"] = {k: st.get(k) for k in ("epoch", "best_epoch", "best_val", "elapsed_s", "stopped")}
        _write(Path(run_dir) / f"eval_{label}.json", result)
    return 0


def cmd_train(args) -> int:
    from model.omniglot.train import train

    cfg = resolve(args.preset, args.overrides)
    overridden_to_triplet = cfg.objective.triplet and not PRESETS[args.preset]().objective.triplet
    run_dir = args.run_dir or DEFAULT_RUNS / (cfg.preset + ("-triplet" if overridden_to_triplet else ""))
    print(f"run directory: {run_dir}")
    state = train(cfg, run_dir, args.data_dir, resume=args.resume, verbose=not args.quiet,
                  tensorboard=not args.no_tensorboard)
    print(f"stopped ({state['stopped']}) after {state['epoch']} epochs, {state['elapsed_s'] / 60:.1f} min; "
          f"best validation 20-way within-alphabet {state['best_val']:.3f} at epoch {state['best_epoch']}")
    if args.no_eval:
        return 0
    return _eval_run(run_dir, ["pairwise", "prototype"], "best", args.data_dir)


def cmd_eval(args) -> int:
    scorers = ["pairwise", "prototype"] if args.scorer == "all" else [args.scorer]
    return _eval_run(args.run_dir, scorers, args.which, args.data_dir, args.tta)


def _ensemble(run_dirs: list[Path], tta: int):
    """The runs as one seed ensemble (pairwise scores averaged) and the first run's config."""
    from model.omniglot import evaluate as ev
    from model.omniglot.train import load_trained

    loaded = [load_trained(d) for d in run_dirs]
    sizes = {cfg.image_size for _, cfg in loaded}
    if len(sizes) != 1:
        raise SystemExit(f"ensemble members need one input size, got {sorted(sizes)}")
    members = [ev.model_method(m, cfg, "pairwise", tta) for m, cfg in loaded]
    name = f"ensemble of {len(members)}: " + " + ".join(Path(d).name for d in run_dirs) + (
        f" (tta{tta})" if tta else "")
    return ev.ensemble_method(members, name), loaded[0][1]


def cmd_ensemble(args) -> int:
    from model.omniglot import evaluate as ev

    m, cfg0 = _ensemble(args.run_dir, args.tta)
    data = ev.EvalData.load(cfg0.image_size, cfg0.eval_ways, cfg0.eval_tasks, cfg0.verification_pairs,
                            data_dir=args.data_dir)
    t0 = time.time()
    result = ev.evaluate_method(m.name, data, m.featurize, m.score, None)
    result.update(run_dirs=[str(d) for d in args.run_dir], tta=args.tta, eval_seconds=round(time.time() - t0, 1))
    out = args.out or DEFAULT_RUNS / "ensembles" / ("+".join(d.name for d in args.run_dir)
                                                   + (f"_tta{args.tta}" if args.tta else "") + ".json")
    _write(out, result)
    return 0


def cmd_mnist(args) -> int:
    from model.omniglot import evaluate as ev
    from model.omniglot import mnist
    from model.omniglot.mhd import PointClouds

    images, labels = mnist.load_mnist_test(args.data_dir)
    results = []
    for run_dir in args.run_dir:
        from model.omniglot.train import load_trained

        model, cfg = load_trained(run_dir)
        method = ev.model_method(model, cfg, "pairwise", args.tta)
        t0 = time.time()
        r = ev.mnist_oneshot(method, mnist.resize(images, cfg.image_size), labels, args.tasks)
        r.update(run_dir=str(run_dir), image_size=cfg.image_size, eval_seconds=round(time.time() - t0, 1))
        results.append((f"{Path(run_dir).name}" + (f"_tta{args.tta}" if args.tta else ""), r))
    if args.ensemble and len(args.run_dir) > 1:
        method, cfg = _ensemble(args.run_dir, args.tta)
        t0 = time.time()
        r = ev.mnist_oneshot(method, mnist.resize(images, cfg.image_size), labels, args.tasks)
        r.update(run_dirs=[str(d) for d in args.run_dir], image_size=cfg.image_size,
                 eval_seconds=round(time.time() - t0, 1))
        results.append(("+".join(Path(d).name for d in args.run_dir) + (f"_tta{args.tta}" if args.tta else ""), r))
    if not args.no_baselines:
        clouds = PointClouds()
        for key, method in (("1nn_28", ev.Method("1-NN raw pixels (L2, 28 px)", ev.raw_pixels, ev.negative_l2_scorer)),
                            ("mhd_28", ev.Method("modified Hausdorff distance (28 px)", clouds.featurize, clouds.score)),
                            ("chance", ev.Method("chance", ev.raw_pixels, ev.random_scorer(0)))):
            t0 = time.time()
            r = ev.mnist_oneshot(method, images, labels, args.tasks)
            r.update(image_size=28, eval_seconds=round(time.time() - t0, 1))
            results.append((key, r))
    for key, r in results:
        path = args.out_dir / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r, indent=1))
        print(f"MNIST {r['n_way']}-way one-shot, {r['tasks']} tasks: {r['method']}: "
              f"{100 * r['accuracy']:.1f} % (± {100 * r['stderr']:.1f})  -> {path}")
    return 0


def cmd_baseline(args) -> int:
    from model.omniglot import evaluate as ev

    defaults = OmniglotConfig()
    data = ev.EvalData.load(args.image_size, defaults.eval_ways, defaults.eval_tasks,
                            defaults.verification_pairs, data_dir=args.data_dir)
    for which in (["1nn", "mhd", "chance"] if args.which == "all" else [args.which]):
        t0 = time.time()
        result = ev.evaluate_baseline(which, data)
        result.update(image_size=args.image_size, baseline=which, eval_seconds=round(time.time() - t0, 1))
        _write(args.out_dir / f"{which}_{args.image_size}.json", result)
    return 0


def cmd_plot(args) -> int:
    from model.omniglot.evaluate import plot_accuracy_vs_n

    inputs = args.inputs or sorted(DEFAULT_RUNS.glob("*/eval_*.json")) + sorted(
        (DEFAULT_RUNS / "baselines").glob("*.json"))
    if not inputs:
        print("no result JSONs found; run train/eval/baseline first")
        return 1
    results = [json.loads(Path(p).read_text()) for p in inputs]
    plot_accuracy_vs_n(results, args.out)
    print(f"wrote {args.out}")
    return 0
