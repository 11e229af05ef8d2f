"""Templates through the running service: are people enrolled from k photos recognised more
often than from one, at the same share of strangers named? Every step over HTTP, as a user
does it: the README's start-up (bench/_common.LocalService, SQLite, the default model),
`POST /enroll` with a person's first photo, `POST /persons/{id}/faces` with the next k - 1,
then `POST /identify` with every probe.

    python bench/_face_embeddings.py                      # which photos are usable (cached)
    nice -n 10 python bench/templates_http.py run         # about 15 min on 2 cores
    python bench/templates_http.py report                 # table -> docs/benchmarks.md

People: the CelebA test and training identities with at least 5 enrollable photos and one more
(bench/templates.py's rule and label-noise exclusions); a seeded three quarters of them are
enrolled, the rest are strangers. For every k the same people are enrolled, in a fresh
database, from the first k of their shuffled enrollable photos (a photo the service refuses is
skipped for the next one); mated probes are each enrolled person's photos outside their first
5, strangers every photo of the others and of the validation identities, the same probes for
every k. A mated probe counts as
recognised when `match` names its person; a stranger counts as named when `match` is not null.
A probe the service refuses (no face found) is neither recognised nor named.
"""

from __future__ import annotations

import argparse
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

from templates import K_MAX, People, _data, wilson  # noqa: E402

OUT = REPO / "var" / "bench" / "templates" / "http.json"


def plan(seed: int, share: float) -> dict:
    """Who is enrolled, their photos in enroll order, the probes; photo paths throughout."""
    from model.faces import data as facedata

    settings, artifact, verify_t, emb, ids, usable, enrollable, score, split, dups, wrong = _data()
    people = People(emb, ids, score, usable, enrollable, np.r_[split["test"], split["train"]])
    celeba = facedata.load_celeba(None)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(people))
    enrolled = set(order[:round(share * len(people))].tolist())
    out = {"model_version": artifact.model_version, "people": len(people), "enrolled": {}, "mated": [],
           "strangers": []}
    for i, (person, rows, enr) in enumerate(zip(people.people, people.rows, people.enroll)):
        if i not in enrolled:
            out["strangers"] += [str(celeba.path(r)) for r in rows]
            continue
        photos = rng.permutation(enr)
        out["enrolled"][f"p{person}"] = [str(celeba.path(r)) for r in photos]
        out["mated"] += [(f"p{person}", str(celeba.path(r))) for r in np.setdiff1d(rows, photos[:K_MAX])]
    # more strangers: the validation identities' photos (their thresholds came from pairs among
    # themselves, never against these galleries)
    out["strangers"] += [str(celeba.path(r)) for r in np.flatnonzero(usable & np.isin(ids, split["val"]))]
    return out


def measure(k: int, p: dict, workers: int) -> dict:
    import httpx

    from _common import LocalService

    with LocalService(nice=0) as svc, httpx.Client(base_url=svc.url, timeout=120) as http:
        admin, client = {"X-API-Key": svc.keys["admin"]}, {"X-API-Key": svc.keys["client"]}

        def enroll(item):
            person, photos = item
            added, refused = 0, 0
            for path in photos:
                if added == k:
                    break
                files = {"image": (Path(path).name, Path(path).read_bytes(), "image/jpeg")}
                r = (http.post("/enroll", headers=admin, data={"person_id": person}, files=files) if added == 0
                     else http.post(f"/persons/{person}/faces", headers=admin, files=files))
                if r.status_code == 201:
                    added += 1
                elif r.status_code == 422:
                    refused += 1
                else:
                    raise RuntimeError(f"{r.status_code} {r.text}")
            return added, refused

        def identify(path):
            r = http.post("/identify", headers=client, data={"top_k": "1"},
                          files={"image": (Path(path).name, Path(path).read_bytes(), "image/jpeg")})
            if r.status_code == 422:
                return None, None
            r.raise_for_status()
            body = r.json()
            return (body["match"] or {}).get("person_id"), body["threshold"]

        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as ex:
            enrolled = list(ex.map(enroll, p["enrolled"].items()))
            mated = list(ex.map(identify, [path for _, path in p["mated"]]))
            strangers = list(ex.map(identify, p["strangers"]))
        seconds = time.perf_counter() - t0
    sizes = [a for a, _ in enrolled]
    missed = sum(name != person for (person, _), (name, _) in zip(p["mated"], mated))
    named = sum(name is not None for name, _ in strangers)
    thresholds = {t for _, t in mated + strangers if t is not None}
    return {"k": k, "gallery": len(sizes), "template_sizes": {str(s): sizes.count(s) for s in sorted(set(sizes))},
            "enroll_refusals": sum(r for _, r in enrolled),
            "mated": len(mated), "missed": missed, "fnir": round(missed / len(mated), 4),
            "fnir_ci95": wilson(missed, len(mated)), "no_face_mated": sum(t is None for _, t in mated),
            "strangers": len(strangers), "named": named, "fpir": round(named / len(strangers), 4),
            "fpir_ci95": wilson(named, len(strangers)), "no_face_strangers": sum(t is None for _, t in strangers),
            "identify_threshold": sorted(thresholds), "seconds": round(seconds, 1)}


def run(args) -> None:
    p = plan(args.seed, args.share)
    print(f"{p['people']} people: {len(p['enrolled'])} enrolled, {len(p['mated'])} mated probes, "
          f"{len(p['strangers'])} stranger photos", flush=True)
    rows = []
    for k in args.ks:
        rows.append(measure(k, p, args.workers))
        r = rows[-1]
        print(f"  k={k}: FNIR {r['fnir']} {r['fnir_ci95']}, FPIR {r['fpir']} {r['fpir_ci95']} "
              f"(threshold {r['identify_threshold']}, {r['seconds']} s)", flush=True)
    result = {"command": "python bench/templates_http.py " + " ".join(sys.argv[1:]),
              "model_version": p["model_version"], "people": p["people"], "rows": rows,
              "uptime": os.popen("uptime").read().strip()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    print(f"-> {OUT.relative_to(REPO)}")


def report(args) -> None:
    from _common import write_docs_block

    r = json.loads(OUT.read_text())
    lines = [f"Model `{r['model_version']}` behind the README's `serve` (SQLite); {r['rows'][0]['gallery']} of "
             f"{r['people']} CelebA test and training identities enrolled, the others and the validation identities "
             "strangers; the "
             "service's own identify threshold for the gallery (target FPIR 0.01) and per-size thresholds.", "",
             "| photos per person (k) | template sizes | enroll refusals | mated probes | FNIR [95 %] "
             "| stranger photos | FPIR [95 %] | identify threshold (one photo) |",
             "|---|---|---|---|---|---|---|---|"]
    for x in r["rows"]:
        sizes = ", ".join(f"{n}x{s}" for s, n in x["template_sizes"].items())
        lines.append(f"| {x['k']} | {sizes} | {x['enroll_refusals']} | {x['mated']} | {x['fnir']:.3f} "
                     f"[{x['fnir_ci95'][0]:.3f}, {x['fnir_ci95'][1]:.3f}] | {x['strangers']} | {x['fpir']:.4f} "
                     f"[{x['fpir_ci95'][0]:.4f}, {x['fpir_ci95'][1]:.4f}] | "
                     f"{', '.join(f'{t:.4f}' for t in x['identify_threshold'])} |")
    lines += ["", f"Command: `{r['command']}`; machine load at the end: {r['uptime']}."]
    write_docs_block("templates-http", "\n".join(lines))
    print("docs/benchmarks.md (templates-http block)")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3])
    r.add_argument("--share", type=float, default=0.75, help="share of the eligible people enrolled")
    r.add_argument("--workers", type=int, default=4, help="concurrent requests")
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(fn=run)
    sub.add_parser("report").set_defaults(fn=report)
    args = p.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
