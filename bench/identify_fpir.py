"""Open-set identification: does the identify threshold keep strangers out at every gallery
size, and what does it cost in missed enrolled people? (issue 16)

    python bench/_face_embeddings.py              # CelebA embeddings, service pipeline (cached)
    nice -n 10 python bench/identify_fpir.py run --synthetic 1000 10000 100000 1000000
    python bench/identify_fpir.py report          # table -> docs/benchmarks.md, plot -> docs/img/

The threshold is the service's (app/domain/open_set.py): t(N) = min(F^-1(1 - (1 -
FPIR)^(1/N)), 1:1 threshold), F the impostor-pair CDF of the validation identities.

**Real galleries** (CelebA subset, the default artefact, the service's detector and
alignment), from two pools of people outside validation: the 60 test identities, and those
plus the 179 training identities (unseen by an artefact that was not fine-tuned on them; the
row says when it was). FPIR and FNIR are exact expectations over every gallery of N people
of the pool, each enrolled with a random enrollable photo (bench/_fpir_real.py), so the only
uncertainty left is which people the data holds: the interval resamples people. Each row
also gives F(t) of the model and of the pool's own impostor pairs, and the formula with the
pool's F: measured FPIR against that formula tests the independence assumption, the pool's F
against the model's tests the tail.

**Synthetic galleries** (10^3..10^6): bench/identify_scale.py's face-like generator, fitted
on the same real embeddings, searched exactly in chunks (under 1 GB at 10^6). Its impostor
tail is not the real one (it is lighter), so the real F would say nothing here: F is built
the trainer's way from a synthetic "validation set" of the same size as the real one (60
identities x 21 photos), which tests the independence formula and the tail extrapolation far
beyond the rates the sample reaches. FNIR there is of the synthetic model, not of faces.
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

from app.domain.open_set import ImpostorTail, identify_threshold  # noqa: E402

OUT = REPO / "var" / "bench" / "identify_fpir" / "results.json"
PLOT = REPO / "docs" / "img" / "identify_fpir.png"
FPIRS = (0.01, 0.001)


def wilson(k: int, n: int, z: float = 1.96) -> list[float]:
    """The 95 % Wilson interval of a rate k / n."""
    p = k / n
    mid, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return [round((mid - half) / (1 + z * z / n), 6), round((mid + half) / (1 + z * z / n), 6)]


def decide(tail: ImpostorTail, n: int, verify_t: float, mated_i, mated_d, mated_truth, stranger_d) -> dict:
    """FNIR and FPIR at each target FPIR for one synthetic gallery (independent probes)."""
    out = {}
    for fpir in FPIRS:
        t = identify_threshold(tail, fpir, n, verify_t)
        missed = int((~((mated_i == mated_truth) & (mated_d <= t.threshold))).sum())
        fp = int((stranger_d <= t.threshold).sum())
        out[f"{fpir:g}"] = {"threshold": t.threshold, "source": t.source, "extrapolated": t.extrapolated,
                            "pair_rate_model": tail.cdf(t.threshold),
                            "mated": len(mated_d), "missed": missed, "strangers": len(stranger_d),
                            "false_positives": fp, "fnir": round(missed / len(mated_d), 5),
                            "fnir_ci95": wilson(missed, len(mated_d)),
                            "fpir": round(fp / len(stranger_d), 6), "fpir_ci95": wilson(fp, len(stranger_d))}
    return out


# ----------------------------------------------------------------------------- real


def real_pools(z: dict, split: dict, seen_train: bool, left_out: set[int], photos: np.ndarray) -> list:
    """The pools galleries are drawn from: the test identities, and test + training
    identities (as unseen as the test ones when the artefact was not fine-tuned). `photos`:
    the photos that may be enrolled or probed; `left_out`: identities not used at all."""
    from _fpir_real import Pool

    from app.core.config import Settings

    rules = Settings(_env_file=None)  # the service's enroll rules (detector score, face size)
    ids, emb = z["identities"], z["embeddings"]
    enrollable = photos & (z["faces"] == 1) & (z["score"] >= rules.enroll_min_score) & (
        z["size"] >= rules.min_face_size)
    usable = {int(i) for i in np.unique(ids[photos])
              if enrollable[ids == i].any() and (photos & (ids == i)).sum() >= 2} - left_out
    pools = []
    for name, members in (("test", split["test"]), ("test+train", np.r_[split["test"], split["train"]])):
        people = sorted(usable & set(map(int, members)))
        rows = np.flatnonzero(photos & np.isin(ids, people))
        person = np.searchsorted(people, ids[rows])
        order = np.argsort(person, kind="stable")
        rows, person = rows[order], person[order]
        enroll = np.flatnonzero(enrollable[rows])
        pools.append(Pool(name, emb[rows].astype(np.float32), person, enroll,
                          seen_by_embedder=name != "test" and seen_train))
    return pools


def mislabeled_photos(emb, ids, found, verify_t: float) -> np.ndarray:
    """Photos filed under the wrong person (CelebA label noise: a photo of identity 7433 is
    filed under 7450 too): the 1:1 rule accepts the photo against more than half of another
    person's photos and against fewer of its own. Evaluation data only, never the tail: such
    a "stranger" is an enrolled person, and no threshold can keep them out."""
    idx = np.flatnonzero(found)
    labels, person = np.unique(ids[idx], return_inverse=True)
    accepted = (1.0 - emb[idx] @ emb[idx].T) <= verify_t
    np.fill_diagonal(accepted, False)
    onehot = np.eye(len(labels), dtype=np.float32)[person]
    count = accepted.astype(np.float32) @ onehot  # (photos, people)
    size = onehot.sum(0)[None, :] - onehot  # other photos of each person
    share = count / np.maximum(size, 1)
    own = share[np.arange(len(idx)), person]
    share[np.arange(len(idx)), person] = -1.0
    flagged = idx[(share.max(1) > 0.5) & (share.max(1) > own)]
    out = np.zeros_like(found)
    out[flagged] = True
    return out


REAL_PLAN = {"test": (10, 20, 30, 50), "test+train": (10, 30, 100, 200)}


def real_galleries(cleaned: list, raw: list, tail: ImpostorTail, verify_t: float, seed: int) -> list[dict]:
    """Rows of the cleaned pools; `fpir_raw` beside each: the same before mislabeled photos
    were left out."""
    results = []
    for pool, pool_raw in zip(cleaned, raw):
        for n in REAL_PLAN[pool.name]:
            t0 = time.perf_counter()
            seen = " (training identities were seen by the embedder)" if pool.seen_by_embedder else ""
            row = {"n": n, "data": f"real CelebA ({pool.name} identities){seen}", "pool_identities": pool.k,
                   "photos": int(len(pool.person)), "enrollable": int(len(pool.enroll))}
            for fpir in FPIRS:
                t = identify_threshold(tail, fpir, n, verify_t)
                m = pool.measure(n, t.threshold, seed)
                m_raw = pool_raw.measure(n, t.threshold, seed)
                row[f"{fpir:g}"] = {"threshold": t.threshold, "source": t.source, "extrapolated": t.extrapolated,
                                    "pair_rate_model": tail.cdf(t.threshold), **_rounded(m),
                                    "fpir_raw": round(m_raw["fpir"], 7), "fpir_raw_ci95": _rounded(m_raw)["fpir_ci95"],
                                    "fnir_raw": round(m_raw["fnir"], 7)}
            results.append(row)
            print(f"  real N={n} ({pool.name}, {time.perf_counter() - t0:.0f} s): " + ", ".join(
                f"target {k}: FPIR {row[k]['fpir']:.5f} [{row[k]['fpir_ci95'][0]:.5f}, {row[k]['fpir_ci95'][1]:.5f}]"
                f" (raw {row[k]['fpir_raw']:.5f}) FNIR {row[k]['fnir']:.3f}" for k in map(lambda f: f"{f:g}", FPIRS)),
                flush=True)
    return results


def _rounded(m: dict) -> dict:
    return {k: ([round(x, 6) for x in v] if isinstance(v, list) else round(v, 7) if isinstance(v, float) else v)
            for k, v in m.items()}


def duplicate_identities(emb, ids, found, verify_t: float) -> set[int]:
    """Identities that share a (near-)identical photo with another identity: CelebA label
    noise (one photo is filed under identities 7312 and 7320, at distance 0.000), not an
    impostor. The second identity of each such pair is left out of the galleries. "Near-
    identical" is a distance under a sixth of the 1:1 threshold (0.1 for SFace): models
    differ in scale, and at a fixed 0.1 the fused model's distances already join different
    photos of one person."""
    max_distance = verify_t / 6
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
        mated_i, mated_s, truth, stranger_s = synthetic_search(gen, n, n_mated, n_strangers, seed)
        row = {"n": n, "data": "synthetic (face-like generator)",
               **decide(tail, n, verify_t, mated_i, 1.0 - mated_s, truth, 1.0 - stranger_s)}
        results.append(row)
        print(f"  synthetic N={n} ({time.perf_counter() - t0:.0f} s): " + ", ".join(
            f"FPIR {k}: measured {row[k]['fpir']} ({row[k]['false_positives']}/{row[k]['strangers']}), "
            f"FNIR {row[k]['fnir']}" for k in map(lambda f: f"{f:g}", FPIRS)), flush=True)
    return results, {"impostor_pairs": tail.pairs, "tail_min_rate": tail.min_measured_rate,
                     "generator": gen.summary(), "mated": n_mated, "strangers": n_strangers}


SYNTH_CHUNK = 20_000  # gallery rows generated and searched at a time
PROBE_BLOCK = 4_000  # probes per matrix product: 4,000 x 20,000 float32 similarities = 320 MB


def synthetic_search(gen, n: int, n_mated: int, n_strangers: int, seed: int):
    """Exact nearest-neighbour search of mated and stranger probes in a synthetic gallery of n
    people that is never held in memory: each chunk of it comes from its own seed, so a first
    pass makes only the centres of the people that mated probes need, and a second pass makes
    the chunks again and searches them. Peak memory: one chunk and one block of similarities."""
    def chunk_rng(c: int):
        return np.random.default_rng([seed, n, c + 1])

    pick = np.random.default_rng([seed, n, 0])
    truth = np.sort(pick.choice(n, n_mated, replace=False))
    centres = np.empty((n_mated, gen.B.shape[0]), np.float32)
    for c, s in enumerate(range(0, n, SYNTH_CHUNK)):
        sel = (truth >= s) & (truth < s + SYNTH_CHUNK)
        if sel.any():
            centres[sel] = gen.identities(chunk_rng(c), min(SYNTH_CHUNK, n - s))[truth[sel] - s]
    probes = np.concatenate([gen.photos(pick, centres), gen.photos(pick, gen.identities(pick, n_strangers))])
    best_s = np.full(len(probes), -np.inf, np.float32)
    best_i = np.zeros(len(probes), np.int64)
    for c, s in enumerate(range(0, n, SYNTH_CHUNK)):
        r = chunk_rng(c)
        gallery = gen.photos(r, gen.identities(r, min(SYNTH_CHUNK, n - s)))
        for b in range(0, len(probes), PROBE_BLOCK):
            sim = probes[b:b + PROBE_BLOCK] @ gallery.T
            i = np.argmax(sim, axis=1)
            si = sim[np.arange(len(i)), i]
            better = si > best_s[b:b + PROBE_BLOCK]
            best_s[b:b + PROBE_BLOCK][better] = si[better]
            best_i[b:b + PROBE_BLOCK][better] = i[better] + s
    return best_i[:n_mated], best_s[:n_mated], truth, best_s[n_mated:]


# ----------------------------------------------------------------------------- commands


def trained_on_celeba(metadata: dict) -> bool:
    """Whether the artefact's embedder was fine-tuned on the training identities (then they are
    nearer strangers to each other's enrolled photos than to unseen people: FPIR optimistic)."""
    return int(((metadata.get("training") or {}).get("config") or {}).get("epochs") or 0) > 0


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
    dups = duplicate_identities(z["embeddings"], z["identities"], z["found"], verify_t)
    wrong = mislabeled_photos(z["embeddings"], z["identities"], z["found"], verify_t)
    seen = trained_on_celeba(artifact.metadata)
    print(f"  mislabeled photos left out of the galleries and probes: {int(wrong.sum())}", flush=True)
    result = {
        "command": "python bench/identify_fpir.py " + " ".join(sys.argv[1:]),
        "model_version": artifact.model_version, "detector": type(_detector()).__name__,
        "verify_threshold": verify_t, "tail_source": "artefact metadata" if shipped else "computed in the bench",
        "tail_pairs": tail.pairs, "tail_min_rate": tail.min_measured_rate,
        "tail_extrapolation_check": tail_extrapolation_check(val_pairs.impostor, args.seed),
        "mislabeled_photos": [int(i) for i in np.flatnonzero(wrong)],
        "left_out_identities": sorted(dups),
        "real": real_galleries(real_pools(z, split, seen, dups, z["found"] & ~wrong),
                               real_pools(z, split, seen, dups, z["found"]), tail, verify_t, args.seed),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(OUT.read_text()) if OUT.exists() else {}
    OUT.write_text(json.dumps(result, indent=1))
    sizes = args.synthetic if args.synthetic is not None else ([] if args.keep_synthetic else [1000, 10_000, 100_000])
    kept = []
    if args.keep_synthetic and previous.get("synthetic") and previous.get("model_version") == artifact.model_version:
        kept = [row for row in previous["synthetic"] if row["n"] not in sizes]
        result["synthetic"], result["synthetic_setup"] = kept, previous["synthetic_setup"]
        result["synthetic_uptime"] = previous.get("synthetic_uptime", previous.get("uptime"))
        result["synthetic_command"] = previous.get("synthetic_command", previous["command"])
    if sizes:
        rows, result["synthetic_setup"] = synthetic_galleries(
            z, sizes, args.mated, args.strangers, verify_t, args.seed)
        result["synthetic"] = sorted(kept + rows, key=lambda row: row["n"])
        result["synthetic_uptime"] = os.popen("uptime").read().strip()
        result["synthetic_command"] = result["command"] if not kept else (
            f"{result['synthetic_command']}; then {result['command']}")
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
        f"down to a pair rate of {r['tail_min_rate']:.1e} (extrapolated below). Real rows: exact expectations "
        "over every gallery of N people of the pool (each enrolled with a random enrollable photo), 95 % "
        "intervals from resampling people; synthetic rows: one gallery, Wilson intervals over the probes.",
        "",
        "| N | data | target FPIR | threshold | measured FPIR [95 %] | FNIR [95 %] | F(t): model | F(t): these people "
        "| 1-(1-F)^N with their F |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for key in (f"{f:g}" for f in FPIRS):
            x = row[key]
            note = " (1:1)" if x["source"] == "verify" else (" (extrap.)" if x["extrapolated"] else "")
            over = " **over**" if x["fpir"] > float(key) else ""
            pool_f = f"{x['pair_rate_pool']:.1e}" if "pair_rate_pool" in x else "–"
            formula = f"{x['fpir_formula_pool']:.5f}" if "fpir_formula_pool" in x else "–"
            lines.append(f"| {row['n']:,} | {row['data']} | {key} | {x['threshold']:.4f}{note} | "
                         f"{x['fpir']:.5f} [{x['fpir_ci95'][0]:.5f}, {x['fpir_ci95'][1]:.5f}]{over} | "
                         f"{x['fnir']:.3f} [{x['fnir_ci95'][0]:.3f}, {x['fnir_ci95'][1]:.3f}] | "
                         f"{x['pair_rate_model']:.1e} | {pool_f} | {formula} |")
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
        lines += ["", f"Synthetic rows: {s['mated']:,} mated probes and {s['strangers']:,} strangers per gallery; "
                  f"F from a synthetic validation set of {s['impostor_pairs']:,} impostor pairs (measured down to "
                  f"{s['tail_min_rate']:.1e}); command `{r.get('synthetic_command', r['command'])}`, machine load at its "
                  f"end: {r.get('synthetic_uptime', '?')}."]
    lines += ["", f"Command: `{r['command']}`; machine load at the end: {r.get('uptime', '?')}.",
              "", "![FNIR and FPIR vs gallery size](img/identify_fpir.png)"]
    write_docs_block("identify_fpir", "\n".join(lines))

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    series = sorted({row["data"] for row in rows})
    for key, color in zip((f"{f:g}" for f in FPIRS), ("tab:blue", "tab:red")):
        for data_name, marker in zip(series, "o^s"):
            pts = sorted(((row["n"], row[key]) for row in rows if row["data"] == data_name), key=lambda p: p[0])
            ns, style = [p[0] for p in pts], "--" if data_name.startswith("synthetic") else "-"
            label = f"target {key}, {data_name}"
            axes[0].errorbar(ns, [p[1]["fnir"] for p in pts],
                             yerr=_bars([p[1]["fnir"] for p in pts], [p[1]["fnir_ci95"] for p in pts]),
                             marker=marker, color=color, ls=style, label=label, capsize=2)
            axes[1].errorbar(ns, [p[1]["fpir"] for p in pts],
                             yerr=_bars([p[1]["fpir"] for p in pts], [p[1]["fpir_ci95"] for p in pts]),
                             marker=marker, color=color, ls=style, label=label, capsize=2)
        axes[1].axhline(float(key), color=color, ls=":", lw=1.5)
    axes[0].set_ylabel("FNIR (enrolled person missed or misnamed)")
    axes[0].set_ylim(0, 1)
    axes[1].set_ylabel("measured FPIR (stranger named); dotted: target; bars: 95 %")
    axes[1].set_yscale("symlog", linthresh=1e-4)
    axes[1].set_ylim(0, 0.02)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("gallery size N (people enrolled)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6.5)
    fig.suptitle(f"Identify at a target FPIR, {r['model_version']}: real CelebA galleries (solid) and "
                 "synthetic face-like ones (dashed)")
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    print(f"docs/benchmarks.md (identify_fpir block), {PLOT.relative_to(REPO)}")


def _bars(values, intervals):
    return [[max(v - lo, 0) for v, (lo, _) in zip(values, intervals)],
            [max(hi - v, 0) for v, (_, hi) in zip(values, intervals)]]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--model", default=None, help="artefact (default: the service's)")
    r.add_argument("--synthetic", type=int, nargs="*", default=None,
                   help="synthetic gallery sizes (default 1000 10000 100000, none with --keep-synthetic; "
                        "searched in chunks: under 1 GB at 1,000,000)")
    r.add_argument("--mated", type=int, default=1000)
    r.add_argument("--strangers", type=int, default=10_000)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--keep-synthetic", action="store_true",
                   help="keep the synthetic rows of the last run of the same artefact (they do not use its tail); "
                        "sizes given with --synthetic are measured and added")
    r.set_defaults(fn=run)
    sub.add_parser("report").set_defaults(fn=report)
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO / "bench"))
    args.fn(args)


if __name__ == "__main__":
    main()
