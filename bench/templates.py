"""Templates of k photos per person: 1:1 TAR at FAR 1e-3 / 1e-4 and 1:N FNIR at FPIR 0.01, by k,
and whether the shipped thresholds keep their promised rates for every k.

    python bench/_face_embeddings.py                   # CelebA embeddings, service pipeline (cached)
    nice -n 10 python bench/templates.py calibrate     # per-size thresholds -> the artefact's metadata.json
    nice -n 10 python bench/templates.py run           # ~1 min on 2 cores from the cache
    python bench/templates.py report                   # table -> docs/benchmarks.md

Every photo went through the service's own pipeline (decode, YuNet, alignment, the default
artefact's embedder; bench/_face_embeddings.py), and every template is pooled by the service's
own rule (app/domain/templates.py). Label noise is left out as in bench/identify_fpir.py
(identities that share a photo with another one, photos filed under the wrong person).

Protocol, the same for every k so that only k changes: for each draw, each person's enrollable
photos (the service's enroll rules: one face, detector score, face size) are shuffled; the
template of k photos is the first k of them (k = 1, 2, 3, 5, nested), and the probes are the
person's photos outside the first 5 (the same probes for every k). People need at least 5
enrollable photos and one more photo.

- **Pooling choice** (validation identities, never the test ones): the normalised mean of the
  normalised embeddings against a detector-score-weighted one, by 1:1 TAR at FAR 1e-3 / 1e-4.
- **Calibration** (validation identities): impostor-pair distances of templates of k = 1..10
  photos against every photo of the other people, their quantiles at shared rates shipped as
  `template_calibration` in the artefact's metadata.json: the service moves each threshold to
  a template's size so that it accepts the same share of impostor pairs
  (app/domain/templates.py). Measured below on the test identities, with and without it.
- **1:1** (test identities): genuine pairs = a template and its own person's probes; impostor
  pairs = a template and every other person's probes. TAR at FAR 1e-3 / 1e-4 (threshold
  chosen on these pairs: what k can do), and FAR / TAR at the shipped thresholds
  (threshold_far_1e-3, the service's /verify default, and threshold_far_1e-4).
- **1:N** (test identities for N <= 50; test + training identities, 8 photos each, for N up to
  200): random galleries of N people, each enrolled with a template of k photos; mated probes
  are the gallery people's probes, strangers every photo of the pool's people outside the
  gallery. FNIR and FPIR at the service's identify threshold for N (target FPIR 0.01,
  app/domain/open_set.py), and FNIR at the threshold where these galleries measure FPIR 0.01.
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
sys.path.insert(0, str(REPO / "bench"))

from app.domain.open_set import identify_threshold  # noqa: E402
from app.domain.templates import pool  # noqa: E402

OUT = REPO / "var" / "bench" / "templates" / "results.json"
KS = (1, 2, 3, 5)
K_MAX = max(KS)
FARS = (1e-3, 1e-4)
TARGET_FPIR = 0.01
PLAN = {"test": (10, 20, 30, 50), "test+train": (10, 30, 100, 200)}


def pool_weighted(embeddings: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The alternative measured against the service's `pool`: each photo's normalised embedding
    weighted by its detector score before the normalised mean."""
    e = np.asarray(embeddings, np.float64)
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    mean = (np.asarray(weights, np.float64).reshape(-1, 1) * e).sum(axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32)


def wilson(k: int, n: int, z: float = 1.96) -> list[float]:
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    mid, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return [round((mid - half) / (1 + z * z / n), 6), round((mid + half) / (1 + z * z / n), 6)]


class People:
    """The eligible people of a pool: their photos' embeddings, enrollable rows, scores."""

    def __init__(self, emb, ids, score, usable, enrollable, members) -> None:
        self.emb, self.score = emb, score
        self.people, self.rows, self.enroll = [], [], []
        for p in sorted(map(int, members)):
            rows = np.flatnonzero(usable & (ids == p))
            enr = np.flatnonzero(enrollable & (ids == p))
            if len(enr) >= K_MAX and len(rows) > K_MAX:
                self.people.append(p)
                self.rows.append(rows)
                self.enroll.append(enr)

    def __len__(self) -> int:
        return len(self.people)

    def draw(self, rng, weighted: bool = False):
        """One draw: templates (k -> (people, d)) and probes (rows, owner index)."""
        templates = {k: np.zeros((len(self), self.emb.shape[1]), np.float32) for k in KS}
        probes, owner = [], []
        for i, (rows, enr) in enumerate(zip(self.rows, self.enroll)):
            order = rng.permutation(enr)
            for k in KS:
                chosen = order[:k]
                templates[k][i] = (pool_weighted(self.emb[chosen], self.score[chosen]) if weighted
                                   else pool(self.emb[chosen]))
            rest = np.setdiff1d(rows, order[:K_MAX])
            probes.append(rest)
            owner.append(np.full(len(rest), i))
        return templates, np.concatenate(probes), np.concatenate(owner)


def one_to_one(people: People, draws: int, seed: int, thresholds: dict[str, object],
               weighted: bool = False) -> dict:
    """TAR at FAR 1e-3 / 1e-4 by k (pairs pooled over draws), and FAR/TAR at shipped thresholds."""
    rng = np.random.default_rng(seed)
    gen = {k: [] for k in KS}
    imp = {k: [] for k in KS}
    for _ in range(draws):
        templates, probes, owner = people.draw(rng, weighted)
        q = people.emb[probes]
        same = owner[:, None] == np.arange(len(people))[None, :]
        for k in KS:
            d = 1.0 - q @ templates[k].T
            gen[k].append(d[same])
            imp[k].append(d[~same])
    out = {}
    for k in KS:
        g, i = np.concatenate(gen[k]), np.sort(np.concatenate(imp[k]))
        row = {"genuine_pairs": int(len(g)), "impostor_pairs": int(len(i))}
        for far in FARS:
            t = float(i[int(far * len(i))])  # the largest threshold with measured FAR <= far
            row[f"tar_at_far_{far:g}"] = round(float(np.mean(g < t)), 4)
            row[f"threshold_at_far_{far:g}"] = round(t, 4)
        for name, t in thresholds.items():
            t = t(k) if callable(t) else t
            fa = int(np.searchsorted(i, t, side="right"))
            row[name] = {"threshold": t, "far": round(fa / len(i), 6), "far_ci95": wilson(fa, len(i)),
                         "tar": round(float(np.mean(g <= t)), 4)}
        out[str(k)] = row
    return out


def nearest_in_galleries(people: People, n: int, galleries: int, rng, scores) -> dict:
    """Random galleries of n people, templates re-drawn every 25 galleries; for each probe the
    gallery person with the highest score. `scores(templates, probe_embeddings)` gives, once per
    draw, {key: (probes, people) scores}. Returns {key: (mated_best, mated_ok, stranger_best)}:
    the best score of every mated probe, whether it is the probe's own person, and the best score
    of every stranger."""
    acc: dict = {}
    draws = max(1, galleries // 25)
    for g in range(galleries):
        if g % (galleries // draws) == 0:
            templates, probes, owner = people.draw(rng)
            by_key = scores(templates, people.emb[probes])
        gallery = rng.choice(len(people), n, replace=False)
        inside = np.isin(owner, gallery)
        col = np.full(len(people), -1)
        col[gallery] = np.arange(n)
        for key, s in by_key.items():
            s = s[:, gallery]
            nearest = s.argmax(1)
            best = s[np.arange(len(s)), nearest]
            a = acc.setdefault(key, ([], [], []))
            a[0].append(best[inside])
            a[1].append(nearest[inside] == col[owner[inside]])
            a[2].append(best[~inside])
    return {key: tuple(map(np.concatenate, a)) for key, a in acc.items()}


def one_to_n(people: People, n: int, galleries: int, seed: int, tail, verify_t: float, cal) -> dict:
    """FNIR / FPIR of random galleries of n people with templates of k photos, by k."""
    rng = np.random.default_rng([seed, n])
    t_service = identify_threshold(tail, TARGET_FPIR, n, verify_t)
    # scores are negated cosine distances: the nearest is the highest, and negation is exact
    nearest = nearest_in_galleries(people, n, galleries, rng,
                                   lambda templates, q: {k: -(1.0 - q @ templates[k].T) for k in KS})
    out = {"n": n, "galleries": galleries, "service_threshold": round(t_service.threshold, 5),
           "threshold_source": t_service.source}
    for k in KS:
        mated_best, ok, stranger_best = nearest[k]
        mb, sb = -mated_best, np.sort(-stranger_best)
        t_oracle = float(sb[int(TARGET_FPIR * len(sb))])  # measured FPIR <= 0.01 below it
        row = {"mated": int(len(mb)), "strangers": int(len(sb)), "oracle_threshold": round(t_oracle, 4),
               "fnir_at_measured_fpir_0.01": round(float(np.mean(~(ok & (mb < t_oracle)))), 4)}
        rules = {"one_threshold": t_service.threshold}
        if cal is not None:
            rules["per_size"] = cal.threshold(t_service.threshold, k)
        for rule, t in rules.items():
            fp = int(np.searchsorted(sb, t, side="right"))
            missed = int((~(ok & (mb <= t))).sum())
            row[rule] = {"threshold": round(t, 5), "fpir": round(fp / len(sb), 5), "fpir_ci95": wilson(fp, len(sb)),
                         "fnir": round(missed / len(mb), 4), "fnir_ci95": wilson(missed, len(mb))}
        out[str(k)] = row
    return out


def _data():
    """(settings, artefact, 1:1 threshold, embeddings, identities, usable, enrollable, scores, split,
    left-out identities, mislabeled photos)."""
    from _face_embeddings import celeba_embeddings
    from identify_fpir import duplicate_identities, mislabeled_photos

    from app.core.config import Settings
    from app.inference.artifacts import load_artifact
    from model.faces import data as facedata

    settings = Settings(_env_file=None)
    artifact = load_artifact(settings.model_dir())
    verify_t = artifact.threshold_for(settings.threshold_policy)
    z = celeba_embeddings()
    emb, ids, found = z["embeddings"].astype(np.float32), z["identities"], z["found"]
    split = facedata.split_identities(ids, 0)
    dups = duplicate_identities(emb, ids, found, verify_t)
    wrong = mislabeled_photos(emb, ids, found, verify_t)
    usable = found & ~wrong & ~np.isin(ids, list(dups))
    enrollable = usable & (z["faces"] == 1) & (z["score"] >= settings.enroll_min_score) & (
        z["size"] >= settings.min_face_size)
    score = z["score"].astype(np.float64)
    return settings, artifact, verify_t, emb, ids, usable, enrollable, score, split, dups, wrong


CAL_SIZES = tuple(range(1, 11))
CAL_MIN_PAIRS = 20  # the smallest rate shipped rests on at least this many impostor pairs


def calibrate(args) -> None:
    """Per-size impostor quantiles on the validation identities -> the artefact's metadata.json."""
    from app.domain.open_set import RATES_PER_DECADE
    from app.domain.templates import TemplateCalibration
    from app.inference.metadata import ArtifactMetadata

    t0 = time.perf_counter()
    settings, artifact, verify_t, emb, ids, usable, enrollable, score, split, dups, wrong = _data()
    people = [int(p) for p in split["val"] if (enrollable & (ids == p)).sum() >= max(CAL_SIZES)]
    rows = np.flatnonzero(usable & np.isin(ids, people))
    rng = np.random.default_rng(args.seed)
    by_size: dict[int, list] = {k: [] for k in CAL_SIZES}
    for _ in range(args.draws):
        for p in people:
            order = rng.permutation(np.flatnonzero(enrollable & (ids == p)))
            others = rows[ids[rows] != p]
            q = emb[others]
            for k in CAL_SIZES:
                by_size[k].append(1.0 - q @ pool(emb[order[:k]]))
    by_size = {k: np.concatenate(v) for k, v in by_size.items()}
    n = min(len(v) for v in by_size.values())
    lo = math.ceil(math.log10(CAL_MIN_PAIRS / n) * RATES_PER_DECADE)
    hi = math.floor(math.log10(0.5) * RATES_PER_DECADE)
    rates = np.array([10 ** (j / RATES_PER_DECADE) for j in range(lo, hi + 1)])
    cal = TemplateCalibration.from_impostor_distances(by_size, rates)
    meta_path = artifact.path / "metadata.json"
    meta = artifact.metadata
    meta["template_calibration"] = {
        **cal.to_dict(),
        "source": {"split": "val", "identities": len(people), "draws": args.draws,
                   "pooling": "normalised mean of the normalised embeddings",
                   "pairs": "each template of k enrollable photos (random, per draw) against every photo "
                            "of the other validation identities"},
        "command": "python bench/templates.py " + " ".join(sys.argv[1:])}
    ArtifactMetadata.model_validate(meta).write(artifact.path)
    for far_key in ("threshold_far_1e-3", "threshold_far_1e-4"):
        t = float(meta[far_key])
        print(f"  {far_key} {t}: " + ", ".join(f"k={k} {cal.threshold(t, k)}" for k in CAL_SIZES), flush=True)
    print(f"-> {meta_path.relative_to(REPO)} ({len(people)} identities, {n:,} impostor pairs per size, "
          f"{time.perf_counter() - t0:.0f} s)")


def run(args) -> None:
    t0 = time.perf_counter()
    settings, artifact, verify_t, emb, ids, usable, enrollable, score, split, dups, wrong = _data()
    tail, cal = artifact.impostor_tail, artifact.template_calibration
    if tail is None:
        raise SystemExit("the artefact ships no impostor tail: no identify threshold to test")
    shipped = {"threshold_far_1e-3": artifact.threshold_for("far_1e-3"),
               "threshold_far_1e-4": artifact.threshold_for("far_1e-4")}
    measured = dict(shipped)
    if cal is not None:
        for name, t in shipped.items():
            measured[name + "_per_size"] = (lambda t: lambda k: cal.threshold(t, k))(t)

    val = People(emb, ids, score, usable, enrollable, split["val"])
    test = People(emb, ids, score, usable, enrollable, split["test"])
    both = People(emb, ids, score, usable, enrollable, np.r_[split["test"], split["train"]])
    print(f"eligible people: val {len(val)}, test {len(test)}, test+train {len(both)}", flush=True)

    pooling = {"mean": one_to_one(val, args.draws, args.seed, shipped),
               "score_weighted_mean": one_to_one(val, args.draws, args.seed, shipped, weighted=True)}
    for name, rows in pooling.items():
        print(f"  pooling {name} (val): " + ", ".join(
            f"k={k} TAR@1e-3 {r['tar_at_far_0.001']} TAR@1e-4 {r['tar_at_far_0.0001']}"
            for k, r in rows.items()), flush=True)
    verify = one_to_one(test, args.draws, args.seed + 1, measured)
    for k, r in verify.items():
        print(f"  1:1 k={k}: TAR@1e-3 {r['tar_at_far_0.001']}, TAR@1e-4 {r['tar_at_far_0.0001']}; " + "; ".join(
            f"{name}: t {r[name]['threshold']:.4f} FAR {r[name]['far']} TAR {r[name]['tar']}" for name in measured),
            flush=True)
    identify = []
    for pool_name, people in (("test", test), ("test+train", both)):
        for n in PLAN[pool_name]:
            if n > len(people) - 1:
                continue
            row = {"pool": pool_name, "pool_people": len(people),
                   **one_to_n(people, n, args.galleries, args.seed + 2, tail, verify_t, cal)}
            identify.append(row)
            print(f"  1:N {pool_name} N={n} (t={row['service_threshold']}): " + ", ".join(
                f"k={k} " + " ".join(f"{rule}: FNIR {row[str(k)][rule]['fnir']} FPIR {row[str(k)][rule]['fpir']}"
                                     for rule in ("one_threshold", "per_size") if rule in row[str(k)])
                for k in KS), flush=True)
    result = {"command": "python bench/templates.py " + " ".join(sys.argv[1:]),
              "model_version": artifact.model_version, "verify_threshold": verify_t, "shipped": shipped,
              "calibrated": cal is not None,
              "target_fpir": TARGET_FPIR, "people": {"val": len(val), "test": len(test), "test+train": len(both)},
              "draws": args.draws, "galleries": args.galleries,
              "left_out_identities": sorted(dups), "mislabeled_photos": int(wrong.sum()),
              "pooling_on_validation": pooling, "verify": verify, "identify": identify,
              "seconds": round(time.perf_counter() - t0, 1), "uptime": os.popen("uptime").read().strip()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    print(f"-> {OUT.relative_to(REPO)} ({result['seconds']} s)")


def report(args) -> None:
    from _common import write_docs_block

    r = json.loads(OUT.read_text())
    t3, t4 = r["shipped"]["threshold_far_1e-3"], r["shipped"]["threshold_far_1e-4"]
    lines = [
        f"Model `{r['model_version']}`; every photo through the service's pipeline; templates pooled by "
        f"the service's rule (normalised mean). People with at least 5 enrollable photos and one more: "
        f"{r['people']['test']} test identities, {r['people']['test+train']} test + training identities "
        f"(training ones: 8 photos each); {r['people']['val']} validation identities for the pooling choice. "
        f"{r['draws']} draws of templates for 1:1; the same probes for every k (each person's photos outside "
        "their 5 template photos). \"one threshold\": the shipped one-photo threshold for every k; "
        "\"per size\": moved to k by the artefact's `template_calibration` (validation identities).",
        "",
        "**1:1 (test identities).** TAR at a FAR measured on these pairs (what k can do), and FAR / TAR "
        f"at the shipped thresholds (`threshold_far_1e-3` = {t3}, /verify's default; `threshold_far_1e-4` = {t4}):",
        "",
        "| k | genuine / impostor pairs | TAR @ FAR 1e-3 | TAR @ FAR 1e-4 | one threshold 1e-3: FAR, TAR "
        "| per size 1e-3: threshold, FAR [95 %], TAR | one threshold 1e-4: FAR, TAR "
        "| per size 1e-4: threshold, FAR [95 %], TAR |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, x in r["verify"].items():
        cells = []
        for key in ("threshold_far_1e-3", "threshold_far_1e-4"):
            a = x[key]
            cells.append(f"{a['far']:.5f}, {a['tar']:.3f}")
            if key + "_per_size" in x:
                b = x[key + "_per_size"]
                cells.append(f"{b['threshold']:.4f}, {b['far']:.5f} [{b['far_ci95'][0]:.5f}, "
                             f"{b['far_ci95'][1]:.5f}], {b['tar']:.3f}")
            else:
                cells.append("–")
        lines.append(f"| {k} | {x['genuine_pairs']:,} / {x['impostor_pairs']:,} | {x['tar_at_far_0.001']:.3f} | "
                     f"{x['tar_at_far_0.0001']:.3f} | " + " | ".join(cells) + " |")
    lines += ["", f"**1:N**, {r['galleries']} random galleries per row, every person of a gallery enrolled with "
              f"a template of k photos; the service's identify threshold for N at target FPIR {r['target_fpir']} "
              "(one threshold), the same moved to k (per size), and the FNIR of a threshold set to measure "
              "FPIR 0.01 on these very galleries (the best any threshold does):", "",
              "| N | pool | k | one threshold: FNIR, FPIR | per size: threshold | FNIR [95 %] "
              "| FPIR [95 %] | FNIR at measured FPIR 0.01 |",
              "|---|---|---|---|---|---|---|---|"]
    for row in r["identify"]:
        for k in map(str, KS):
            x = row[k]
            one = x["one_threshold"]
            over = " **over**" if one["fpir"] > r["target_fpir"] else ""
            p = x.get("per_size")
            per = (f"{p['threshold']:.4f} | {p['fnir']:.3f} [{p['fnir_ci95'][0]:.3f}, {p['fnir_ci95'][1]:.3f}] | "
                   f"{p['fpir']:.4f} [{p['fpir_ci95'][0]:.4f}, {p['fpir_ci95'][1]:.4f}]"
                   f"{' **over**' if p['fpir'] > r['target_fpir'] else ''}") if p else "– | – | –"
            lines.append(f"| {row['n']} | {row['pool']} | {k} | {one['fnir']:.3f}, {one['fpir']:.4f}{over} | "
                         f"{per} | {x['fnir_at_measured_fpir_0.01']:.3f} |")
    lines += ["", "**Pooling rule (validation identities)**, TAR at FAR 1e-3 / 1e-4:", "",
              "| rule | " + " | ".join(f"k={k}" for k in KS) + " |", "|---|" + "---|" * len(KS)]
    for name, rows in r["pooling_on_validation"].items():
        lines.append(f"| {name.replace('_', ' ')} | " + " | ".join(
            f"{rows[k]['tar_at_far_0.001']:.3f} / {rows[k]['tar_at_far_0.0001']:.3f}" for k in map(str, KS)) + " |")
    lines += ["", "Wilson intervals count probes and pairs as independent (they are not: several photos per "
              "person), so they are narrower than the uncertainty of which people the data holds.",
              "", f"Command: `python bench/templates.py calibrate --draws 20` (writes `template_calibration` "
              f"into the artefact's metadata.json), then `{r['command']}` ({r['seconds']} s); machine load at "
              f"the end: {r['uptime']}."]
    write_docs_block("templates", "\n".join(lines))
    print("docs/benchmarks.md (templates block)")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("calibrate")
    c.add_argument("--draws", type=int, default=5, help="template draws per validation identity")
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(fn=calibrate)
    r = sub.add_parser("run")
    r.add_argument("--draws", type=int, default=10, help="template draws for 1:1")
    r.add_argument("--galleries", type=int, default=500, help="random galleries per gallery size")
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(fn=run)
    sub.add_parser("report").set_defaults(fn=report)
    args = p.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
