"""ROC curves and distance histograms of exported versions (var/export/<v>/eval.npz) and their table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model.common import metrics
from model.common.paths import EXPORTS, FIGURES


def report(versions: list[str], exports: Path = EXPORTS, figures: Path = FIGURES) -> str:
    """ROC curves and same/different histograms (PNG) of exported versions; returns a markdown table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures.mkdir(parents=True, exist_ok=True)
    evals = {v: np.load(exports / v / "eval.npz") for v in versions}
    metas = {v: json.loads((exports / v / "metadata.json").read_text()) for v in versions}
    for split, title in (("test", "CelebA test identities"), ("yale", "Yale faces, all pairs")):
        fig, ax = plt.subplots(figsize=(6, 5))
        for v, z in evals.items():
            roc = metrics.roc_curve(z[f"d_{split}"], z[f"y_{split}"])
            auc = metrics.roc_auc(z[f"d_{split}"], z[f"y_{split}"])
            ax.plot(np.maximum(roc.far, 1e-4), roc.tar, label=f"{v} (AUC {auc:.4f})")
        ax.set_xscale("log")
        ax.set_xlim(1e-4, 1)
        ax.set_xlabel("false-accept rate")
        ax.set_ylabel("true-accept rate")
        ax.set_title(f"ROC, {title}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        fig.savefig(figures / f"face_roc_{split}.png", dpi=110)
        plt.close(fig)

        fig, axes = plt.subplots(1, len(evals), figsize=(4 * len(evals), 3.4), sharey=False, squeeze=False)
        for ax, (v, z) in zip(axes[0], evals.items()):
            d, y = z[f"d_{split}"], z[f"y_{split}"].astype(bool)
            bins = np.linspace(0, max(1.4, float(d.max())), 60)
            ax.hist(d[y], bins, alpha=0.6, density=True, label="same")
            ax.hist(d[~y], bins, alpha=0.6, density=True, label="different")
            ax.axvline(float(z["threshold"]), color="k", ls="--", lw=1, label="val threshold")
            ax.set_title(v, fontsize=8)
            ax.set_xlabel("cosine distance")
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"Distance histograms, {title}")
        fig.tight_layout()
        fig.savefig(figures / f"face_hist_{split}.png", dpi=110)
        plt.close(fig)

    rows = ["| variant | split | pairs | threshold (val) | accuracy | ROC AUC | TAR@FAR=1e-3 | ms/face |",
            "|---|---|---|---|---|---|---|---|"]
    for v, m in metas.items():
        for split in ("test", "yale"):
            r = m["metrics"][split]
            rows.append(f"| {v} | {split} | {r['pairs']} | {m['threshold']:.4f} | {r['accuracy']:.4f} | "
                        f"{r['roc_auc']:.4f} | {r['tar_at_far_1e3']:.4f} | {m['embedding_ms_per_face']['value']} |")
    return "\n".join(rows)
