"""Accuracy and speed of the whole verification pipeline, in one run.

1. Accuracy on the held-out CelebA *test* identities: every image goes through the
   service's own code from its bytes (decode -> detect -> align -> embed), balanced
   same/different pairs, the model artefact's tuned threshold. Images with no face
   are reported apart (a verify of such an image is a 422, not a wrong answer).
2. Per-stage latency p50/p95 on this CPU, one image at a time.
3. Requests/s of POST /verify against a real server (uvicorn on 127.0.0.1), with 1 and
   16 concurrent clients (micro-batching on, the default); the server's RSS when ready and
   after the load.

With `--baseline REF` every measurement is also made, in the same run, on the build at git
commit REF (e.g. the MTCNN build before YuNet), from its own files (git archive): its own
code, artefacts and thresholds.

Accuracy is compared on identical pairs: every build embeds every test photo it can, and
all builds are then scored on one pair list (a photo with no face makes its pair an error).

    python bench/verify_pairs.py [--model VERSION] [--seconds 20] [--baseline REF] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench._common import LocalService, write_docs_block  # noqa: E402


def percentiles(values, qs=(50, 95)) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {f"p{q}": round(float(np.percentile(a, q)), 1) for q in qs}


def accuracy_and_stages(model: str, n_same: int, seed: int, stage_samples: int) -> dict:
    from app.core.config import Settings
    from app.inference.artifacts import load_artifact
    from app.inference.registry import build_embedder
    from app.vision.decode import DecodeLimits
    from app.vision.detect import YuNetDetector
    from app.vision.pipeline import FacePipeline
    from model.common import metrics
    from model.faces import data as data
    from tqdm import tqdm

    from app.domain import errors

    artifact = load_artifact(Settings(model=model).model_dir())
    embedder = build_embedder(artifact)
    settings = Settings(model=model)
    pipeline = FacePipeline(YuNetDetector(input_side=settings.detect_max_side), DecodeLimits(),
                            artifact.alignment, reduce_to=settings.detect_max_side)
    size = artifact.alignment.size
    celeba = data.load_celeba()
    split = data.split_identities(celeba.identities, seed)
    test_idx = np.flatnonzero(np.isin(celeba.identities, split["test"]))

    aligned = np.zeros((len(celeba.files), size, size, 3), np.uint8)
    found = np.zeros(len(celeba.files), bool)
    stages = {"decode": [], "detect": [], "align": [], "embed": []}
    embedder.embed(np.zeros((1, size, size, 3), np.uint8))  # warm
    for k, i in enumerate(tqdm(test_idx, desc="pipeline (test identities)", unit="img")):
        try:
            sample = pipeline.extract(celeba.path(i).read_bytes(), enroll=False)
        except errors.NoFace:
            continue
        found[i] = True
        aligned[i] = sample.aligned
        if k < stage_samples:
            for name, ms in sample.timings_ms.items():
                stages[name].append(ms)
            t = time.perf_counter()
            embedder.embed(sample.aligned[None])
            stages["embed"].append((time.perf_counter() - t) * 1e3)
    emb = data.embed_all(embedder, aligned, found)
    batch = aligned[found][:32]
    embedder.embed(batch)
    t = time.perf_counter()
    embedder.embed(batch)
    embed_b32 = (time.perf_counter() - t) * 1e3 / len(batch)

    # pairs exactly as the threshold tuning builds them (seed + 1 for test)
    pairs = data.balanced_pairs(celeba.identities, found, split["test"], n_same, seed + 1)
    d = data.pair_distances(emb, pairs)
    report = metrics.evaluate_at(d, pairs.same, artifact.threshold_for("far_1e-3")).to_dict()
    at_max_accuracy = metrics.evaluate_at(d, pairs.same, artifact.threshold_for("max_accuracy")).to_dict()
    return {
        "model_version": artifact.model_version,
        "threshold": artifact.threshold_for("far_1e-3"),
        "metrics_max_accuracy_threshold": at_max_accuracy,
        "test_identities": int(len(split["test"])),
        "test_images": int(len(test_idx)),
        "no_face": int(len(test_idx) - found[test_idx].sum()),
        "metrics": report,
        "stages_ms": {k: percentiles(v) for k, v in stages.items()},
        "embed_ms_per_face_batch32": round(embed_b32, 1),
        "stage_samples": len(stages["decode"]),
    }


# --- HTTP throughput ---------------------------------------------------------------------------

async def drive_verify(url: str, key: str, photos: list[tuple[str, bytes]], clients: int,
                       seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    errors_ = 0
    stop_at = time.monotonic() + seconds

    async def client(c: int, http: httpx.AsyncClient) -> None:
        nonlocal errors_
        k = c
        while time.monotonic() < stop_at:
            person, photo = photos[k % len(photos)]
            k += clients
            t = time.perf_counter()
            r = await http.post(f"{url}/verify", data={"person_id": person},
                                files={"image": ("p.jpg", photo)}, headers={"X-API-Key": key})
            latencies.append((time.perf_counter() - t) * 1e3)
            if r.status_code != 200:
                errors_ += 1

    started = time.monotonic()
    async with httpx.AsyncClient(timeout=60) as http:
        await asyncio.gather(*(client(c, http) for c in range(clients)))
    elapsed = time.monotonic() - started
    return {"requests": len(latencies), "rps": round(len(latencies) / elapsed, 2),
            "errors": errors_, **percentiles(latencies, (50, 95, 99))}


def _rss_mib(pid: int) -> float:
    import psutil

    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def _served_model(server) -> str:
    """The model version the running server reports (its own default unless one was set)."""
    import httpx

    return httpx.get(f"{server.url}/health/ready", timeout=30).json()["checks"]["model_version"]


def http_pairs(url: str, keys: dict, n_pairs: int) -> dict:
    """Enroll photo A, verify photo B for the first n_pairs CelebA test pairs of bench/peers.py
    (balanced pairs over all photos of the held-out test identities): refusals by code and
    accuracy over HTTP, with refused pairs counted as errors."""
    import httpx

    from bench.peers import celeba_pairs

    celeba, cp = celeba_pairs(3000, None)
    pairs = cp["test"]
    codes: dict[str, int] = {}
    refused = []
    right = 0
    with httpx.Client(base_url=url, timeout=120) as http:
        for k in range(n_pairs):
            a, b = (celeba.path(i).read_bytes() for i in (pairs.a[k], pairs.b[k]))
            e = http.post("/enroll", data={"person_id": f"pair-{k}"}, files={"image": ("a.jpg", a)},
                          headers={"X-API-Key": keys["admin"]})
            r = e if e.status_code >= 300 else http.post(
                "/verify", data={"person_id": f"pair-{k}"}, files={"image": ("b.jpg", b)},
                headers={"X-API-Key": keys["client"]})
            if r.status_code == 200:
                right += r.json()["match"] == bool(pairs.same[k])
            else:
                body = r.json()
                code = body.get("code", str(r.status_code))
                codes[code] = codes.get(code, 0) + 1
                step = "enroll" if r is e else "verify"
                refused.append({"pair": k, "step": step, "code": code, "detail": body.get("detail"),
                                "photo": celeba.files[pairs.a[k] if step == "enroll" else pairs.b[k]]})
    return {"pairs": n_pairs, "refusals": dict(sorted(codes.items())), "refused": sum(codes.values()),
            "accuracy_refusals_as_errors": round(right / n_pairs, 4), "refused_photos": refused}


def throughput(seconds: float, builds: dict[str, tuple[Path, str | None]], n_http_pairs: int = 0) -> dict:
    """/verify requests/s with 1 and 16 clients per build; the rows of the builds alternate
    (this build, baseline, this build, ...) so that other load on the CPU hits both alike."""
    import httpx

    from tests.conftest import yale_bytes

    subjects = [f"subject{i:02d}" for i in range(1, 16)]
    conditions = ("happy", "sad", "sleepy", "surprised", "wink", "glasses")
    photos = [(s, yale_bytes(f"{s}.{c}")) for s in subjects for c in conditions]
    out: dict[str, dict] = {}
    servers = {}
    try:
        for label, (repo, model) in builds.items():
            # every client admitted (no load shedding): this measures the builds at fixed client counts
            settings = {"FACEAPI_DETECT_QUEUE_MAX": "64", **({"FACEAPI_MODEL": model} if model else {})}
            server = LocalService(settings, repo=repo).__enter__()
            servers[label] = server
            for s in subjects:
                r = httpx.post(f"{server.url}/enroll", data={"person_id": s},
                               files={"image": ("e.png", yale_bytes(f"{s}.normal"))},
                               headers={"X-API-Key": server.keys["admin"]}, timeout=120)
                r.raise_for_status()
            out[label] = {"ready_s": round(server.ready_s, 1), "rss_ready_mib": _rss_mib(server.proc.pid),
                          "model_version": _served_model(server)}
            asyncio.run(drive_verify(server.url, server.keys["admin"], photos, 4, 3))  # warm both paths
        for clients in (1, 16):
            for label, server in servers.items():
                row = asyncio.run(drive_verify(server.url, server.keys["admin"], photos, clients, seconds))
                out[label][f"{clients} client(s)"] = row
                print(label, clients, row, flush=True)
        for label, server in servers.items():
            out[label]["rss_after_load_mib"] = _rss_mib(server.proc.pid)
        for label, server in servers.items():
            if n_http_pairs:
                out[label]["http_pairs"] = http_pairs(server.url, server.keys, n_http_pairs)
                print(label, out[label]["http_pairs"], flush=True)
    finally:
        for server in servers.values():
            server.__exit__()
    return out


def build_accuracy(repo: Path, model: str | None, n_same: int, seed: int, stage_samples: int,
                   out: Path) -> dict:
    """accuracy_and_stages of the build in `repo`, run by that build's own code in its own
    process; its per-photo embeddings and which photos had a face are kept (observed where
    that code passes them to `balanced_pairs` and `pair_distances`) and saved to `out`, so that
    the builds can then be scored on one pair list. `model` None: that build's default."""
    import subprocess

    model_expr = repr(model) if model else "__import__('app.core.config', fromlist=['x']).DEFAULT_MODEL"
    code = f"""
import json, sys
import numpy as np
sys.path.insert(0, '.')
from model.faces import data
seen = {{}}
_bp, _pd = data.balanced_pairs, data.pair_distances
def bp(identities, usable, *a, **k):
    seen['found'] = np.array(usable, bool)
    return _bp(identities, usable, *a, **k)
def pd(emb, pairs):
    seen['emb'] = np.asarray(emb, np.float32)
    return _pd(emb, pairs)
data.balanced_pairs, data.pair_distances = bp, pd
from bench.verify_pairs import accuracy_and_stages as f
r = f({model_expr}, {n_same}, {seed}, {stage_samples})
np.savez({str(out)!r}, found=seen['found'], emb=seen['emb'])
print('RESULT ' + json.dumps(r))
"""
    env = {**os.environ, "PYTHONPATH": str(repo)}
    env = {k: v for k, v in env.items() if not k.startswith("FACEAPI_")}
    # a baseline's tree lives under /tmp, where its default data path (../shared/data) is not:
    # every build reads the data this checkout reads
    from app.core.config import load_settings

    env["FACEAPI_DATA_DIR"] = str(load_settings().data_dir.resolve())
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the accuracy run of {repo} failed:\n{done.stderr[-3000:]}")
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line.removeprefix("RESULT "))


def identical_pairs(acc: dict, saved: dict[str, Path], n_same: int, seed: int) -> dict:
    """Every build scored on ONE pair list: balanced pairs over all photos of the test
    identities (seed + 1, the pairs of bench/peers.py), whichever build found a face in them.
    (a) all pairs, a photo with no face making its pair an error (and a rejection in the ROC:
    distance +inf); (b) the pairs every build could score."""
    from model.common import metrics
    from model.faces import data

    celeba = data.load_celeba()
    split = data.split_identities(celeba.identities, seed)
    pairs = data.balanced_pairs(celeba.identities, np.ones(len(celeba.files), bool), split["test"],
                                n_same, seed + 1)
    dist, valid = {}, {}
    for b, path in saved.items():
        z = np.load(path)
        valid[b] = z["found"][pairs.a] & z["found"][pairs.b]
        dist[b] = np.full(len(pairs), np.inf)
        dist[b][valid[b]] = data.pair_distances(z["emb"], pairs)[valid[b]]
    common = np.logical_and.reduce(list(valid.values()))
    out = {"pairs": len(pairs), "same_pairs": int(pairs.same.sum()), "common_pairs": int(common.sum()),
           "builds": {}}
    for b in saved:
        d, v, y = dist[b], valid[b], pairs.same
        row = {"unscored_pairs": int((~v).sum()), "thresholds": {}}
        for policy, t in (("far_1e-3", acc[b]["threshold"]),
                          ("max_accuracy", acc[b]["metrics_max_accuracy_threshold"]["threshold"])):
            correct = (d <= t) == y
            row["thresholds"][policy] = {
                "threshold": t,
                "accuracy_refusals_as_errors": float(np.mean(correct & v)),
                "accuracy_common_pairs": float(np.mean(correct[common])),
                "far_all_pairs": float(np.mean((d <= t)[~y])), "tar_all_pairs": float(np.mean((d <= t)[y]))}
        row.update(roc_auc=metrics.roc_auc(d, y), tar_at_far_1e3=metrics.tar_at_far(d, y, 1e-3),
                   roc_auc_common=metrics.roc_auc(d[common], y[common]),
                   tar_at_far_1e3_common=metrics.tar_at_far(d[common], y[common], 1e-3))
        out["builds"][b] = row
    return out


def markdown(result: dict, command: str) -> str:
    acc = result["accuracy"]
    builds = list(result["throughput"])
    lines = [
        "## Verification pipeline (`bench/verify_pairs.py`)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {result['machine']}; load before the run: `{result['uptime']}`, after: "
        f"`{result.get('uptime_after', 'not recorded')}`; builds: "
        + "; ".join(f"**{b}** (model `{result['models'][b]}`)" for b in builds) + ".",
        "",
    ]
    if acc:
        lines += _accuracy_markdown(acc, result["identical_pairs"])
    return "\n".join(lines + _throughput_markdown(result, builds) + [""])


def _accuracy_markdown(acc: dict, same: dict) -> list[str]:
    first = next(iter(acc.values()))
    builds = list(acc)
    rows = []
    for b in builds:
        r = same["builds"][b]
        for policy, t in r["thresholds"].items():
            rows.append(f"| {b} | {t['threshold']:.4f} ({policy}) | {acc[b]['no_face']}/{acc[b]['test_images']} | "
                        f"{r['unscored_pairs']} | {t['accuracy_refusals_as_errors']:.4f} | "
                        f"{t['accuracy_common_pairs']:.4f} | {t['tar_all_pairs']:.4f} / {t['far_all_pairs']:.4f} | "
                        f"{r['roc_auc']:.4f} / {r['roc_auc_common']:.4f} | "
                        f"{r['tar_at_far_1e3']:.4f} / {r['tar_at_far_1e3_common']:.4f} |")
    return [
        "Each build uses its own code, artefact metadata and thresholds (tuned on the validation "
        "identities with its own detector): the service default (FAR <= 1e-3 on validation) and "
        "the maximum-accuracy one (`FACEAPI_THRESHOLD_POLICY=max_accuracy`).",
        "",
        f"**Accuracy on held-out CelebA test identities, identical pairs for every build** "
        f"({first['test_identities']} identities, {first['test_images']} images, every image from its "
        f"bytes through decode, detection, alignment and the embedder). One list of {same['pairs']} "
        f"balanced pairs ({same['same_pairs']} same) over all photos of those identities (the test "
        "pairs of `bench/peers.py`), whichever build found faces in them. *all pairs*: a pair with "
        "a photo where the build found no face is an error (a refusal) and a rejection in the ROC; "
        f"*common*: the {same['common_pairs']} pairs every build could score.",
        "",
        "| build | threshold | photos with no face | pairs lost | accuracy, all pairs | accuracy, common | "
        "TAR / FAR at threshold, all pairs | ROC AUC, all / common | TAR@FAR=1e-3, all / common |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"**Per-stage latency**, one image at a time ({first['stage_samples']} CelebA images, longer "
        "side <= 256 px), ms, p50 / p95 (the builds' accuracy runs follow each other, not interleaved):",
        "",
        "| stage | " + " | ".join(builds) + " |",
        "|---|" + "---|" * len(builds),
        *[f"| {k} | " + " | ".join(f"{acc[b]['stages_ms'][k]['p50']} / {acc[b]['stages_ms'][k]['p95']}"
                                   for b in builds) + " |" for k in first["stages_ms"]],
        "| embed, per face at batch 32 | " + " | ".join(str(acc[b]["embed_ms_per_face_batch32"])
                                                       for b in builds) + " |",
        "",
    ]


def _throughput_markdown(result: dict, builds: list[str]) -> list[str]:
    lines = [
        f"**POST /verify throughput** against `python -m app serve` on 127.0.0.1 (Yale photos, "
        f"320x243 PNG; {result['seconds']} s per row; the builds' rows alternate):",
        "",
        "| build | clients | requests/s | p50 ms | p95 ms | p99 ms | errors | vs. first build |",
        "|---|---|---|---|---|---|---|---|",
    ]
    t = result["throughput"]
    ref = builds[0]
    for clients in ("1 client(s)", "16 client(s)"):
        for b in builds:
            v = t[b][clients]
            lines.append(f"| {b} | {clients.split()[0]} | {v['rps']} | {v['p50']} | {v['p95']} | "
                         f"{v['p99']} | {v['errors']} | {v['rps'] / t[ref][clients]['rps']:.2f}x |")
    lines += ["", "**Server memory** (RSS of the `serve` process):", "",
              "| build | ready after | RSS at ready | RSS after the load rows |", "|---|---|---|---|"]
    lines += [f"| {b} | {t[b]['ready_s']} s | {t[b]['rss_ready_mib']} MiB | {t[b]['rss_after_load_mib']} MiB |"
              for b in builds]
    if all("http_pairs" in t[b] for b in builds):
        n = t[builds[0]]["http_pairs"]["pairs"]
        lines += ["", f"**End to end over HTTP** on the first {n} CelebA test pairs of `bench/peers.py` "
                  "(balanced pairs over all photos of the held-out test identities; enroll A, verify B):", "",
                  "| build | refused (by code) | accuracy, refusals counted as errors |", "|---|---|---|"]
        lines += [f"| {b} | {t[b]['http_pairs']['refused']} ({t[b]['http_pairs']['refusals'] or 'none'}) | "
                  f"{t[b]['http_pairs']['accuracy_refusals_as_errors']:.3f} |" for b in builds]
    return lines


def main() -> int:
    import subprocess

    from app.core.config import DEFAULT_MODEL
    from bench._common import baseline_checkout

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.environ.get("FACEAPI_MODEL", DEFAULT_MODEL))
    parser.add_argument("--pairs", type=int, default=3000, help="same pairs (as many different)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stage-samples", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=20.0, help="per throughput row")
    parser.add_argument("--baseline", metavar="REF", default=None,
                        help="git commit of a build to measure beside this one, e.g. the MTCNN build")
    parser.add_argument("--label", default="this build (YuNet)")
    parser.add_argument("--baseline-label", default="baseline (MTCNN)")
    parser.add_argument("--baseline-model", default=None,
                        help="model of the baseline build (default: that build's own default)")
    parser.add_argument("--accuracy", choices=["all", "this", "none"], default="all",
                        help="which builds' accuracy and stage latency to measure (the baseline's is slow)")
    parser.add_argument("--http-pairs", type=int, default=200, help="CelebA pairs enrolled/verified over HTTP")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--json", type=Path, default=REPO / "var" / "bench" / "verify_pairs.json")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="render the docs block from an earlier run's results file (no measuring)")
    parser.add_argument("--command", default=None, help="with --from-json: the command that made it")
    args = parser.parse_args()
    if args.from_json:
        block = markdown(json.loads(args.from_json.read_text()), args.command or "(not recorded)")
        print(block)
        if args.write_docs:
            write_docs_block("verify_pairs", block)
        return 0

    builds = {args.label: (REPO, args.model)}
    if args.baseline:  # the baseline runs its own default model unless --baseline-model names one
        builds[args.baseline_label] = (baseline_checkout(args.baseline), args.baseline_model)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    result = {"machine": f"{os.cpu_count()} CPU cores, no GPU", "seconds": args.seconds, "uptime": uptime,
              "accuracy": {}, "models": {}}
    saved = {}
    for n, (label, (repo, model)) in enumerate(builds.items()):
        if args.accuracy == "none" or (args.accuracy == "this" and repo != REPO):
            continue
        saved[label] = args.json.parent / f"verify_pairs_embeddings_{n}.npz"
        saved[label].parent.mkdir(parents=True, exist_ok=True)
        result["accuracy"][label] = build_accuracy(repo, model, args.pairs, args.seed, args.stage_samples,
                                                   saved[label])
        print(label, json.dumps(result["accuracy"][label]), flush=True)
    if saved:
        result["identical_pairs"] = identical_pairs(result["accuracy"], saved, args.pairs, args.seed)
        print(json.dumps(result["identical_pairs"]), flush=True)
    result["throughput"] = throughput(args.seconds, builds, args.http_pairs)
    for label, (repo, model) in builds.items():
        result["models"][label] = result["throughput"][label]["model_version"]
    result["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    command = "python bench/verify_pairs.py " + shlex.join(sys.argv[1:])
    block = markdown(result, command.strip())
    print(block)
    if args.write_docs:
        write_docs_block("verify_pairs", block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
