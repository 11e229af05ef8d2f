"""`python -m model omniglot train|eval|baseline|plot`: Koch et al. (2015) on Omniglot.

  train     --preset smoke|cpu|koch2015 [--set field=value ...] [--resume]; evaluates the
            best checkpoint at the end unless --no-eval
  eval      --run-dir DIR [--scorer pairwise|prototype|all]
  baseline  --which 1nn|chance|all [--image-size 105]
  plot      [--inputs JSON ...] --out docs/img/omniglot_accuracy_vs_n.png
Results are JSON files (eval_*.json in the run directory, runs/omniglot/baselines/*.json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from model.omniglot.data import REPO_ROOT

DEFAULT_RUNS = REPO_ROOT / "runs" / "omniglot"


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a siamese (or triplet) net, then evaluate it")
    p.add_argument("--preset", default="cpu", help="smoke | cpu | koch2015")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any config field, e.g. --set image_size=64 (repeatable)")
    p.add_argument("--run-dir", type=Path, help="default: runs/omniglot/<preset>[-triplet]")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    p.add_argument("--no-eval", action="store_true")
    p.add_argument("--no-tensorboard", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _data_dir(p)
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("eval", help="evaluate a run's best checkpoint in the one-shot harness")
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--scorer", default="all", choices=["pairwise", "prototype", "all"])
    p.add_argument("--which", default="best", choices=["best", "last"])
    _data_dir(p)
    p.set_defaults(run=cmd_eval)

    p = sub.add_parser("baseline", help="chance and 1-NN on raw pixels, same harness")
    p.add_argument("--which", default="all", choices=["1nn", "chance", "all"])
    p.add_argument("--image-size", type=int, default=105)
    p.add_argument("--out-dir", type=Path, default=DEFAULT_RUNS / "baselines")
    _data_dir(p)
    p.set_defaults(run=cmd_baseline)

    p = sub.add_parser("plot", help="accuracy versus N (model, 1-NN, chance; random and within-alphabet)")
    p.add_argument("--inputs", type=Path, nargs="*",
                   help="result JSONs; default: every runs/omniglot/*/eval_*.json and the baselines")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "img" / "omniglot_accuracy_vs_n.png")
    p.set_defaults(run=cmd_plot)


def _data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder holding omniglot/*.zip (default: $FACEAPI_DATA_DIR or ../shared/data)")


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


def _eval_run(run_dir: Path, scorers: list[str], which: str, data_dir) -> int:
    from model.omniglot import evaluate as ev
    from model.omniglot.train import load_trained

    model, cfg = load_trained(run_dir, which)
    data = ev.EvalData.load(cfg.image_size, cfg.eval_ways, cfg.eval_tasks, cfg.verification_pairs,
                            data_dir=data_dir)
    for scorer in scorers:
        t0 = time.time()
        result = ev.evaluate_model(model, cfg, data, scorer)
        result.update(preset=cfg.preset, loss=cfg.loss, scorer=scorer, run_dir=str(run_dir),
                      eval_seconds=round(time.time() - t0, 1))
        state_file = Path(run_dir) / "state.json"
        if state_file.exists():
            st = json.loads(state_file.read_text())
            result["training"] = {k: st.get(k) for k in ("epoch", "best_epoch", "best_val", "elapsed_s", "stopped")}
        _write(Path(run_dir) / f"eval_{scorer}.json", result)
    return 0


def cmd_train(args) -> int:
    from model.omniglot.config import resolve
    from model.omniglot.train import train

    cfg = resolve(args.preset, args.overrides)
    run_dir = args.run_dir or DEFAULT_RUNS / (cfg.preset + ("-triplet" if cfg.loss == "triplet" else ""))
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
    return _eval_run(args.run_dir, scorers, args.which, args.data_dir)


def cmd_baseline(args) -> int:
    from model.omniglot import evaluate as ev
    from model.omniglot.config import OmniglotConfig

    defaults = OmniglotConfig()
    data = ev.EvalData.load(args.image_size, defaults.eval_ways, defaults.eval_tasks,
                            defaults.verification_pairs, data_dir=args.data_dir)
    for which in (["1nn", "chance"] if args.which == "all" else [args.which]):
        result = ev.evaluate_baseline(which, data)
        result.update(image_size=args.image_size, baseline=which)
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
