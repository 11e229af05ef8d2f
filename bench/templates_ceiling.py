"""What lies between the templates' 1:N figures and the goal FNIR <= 0.05 at FPIR 0.01: the
best any threshold does (FNIR at the threshold where these very galleries measure FPIR 0.01),
for the shipped scores, for cohort score normalisation, and for another embedder file.

    python bench/_face_embeddings.py                        # the default artefact's embeddings (cached)
    nice -n 10 python bench/templates_ceiling.py run [--onnx PATH]
    python bench/templates_ceiling.py report                # table -> docs/benchmarks.md

Galleries, probes, templates and label-noise rules are bench/templates.py's (the same `People`
draws); only the score changes:

- **cosine**: the service's score, the default artefact's embeddings.
- **Z-norm (probe)**, **T-norm (template)**, **S-norm** (their mean): each score standardised by
  the mean and spread of the probe's (or the template's) cosine to a cohort, the validation
  identities' photos (disjoint from every gallery and probe), over the whole cohort or over its
  100 nearest (adaptive).
- **`--onnx PATH`**: an ArcFace-layout ONNX embedder the user supplies (112x112 RGB in,
  (x - 127.5) / 127.5, NCHW; one vector out), run with OpenCV on the service's detections
  aligned on the ArcFace template (the `sface-2021dec-base-v1` artefact's), with flip, on the
  same photos. Nothing is downloaded; the file's SHA-256 goes into the results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from templates import KS, TARGET_FPIR, People, _data, nearest_in_galleries  # noqa: E402

OUT = REPO / "var" / "bench" / "templates" / "ceiling.json"
ROWS = (("test", 10), ("test", 50), ("test+train", 10), ("test+train", 200))
COHORT_TOP = 100


def onnx_embeddings(path: Path) -> np.ndarray:
    """(n photos, d) embeddings of the CelebA selection through an ArcFace-layout ONNX file."""
    import cv2
    from _face_embeddings import pipeline, selection

    from app.core.config import Settings
    from app.domain.errors import DomainError
    from app.inference.artifacts import load_artifact
    from model.faces import data as facedata

    s = Settings(_env_file=None, model="sface-2021dec-base-v1")
    pipe = pipeline(s, load_artifact(s.model_dir()).alignment)
    celeba = facedata.load_celeba(None)
    todo = selection(celeba, facedata.split_identities(celeba.identities, 0))
    aligned = np.zeros((len(celeba.files), 112, 112, 3), np.uint8)
    found = np.zeros(len(celeba.files), bool)

    def extract(i: int) -> None:
        try:
            aligned[i], found[i] = pipe.extract(celeba.path(i).read_bytes(), enroll=False).aligned, True
        except DomainError:
            pass

    with ThreadPoolExecutor(2) as ex:
        list(ex.map(extract, map(int, todo)))
    net = cv2.dnn.readNetFromONNX(str(path))
    idx = np.flatnonzero(found)
    emb = None
    for b in range(0, len(idx), 64):
        x = aligned[idx[b:b + 64]].astype(np.float32)
        total = 0.0
        for view in (x, x[:, :, ::-1]):  # flip, as the default artefact does
            net.setInput(((view - 127.5) / 127.5).transpose(0, 3, 1, 2).copy())
            out = net.forward()
            total = total + out / np.linalg.norm(out, axis=1, keepdims=True)
        if emb is None:
            emb = np.zeros((len(found), total.shape[1]), np.float32)
        emb[idx[b:b + 64]] = total / np.linalg.norm(total, axis=1, keepdims=True)
    print(f"  {path.name}: {len(idx)} faces embedded", flush=True)
    return emb


def cohort_stats(x: np.ndarray, cohort: np.ndarray, top: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread of each row's cosine to the cohort (to its `top` nearest, if given)."""
    c = x @ cohort.T
    if top:
        c = -np.sort(-c, axis=1)[:, :top]
    return c.mean(1), c.std(1)


def rule_scores(cohort: np.ndarray | None):
    """scores(templates, probes) -> {(rule, k): (probes, people) scores}: the cosine, and with a
    cohort its Z-, T- and S-norm over the whole cohort and over each face's COHORT_TOP nearest."""
    tops = {None: "", COHORT_TOP: f" top-{COHORT_TOP}"} if cohort is not None else {}

    def scores(templates, q):
        probe = {top: cohort_stats(q, cohort, top) for top in tops}  # once per draw, not per k
        out = {}
        for k in KS:
            raw = q @ templates[k].T
            out[("cosine", k)] = raw
            for top, tag in tops.items():
                (mq, sq), (mt, st) = probe[top], cohort_stats(templates[k], cohort, top)
                z = (raw - mq[:, None]) / sq[:, None]
                tn = (raw - mt[None, :]) / st[None, :]
                out.update({("znorm" + tag, k): z, ("tnorm" + tag, k): tn, ("snorm" + tag, k): (z + tn) / 2})
        return out

    return scores


def ceiling(people: People, n: int, galleries: int, seed: int, cohort: np.ndarray | None) -> dict:
    """Oracle FNIR at measured FPIR 0.01, by score rule and k, over random galleries of n people
    (bench/templates.py's galleries: the same draws as its 1:N rows for the same seed)."""
    rng = np.random.default_rng([seed, n])
    out: dict = {}
    for (rule, k), (mb, ok, sb) in nearest_in_galleries(people, n, galleries, rng, rule_scores(cohort)).items():
        sb = -np.sort(-sb)
        t = sb[int(TARGET_FPIR * len(sb))]  # strangers above it: at most 1 %
        out.setdefault(rule, {})[str(k)] = round(float(np.mean(~(ok & (mb > t)))), 4)
    return out


def run(args) -> None:
    t0 = time.perf_counter()
    settings, artifact, verify_t, emb, ids, usable, enrollable, score, split, dups, wrong = _data()
    cohort = emb[usable & np.isin(ids, split["val"])]
    sets = {artifact.model_version: (emb, cohort)}
    extra = None
    if args.onnx:
        path = Path(args.onnx)
        extra = {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        sets[path.name] = (onnx_embeddings(path), None)
    rows = []
    for name, (e, c) in sets.items():
        for pool_name, n in ROWS:
            members = split["test"] if pool_name == "test" else np.r_[split["test"], split["train"]]
            people = People(e, ids, score, usable, enrollable, members)
            r = ceiling(people, n, args.galleries, args.seed, c)
            rows.append({"embeddings": name, "pool": pool_name, "n": n, "people": len(people), "fnir": r})
            print(f"  {name} {pool_name} N={n}: " + "; ".join(
                f"{rule} " + " ".join(f"k={k} {v}" for k, v in ks.items()) for rule, ks in r.items()), flush=True)
    result = {"command": "python bench/templates_ceiling.py " + " ".join(sys.argv[1:]),
              "model_version": artifact.model_version, "cohort_photos": len(cohort), "onnx": extra,
              "galleries": args.galleries, "rows": rows, "seconds": round(time.perf_counter() - t0, 1),
              "uptime": os.popen("uptime").read().strip()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    print(f"-> {OUT.relative_to(REPO)} ({result['seconds']} s)")


def report(args) -> None:
    from _common import write_docs_block

    r = json.loads(OUT.read_text())
    rules = list(r["rows"][0]["fnir"])
    lines = [f"FNIR at the threshold where {r['galleries']} random galleries per row measure FPIR "
             f"{TARGET_FPIR} (the best any threshold does), templates of k = 1 / 3 photos; cohort for the "
             f"normalised scores: {r['cohort_photos']} photos of the validation identities.", "",
             "| embeddings | N | pool | " + " | ".join(rules) + " |", "|---|---|---|" + "---|" * len(rules)]
    for row in r["rows"]:
        cells = [" / ".join(f"{row['fnir'][rule][k]:.3f}" for k in ("1", "3")) if rule in row["fnir"] else "–"
                 for rule in rules]
        lines.append(f"| {row['embeddings']} | {row['n']} | {row['pool']} | " + " | ".join(cells) + " |")
    if r["onnx"]:
        lines += ["", f"`{r['onnx']['file']}`: SHA-256 `{r['onnx']['sha256']}`."]
    lines += ["", f"Command: `{r['command']}` ({r['seconds']} s); machine load at the end: {r['uptime']}."]
    write_docs_block("ceiling", "\n".join(lines))
    print("docs/benchmarks.md (ceiling block)")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--galleries", type=int, default=500, help="random galleries per row")
    r.add_argument("--seed", type=int, default=2)
    r.add_argument("--onnx", default=None, help="an ArcFace-layout ONNX embedder to compare (not shipped)")
    r.set_defaults(fn=run)
    sub.add_parser("report").set_defaults(fn=report)
    args = p.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
