"""Open-set identification: does the identify threshold keep strangers out at every gallery
size, and what does it cost in missed enrolled people? (issue 16)

    python bench/_face_embeddings.py              # CelebA embeddings, service pipeline (cached)
    python bench/identify_fpir.py run --synthetic 1000 10000 100000   # -> var/bench/identify_fpir/results.json
    python bench/identify_fpir.py report          # table -> docs/benchmarks.md, plot -> docs/img/

The threshold is the service's (app/services/open_set.py): t(N) = min(F^-1(1 - (1 -
FPIR)^(1/N)), 1:1 threshold), F the impostor-pair CDF of the validation identities.

**Real galleries** (CelebA subset, the default artefact, the service's detector and
alignment): N identities drawn from those outside validation, one photo each enrolled
(the first that passes the enroll rules), every other photo of them a mated probe, every
photo of the identities left out a stranger probe; 20 draws per N. F is the artefact's
shipped tail (or, when the artefact has none, the same computation on validation pairs
here). Test identities alone allow N <= 30; larger N also draw training identities, which
the embedder's fine-tune has seen (their impostor distances are larger, so FPIR there is
optimistic): each row says which.

**Synthetic galleries** (10^3..10^6): bench/identify_scale.py's face-like generator, fitted
on the same real embeddings. Its impostor tail is not the real one (it is lighter), so
the real F would say nothing here: F is built the trainer's way from a synthetic
"validation set" of the same size as the real one (60 identities x 21 photos, ~790k
impostor pairs), which tests the independence formula and the tail extrapolation far
beyond the 10^-5 the sample reaches. FNIR there is of the synthetic model, not of faces.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.services.open_set import ImpostorTail, identify_threshold  # noqa: E402

OUT = REPO / "var" / "bench" / "identify_fpir" / "results.json"
PLOT = REPO / "docs" / "img" / "identify_fpir.png"
FPIRS = (0.01, 0.001)


def wilson_upper(k: int, n: int, z: float = 1.96) -> float:
    """Upper end of the 95 % Wilson interval of a rate k / n."""
    if n == 0:
        return float("nan")
    p = k / n
    return (p + z * z / (2 * n) + z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)


def nearest(gallery: np.ndarray, probes: np.ndarray, chunk: int = 50_000) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest gallery row and its cosine distance, per probe."""
    best_i = np.zeros(len(probes), np.int64)
    best_d = np.full(len(probes), np.inf, np.float32)
    for s in range(0, len(gallery), chunk):
        d = 1.0 - probes @ gallery[s:s + chunk].T
        i = np.argmin(d, axis=1)
        di = d[np.arange(len(probes)), i]
        better = di < best_d
        best_i[better], best_d[better] = i[better] + s, di[better]
    return best_i, best_d


def decide(tail: ImpostorTail, n: int, verify_t: float, mated_i, mated_d, mated_truth, stranger_d,
           stranger_ids=None) -> dict:
    """FNIR and FPIR at each target FPIR for one gallery; per stranger identity, the false
    positives and searches (for an interval that resamples people, not photos)."""
    out = {}
    ids = np.arange(len(stranger_d)) if stranger_ids is None else np.asarray(stranger_ids)
    for fpir in FPIRS:
        t = identify_threshold(tail, fpir, n, verify_t)
        hit = (mated_i == mated_truth) & (mated_d <= t.threshold)
        fp = stranger_d <= t.threshold
        out[f"{fpir:g}"] = {"threshold": t.threshold, "source": t.source, "extrapolated": t.extrapolated,
                            "mated": int(len(mated_d)), "missed": int((~hit).sum()),
                            "strangers": int(len(stranger_d)), "false_positives": int(fp.sum()),
                            "by_identity": {int(i): [int(fp[ids == i].sum()), int((ids == i).sum())]
                                            for i in np.unique(ids)} if stranger_ids is not None else None}
    return out


def cluster_upper(rows: list[dict], key: str, n_boot: int = 1000, seed: int = 0) -> float:
    """95 % upper bound of FPIR, resampling stranger identities (their photos' errors come
    together: a stranger who looks like someone enrolled is named in most of their photos)."""
    tot: dict[int, list[int]] = {}
    for r in rows:
        for i, (k, m) in r[key]["by_identity"].items():
            t = tot.setdefault(i, [0, 0])
            t[0] += k
            t[1] += m
    fp, n = np.array(list(tot.values()), np.float64).T
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(fp), (n_boot, len(fp)))
    return float(np.quantile(fp[pick].sum(1) / n[pick].sum(1), 0.95))


def merge(rows: list[dict]) -> dict:
    """Sum the counts of several draws of one gallery size."""
    out = {}
    for key in rows[0]:
        r0 = rows[0][key]
        tot = {k: sum(r[key][k] for r in rows) for k in ("mated", "missed", "strangers", "false_positives")}
        tot.update(threshold=r0["threshold"], source=r0["source"], extrapolated=r0["extrapolated"])
        tot["fnir"] = round(tot["missed"] / max(tot["mated"], 1), 4)
        tot["fpir"] = round(tot["false_positives"] / max(tot["strangers"], 1), 5)
        if r0.get("by_identity") is not None:  # real: errors cluster by person
            tot["fpir_upper95"] = round(cluster_upper(rows, key), 5)
        else:
            tot["fpir_upper95"] = round(wilson_upper(tot["false_positives"], tot["strangers"]), 5)
        out[key] = tot
    return out


# ----------------------------------------------------------------------------- real


def real_galleries(z: dict, split: dict, tail: ImpostorTail, verify_t: float, draws: int, seed: int) -> list[dict]:
    from app.core.config import Settings

    rules = Settings(_env_file=None)  # the service's enroll rules (detector score, face size)
    ids, found, emb = z["identities"], z["found"], z["embeddings"]
    enrollable = found & (z["faces"] == 1) & (z["score"] >= rules.enroll_min_score) & (
        z["size"] >= rules.min_face_size)
    photos = {int(i): np.flatnonzero(found & (ids == i)) for i in np.unique(ids[found])}
    first = {i: next((p for p in ph if enrollable[p]), None) for i, ph in photos.items()}
    usable = {i for i, ph in photos.items() if first[i] is not None and len(ph) >= 2}
    usable -= duplicate_identities(emb, ids, found)
    pools = {"test": sorted(usable & set(map(int, split["test"]))),
             "test+train": sorted(usable & (set(map(int, split["test"])) | set(map(int, split["train"]))))}
    plan = [("test", 10), ("test", 30), ("test+train", 30), ("test+train", 100), ("test+train", 200)]
    rng = np.random.default_rng(seed)
    results = []
    for pool_name, n in plan:
        pool = pools[pool_name]
        rows = []
        for _ in range(draws):
            chosen = rng.choice(pool, n, replace=False)
            gal_idx = np.array([first[i] for i in chosen])
            mated = np.concatenate([[p for p in photos[i] if p != first[i]] for i in chosen]).astype(int)
            truth_of = {int(i): k for k, i in enumerate(chosen)}
            truth = np.array([truth_of[int(ids[p])] for p in mated])
            strangers = np.concatenate([photos[i] for i in pool if i not in truth_of]).astype(int)
            mi, md = nearest(emb[gal_idx], emb[mated])
            _, sd = nearest(emb[gal_idx], emb[strangers])
            rows.append(decide(tail, n, verify_t, mi, md, truth, sd, stranger_ids=ids[strangers]))
        results.append({"n": n, "data": f"real CelebA ({pool_name} identities)", "draws": draws,
                        "pool_identities": len(pool), **merge(rows)})
        r = results[-1]
        print(f"  real N={n} ({pool_name}): " + ", ".join(
            f"FPIR {k}: measured {r[k]['fpir']} ({r[k]['false_positives']}/{r[k]['strangers']}), "
            f"FNIR {r[k]['fnir']}" for k in map(lambda f: f"{f:g}", FPIRS)), flush=True)
    return results


def duplicate_identities(emb, ids, found, max_distance: float = 0.1) -> set[int]:
    """Identities that share a (near-)identical photo with another identity: CelebA label
    noise (one photo is filed under identities 7312 and 7320, at distance 0.000), not an
    impostor. The second identity of each such pair is left out of the galleries."""
    idx = np.flatnonzero(found)
    d = 1.0 - emb[idx] @ emb[idx].T
    a, b = np.nonzero(np.triu(d < max_distance, 1))
    cross = ids[idx[a]] != ids[idx[b]]
    dup = {int(max(ids[idx[i]], ids[idx[j]])) for i, j in zip(a[cross], b[cross])}
    if dup:
        print(f"  left out as duplicates of other identities: {sorted(dup)}", flush=True)
    return dup


def tail_extrapolation_check(val_impostor: np.ndarray, seed: int) -> dict:
    """The tail built from 5 % of the validation pairs, extrapolated, against the quantiles
    measured on all of them: how far off is the normal-tail model on real faces?"""
    rng = np.random.default_rng(seed)
    sub = ImpostorTail.from_distances(rng.choice(val_impostor, len(val_impostor) // 20, replace=False))
    full = ImpostorTail.from_distances(val_impostor)
    rows = []
    for rate, measured in zip(full.rates, full.distances):
        if rate < sub.min_measured_rate:
            rows.append({"rate": rate, "measured_all_pairs": measured,
                         "extrapolated_from_5pct": round(sub.quantile(rate), 6),
                         "measured_share_below_extrapolated": round(
                             float(np.mean(val_impostor <= sub.quantile(rate))), 8)})
    return {"subsample_pairs": sub.pairs, "subsample_min_rate": sub.min_measured_rate, "rows": rows}


# ----------------------------------------------------------------------------- synthetic


def synthetic_galleries(z: dict, sizes: list[int], n_mated: int, n_strangers: int, verify_t: float,
                        seed: int) -> tuple[list[dict], dict]:
    from identify_scale import FaceLikeGenerator
    from model.common.metrics import all_pairs

    found = z["found"]
    gen = FaceLikeGenerator(z["embeddings"][found].astype(np.float64), z["identities"][found], seed=seed)
    rng = np.random.default_rng(seed + 1)
    # the synthetic "validation set", as large as the real one, gives the synthetic F
    val_c = gen.identities(rng, 60)
    val = gen.photos(rng, np.repeat(val_c, 21, axis=0))
    pairs = all_pairs(val, np.repeat(np.arange(60), 21))
    imp = ~pairs.same
    tail = ImpostorTail.from_distances(pairs.impostor, pairs.id_a[imp], pairs.id_b[imp])
    results = []
    for n in sizes:
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed + n)
        gallery = np.empty((n, val.shape[1]), np.float32)
        targets = np.sort(rng.choice(n, n_mated, replace=False))
        mated = np.empty((n_mated, val.shape[1]), np.float32)
        k = 0
        for s in range(0, n, 50_000):
            c = gen.identities(rng, min(50_000, n - s))
            gallery[s:s + len(c)] = gen.photos(rng, c)
            sel = targets[(targets >= s) & (targets < s + len(c))]
            mated[k:k + len(sel)] = gen.photos(rng, c[sel - s])
            k += len(sel)
        strangers = gen.photos(rng, gen.identities(rng, n_strangers))
        mi, md = nearest(gallery, mated)
        _, sd = nearest(gallery, strangers)
        row = {"n": n, "data": "synthetic (face-like generator)", "draws": 1, **merge(
            [decide(tail, n, verify_t, mi, md, targets, sd)])}
        results.append(row)
        print(f"  synthetic N={n} ({time.perf_counter() - t0:.0f} s): " + ", ".join(
            f"FPIR {k}: measured {row[k]['fpir']} ({row[k]['false_positives']}/{row[k]['strangers']}), "
            f"FNIR {row[k]['fnir']}" for k in map(lambda f: f"{f:g}", FPIRS)), flush=True)
        del gallery
    return results, {"impostor_pairs": tail.pairs, "tail_min_rate": tail.min_measured_rate,
                     "generator": gen.summary()}


# ----------------------------------------------------------------------------- commands


def run(args) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    from _face_embeddings import _detector, celeba_embeddings

    from app.core.config import Settings
    from app.inference.artifacts import load_artifact
    from model.faces import data as facedata
    from model.common.metrics import all_pairs

    settings = Settings(_env_file=None, **({"model": args.model} if args.model else {}))
    artifact = load_artifact(settings.model_dir())
    verify_t = artifact.threshold_for(settings.threshold_policy)
    z = celeba_embeddings(args.model)
    split = facedata.split_identities(z["identities"], 0)
    val = z["found"] & np.isin(z["identities"], split["val"])
    val_pairs = all_pairs(z["embeddings"][val], z["identities"][val])
    imp = ~val_pairs.same
    own_tail = ImpostorTail.from_distances(val_pairs.impostor, val_pairs.id_a[imp], val_pairs.id_b[imp])
    shipped = artifact.impostor_tail
    tail = shipped or own_tail
    print(f"artefact {artifact.model_version}, detector {type(_detector()).__name__}, 1:1 threshold "
          f"{verify_t}; tail: {'shipped' if shipped else 'computed here'} ({tail.pairs} impostor pairs)", flush=True)
    result = {
        "command": "python bench/identify_fpir.py " + " ".join(sys.argv[2:]),
        "model_version": artifact.model_version, "detector": type(_detector()).__name__,
        "verify_threshold": verify_t, "tail_source": "artefact metadata" if shipped else "computed in the bench",
        "tail_pairs": tail.pairs, "tail_min_rate": tail.min_measured_rate,
        "tail_extrapolation_check": tail_extrapolation_check(val_pairs.impostor, args.seed),
        "real": real_galleries(z, split, tail, verify_t, args.draws, args.seed),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(OUT.read_text()) if OUT.exists() else {}
    OUT.write_text(json.dumps(result, indent=1))
    if args.keep_synthetic and previous.get("synthetic"):  # they do not depend on the artefact's tail
        result["synthetic"], result["synthetic_setup"] = previous["synthetic"], previous["synthetic_setup"]
        result["synthetic_uptime"] = previous.get("synthetic_uptime", previous.get("uptime"))
    elif args.synthetic:
        result["synthetic"], result["synthetic_setup"] = synthetic_galleries(
            z, args.synthetic, args.mated, args.strangers, verify_t, args.seed)
        result["synthetic_uptime"] = os.popen("uptime").read().strip()
    result["uptime"] = os.popen("uptime").read().strip()
    OUT.write_text(json.dumps(result, indent=1))
    print(f"-> {OUT.relative_to(REPO)}")


def report(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from _common import write_docs_block

    r = json.loads(OUT.read_text())
    rows = r["real"] + r.get("synthetic", [])
    lines = [
        f"Model `{r['model_version']}`, detector {r['detector']}; 1:1 threshold {r['verify_threshold']}; "
        f"impostor tail: {r['tail_source']}, {r['tail_pairs']:,} pairs of validation identities, measured "
        f"down to a pair rate of {r['tail_min_rate']:.1e} (extrapolated below).",
        "",
        "| N | data | target FPIR | threshold | measured FPIR (false positives / strangers) | 95 % upper | FNIR |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for key in (f"{f:g}" for f in FPIRS):
            x = row[key]
            note = " (1:1)" if x["source"] == "verify" else (" (extrap.)" if x["extrapolated"] else "")
            lines.append(f"| {row['n']:,} | {row['data']} | {key} | {x['threshold']:.4f}{note} | "
                         f"{x['fpir']:.4f} ({x['false_positives']:,} / {x['strangers']:,}) | "
                         f"{x['fpir_upper95']:.4f} | {x['fnir']:.3f} |")
    chk = r["tail_extrapolation_check"]
    lines += ["", f"Tail extrapolation on real pairs: the tail of a 5 % subsample ({chk['subsample_pairs']:,} "
              f"pairs, measured down to {chk['subsample_min_rate']:.1e}) extrapolated to the rates that "
              "all pairs measure:", "",
              "| pair rate | distance, all pairs | extrapolated from 5 % | share of all pairs below it |",
              "|---|---|---|---|"]
    for c in chk["rows"]:
        lines.append(f"| {c['rate']:.1e} | {c['measured_all_pairs']:.4f} | {c['extrapolated_from_5pct']:.4f} | "
                     f"{c['measured_share_below_extrapolated']:.1e} |")
    if "synthetic_setup" in r:
        s = r["synthetic_setup"]
        lines += ["", f"Synthetic rows: F from a synthetic validation set of {s['impostor_pairs']:,} impostor "
                  f"pairs (measured down to {s['tail_min_rate']:.1e}); machine load: {r.get('synthetic_uptime', '?')}."]
    lines += ["", "![FNIR and FPIR vs gallery size](img/identify_fpir.png)"]
    write_docs_block("identify_fpir", "\n".join(lines))

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    series = sorted({row["data"] for row in rows})
    for key, color in zip((f"{f:g}" for f in FPIRS), ("tab:blue", "tab:red")):
        for data_name, marker in zip(series, "o^s"):
            pts = sorted(((row["n"], row[key]) for row in rows if row["data"] == data_name), key=lambda p: p[0])
            ns, style = [p[0] for p in pts], "--" if data_name.startswith("synthetic") else "-"
            label = f"FPIR {key}, {data_name}"
            axes[0].plot(ns, [p[1]["fnir"] for p in pts], marker=marker, color=color, ls=style, label=label)
            axes[1].errorbar(ns, [p[1]["fpir"] for p in pts],
                             yerr=[[0] * len(pts), [p[1]["fpir_upper95"] - p[1]["fpir"] for p in pts]],
                             marker=marker, color=color, ls=style, label=label, capsize=3)
        axes[1].axhline(float(key), color=color, ls=":", lw=1)
    axes[0].set_ylabel("FNIR (enrolled person missed or misnamed)")
    axes[1].set_ylabel("measured FPIR (stranger named), bar: 95 % upper bound")
    axes[1].set_yscale("symlog", linthresh=1e-4)
    axes[1].set_ylim(bottom=0)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("gallery size N (people enrolled)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Identify at a target FPIR (dotted lines): real CelebA galleries and synthetic face-like ones")
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    print(f"docs/benchmarks.md (identify_fpir block), {PLOT.relative_to(REPO)}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--model", default=None, help="artefact (default: the service's)")
    r.add_argument("--draws", type=int, default=20, help="random galleries per real N")
    r.add_argument("--synthetic", type=int, nargs="*", default=[1000, 10_000, 100_000],
                   help="synthetic gallery sizes (1_000_000 needs ~5 GB free and ~30 min on 2 cores)")
    r.add_argument("--mated", type=int, default=1000)
    r.add_argument("--strangers", type=int, default=5000)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--keep-synthetic", action="store_true",
                   help="reuse the synthetic rows of the last run (they do not use the artefact's tail)")
    r.set_defaults(fn=run)
    sub.add_parser("report").set_defaults(fn=report)
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO / "bench"))
    args.fn(args)


if __name__ == "__main__":
    main()
