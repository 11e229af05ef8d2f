"""Identify at scale: SQLite + exact NumPy search vs PostgreSQL + pgvector HNSW, N up to 1M.

    python bench/identify_scale.py run --n 10000 100000          # results -> var/bench/identify_scale/
    nice -n 10 python bench/identify_scale.py run --n 1000000 --configs vector:16:64 halfvec:16:64
    python bench/identify_scale.py report                         # table (markdown) + docs/img plot

Gallery: face-like synthetic embeddings, not uniform random vectors (the worst case for
HNSW and unlike faces). The generator is fitted on real embeddings of the CelebA subset
(service pipeline: YuNet, alignment, pretrained FaceNet graph):
  x = normalise(mean + s_b * B z_b + s_w * W z_w),  z ~ N(0, I)
where B B^T is the between-identity covariance (total minus within, eigenvalues clipped
at 0) and W W^T the pooled within-identity covariance. One identity = one draw of z_b;
each photo of it = a new draw of z_w. s_b and s_w are calibrated so that the median
same-person and different-person cosine distances equal those of real CelebA pairs; the
quantiles of both are written next to the results as a check.

Queries: new photos of enrolled identities (ground truth: exact search), plus a share of
photos of identities that are not enrolled (these should come back as "no match" at the
service threshold; the false-match rate is reported as measured).

Timed: search only, one query at a time, through the service's own code path
(`PersonStore.nearest`: ExactIndex on SQLite; one `ORDER BY embedding <=> q LIMIT k`
query with `SET LOCAL hnsw.ef_search` on PostgreSQL). Loading (COPY on PostgreSQL,
executemany + `load_index` on SQLite) and index builds are timed separately.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

OUT_DIR = REPO / "var" / "bench" / "identify_scale"
PLOT = REPO / "docs" / "img" / "identify_scale.png"
ARTIFACT = REPO / "model" / "artifacts" / "facenet-casia-base-v1"
DIM = 512
K = 10
MODEL_VERSION = "facenet-casia-base-v1"


# ----------------------------------------------------------------------------- real embeddings


def real_embeddings() -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, identities) of the CelebA subset's usable faces, through the service pipeline."""
    from app.inference.backbones.facenet.graph import graph_sha256
    from model.common import paths
    from model.faces import data as facedata

    celeba = facedata.load_celeba()
    key = hashlib.sha256(("\n".join(celeba.files) + graph_sha256()).encode()).hexdigest()[:12]
    cache = paths.cache_dir() / f"identify_scale_celeba_{key}.npz"
    if cache.exists():
        z = np.load(cache)
        return z["embeddings"], z["identities"]
    from app.inference.backbones.facenet.graph import EMBEDDING_DIM, INPUT_SIZE, FaceNetGraphEmbedder

    detections = facedata.detect_all(celeba)
    usable = detections.found
    faces = facedata.aligned_faces(celeba, detections)
    emb = facedata.embed_all(FaceNetGraphEmbedder(MODEL_VERSION, EMBEDDING_DIM, INPUT_SIZE), faces, usable, batch=32)
    out = emb[usable], celeba.identities[usable]
    np.savez(cache, embeddings=out[0], identities=out[1])
    return out


# ----------------------------------------------------------------------------- generator


class FaceLikeGenerator:
    def __init__(self, emb: np.ndarray, ids: np.ndarray, seed: int = 0) -> None:
        self.mean = emb.mean(0)
        labels, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
        centres = np.zeros((len(labels), emb.shape[1]))
        np.add.at(centres, inverse, emb)
        centres /= counts[:, None]
        resid = emb - centres[inverse]
        dof = len(emb) - len(labels)
        within = resid.T @ resid / dof
        total = np.cov(emb.T)
        self.W = _sqrt_psd(within)
        self.B = _sqrt_psd(total - within)
        self.s_b = self.s_w = 1.0
        self.sigma = 0.0  # log-normal spread of the per-photo noise scale (photo quality varies)
        self.real_same, self.real_diff = _pair_distances(emb, ids, np.random.default_rng(seed))
        self._calibrate(seed)

    def identities(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return (self.s_b * rng.standard_normal((n, self.B.shape[0])) @ self.B.T).astype(np.float32)

    def photos(self, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
        scale = self.s_w * np.exp(self.sigma * rng.standard_normal((len(centres), 1)) - self.sigma ** 2 / 2)
        noise = scale * (rng.standard_normal(centres.shape) @ self.W.T)
        x = self.mean + centres + noise
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def synthetic_pairs(self, rng: np.random.Generator, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
        c = self.identities(rng, n)
        a, b = self.photos(rng, c), self.photos(rng, c)
        other = self.photos(rng, self.identities(rng, n))
        return 1 - np.sum(a * b, 1), 1 - np.sum(a * other, 1)

    def _calibrate(self, seed: int) -> None:
        """Match the median and the 10-90 % spread of real same-person distances, and the
        median of real different-person distances."""
        def spread(d):
            return np.quantile(d, 0.9) - np.quantile(d, 0.1)

        target_same, target_diff = np.median(self.real_same), np.median(self.real_diff)
        target_spread = spread(self.real_same)
        for _ in range(25):
            same, diff = self.synthetic_pairs(np.random.default_rng(seed + 1))
            # distance grows with within-noise (same pairs) and between-spread (different pairs)
            self.s_w *= (target_same / np.median(same)) ** 0.7
            self.s_b *= (target_diff / np.median(diff)) ** 0.7
            self.sigma = max(0.0, self.sigma + 1.5 * (target_spread - spread(same)))

    def summary(self) -> dict:
        same, diff = self.synthetic_pairs(np.random.default_rng(123))
        q = [0.01, 0.1, 0.5, 0.9, 0.99]
        return {
            "s_b": round(float(self.s_b), 4), "s_w": round(float(self.s_w), 4),
            "sigma": round(float(self.sigma), 4),
            "quantiles": q,
            "real_same": np.quantile(self.real_same, q).round(4).tolist(),
            "synthetic_same": np.quantile(same, q).round(4).tolist(),
            "real_diff": np.quantile(self.real_diff, q).round(4).tolist(),
            "synthetic_diff": np.quantile(diff, q).round(4).tolist(),
        }


def _sqrt_psd(cov: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
    return vecs * np.sqrt(np.clip(vals, 0, None))


def _pair_distances(emb, ids, rng, n: int = 20000):
    a, b = rng.integers(0, len(emb), (2, n * 4))
    keep_diff = ids[a] != ids[b]
    diff = 1 - np.sum(emb[a[keep_diff][:n]] * emb[b[keep_diff][:n]], 1)
    same = []
    for label in np.unique(ids):
        idx = np.flatnonzero(ids == label)
        i, j = np.triu_indices(len(idx), 1)
        same.append(1 - np.sum(emb[idx[i]] * emb[idx[j]], 1))
    return np.concatenate(same), diff


# ----------------------------------------------------------------------------- data set


def make_dataset(gen: FaceLikeGenerator, n: int, n_queries: int, unenrolled_share: float, seed: int = 0):
    """Gallery [n, 512], queries [q, 512], and for each query the enrolled row (-1: not enrolled)."""
    rng = np.random.default_rng(seed)
    n_unenrolled = int(round(n_queries * unenrolled_share))
    n_enrolled = n_queries - n_unenrolled
    targets = np.sort(rng.choice(n, n_enrolled, replace=False))
    gallery = np.empty((n, DIM), np.float32)
    queries = np.empty((n_queries, DIM), np.float32)
    chunk = 20000
    qi = 0
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        c = gen.identities(rng, e - s)
        gallery[s:e] = gen.photos(rng, c)
        sel = targets[(targets >= s) & (targets < e)]
        if len(sel):
            queries[qi:qi + len(sel)] = gen.photos(rng, c[sel - s])
            qi += len(sel)
    queries[n_enrolled:] = gen.photos(rng, gen.identities(rng, n_unenrolled))
    truth = np.r_[targets, np.full(n_unenrolled, -1)]
    return gallery, queries, truth


def exact_top_k(gallery: np.ndarray, queries: np.ndarray, k: int = K) -> tuple[np.ndarray, np.ndarray]:
    best_i = np.zeros((len(queries), 0), np.int64)
    best_d = np.zeros((len(queries), 0), np.float32)
    for s in range(0, len(gallery), 100000):
        d = 1 - queries @ gallery[s:s + 100000].T
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        best_i = np.hstack([best_i, part + s])
        best_d = np.hstack([best_d, np.take_along_axis(d, part, 1)])
        order = np.argsort(best_d, 1)[:, :k]
        best_i, best_d = np.take_along_axis(best_i, order, 1), np.take_along_axis(best_d, order, 1)
    return best_i, best_d


def pid(i: int) -> str:
    return f"p{i:07d}"


# ----------------------------------------------------------------------------- measurement


def measure(search, queries, truth, exact_i, threshold: float, repeats_warm: int = 20) -> dict:
    """Time `search(q) -> list[Candidate]` per query; recall@1/@10 against exact search."""
    for q in queries[:repeats_warm]:
        search(q)
    lat, r1, r10, hits, false_match = [], [], [], [], []
    enrolled = truth >= 0
    for q, t, ex in zip(queries, truth, exact_i):
        t0 = time.perf_counter()
        cands = search(q)
        lat.append(time.perf_counter() - t0)
        got = [int(c.person_id[1:]) for c in cands]
        exact_ids = list(ex)
        r1.append(bool(got) and got[0] == exact_ids[0])
        r10.append(len(set(got[:K]) & set(exact_ids[:K])) / K)
        matched = bool(cands) and cands[0].distance <= threshold
        hits.append(matched and got[0] == t)
        false_match.append(matched and t < 0)
    lat, r1, r10 = np.array(lat) * 1e3, np.array(r1), np.array(r10)
    hits, false_match = np.array(hits), np.array(false_match)

    def stats(mask):
        return {"queries": int(mask.sum()),
                "p50_ms": round(float(np.percentile(lat[mask], 50)), 2),
                "p99_ms": round(float(np.percentile(lat[mask], 99)), 2),
                "mean_ms": round(float(lat[mask].mean()), 2),
                "recall@1": round(float(r1[mask].mean()), 4),
                "recall@10": round(float(r10[mask].mean()), 4)}

    return {"enrolled": {**stats(enrolled), "identified": round(float(hits[enrolled].mean()), 4)},
            "unenrolled": {**stats(~enrolled), "false_match_rate": round(float(false_match[~enrolled].mean()), 4)}
            if (~enrolled).any() else None,
            "all": stats(np.ones_like(enrolled))}


def bench_sqlite(gallery, queries, truth, exact_i, threshold, workdir: Path) -> dict:
    import sqlite3

    from app.core.db import make_engine
    from app.core.migrate import upgrade
    from app.storage.persons import PersonStore

    path = workdir / f"identify_scale_n{len(gallery)}.db"  # one per N: runs may overlap
    for leftover in workdir.glob(path.name + "*"):
        leftover.unlink()
    url = f"sqlite:///{path}"
    upgrade(url, embedding_width=(DIM, MODEL_VERSION))  # columns as wide as these embeddings
    t0 = time.perf_counter()
    con = sqlite3.connect(path)
    con.executemany(
        "INSERT INTO persons (person_id, embedding, model_version) VALUES (?, ?, ?)",
        ((pid(i), gallery[i].astype("<f4").tobytes(), MODEL_VERSION) for i in range(len(gallery))))
    con.commit()
    con.close()
    insert_s = time.perf_counter() - t0
    engine = make_engine(url)
    store = PersonStore(engine, MODEL_VERSION, DIM)
    t0 = time.perf_counter()
    store.load_index()
    load_s = time.perf_counter() - t0
    res = measure(lambda q: store.nearest(q, K), queries, truth, exact_i, threshold)
    engine.dispose()
    size = path.stat().st_size
    path.unlink(missing_ok=True)
    return {"engine": "sqlite-exact", "insert_s": round(insert_s, 1), "load_index_s": round(load_s, 1),
            "db_bytes": size, "index_bytes": int(gallery.nbytes), **res}


PG_SETTINGS = {
    "shared_buffers": "2GB",
    "maintenance_work_mem": "5GB",          # the HNSW graph must fit, or the build slows down a lot
    "max_parallel_maintenance_workers": "1",  # 2 cores: leader + 1 worker
    "work_mem": "64MB",
    "jit": "off",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "1h",
}


def copy_into_postgres(dsn: str, gallery: np.ndarray) -> float:
    import psycopg
    from pgvector.psycopg import register_vector

    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        register_vector(conn)
        with conn.cursor() as cur:
            with cur.copy("COPY persons (person_id, embedding, model_version) FROM STDIN "
                          "WITH (FORMAT BINARY)") as copy:
                copy.set_types(["varchar", "vector", "varchar"])
                for i in range(len(gallery)):
                    copy.write_row((pid(i), gallery[i], MODEL_VERSION))
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE persons")
    return time.perf_counter() - t0


def bench_postgres(gallery, queries, truth, exact_i, threshold, configs, ef_searches, emit) -> list[dict]:
    import psycopg
    from sqlalchemy import Float, bindparam, select, text

    from app.core.db import make_engine
    from app.core.migrate import upgrade
    from app.storage.models import Person
    from app.storage.persons import PersonStore
    from app.domain.verification import Candidate
    from tests.integration.pgserver import PostgresServer

    server = PostgresServer.start(PG_SETTINGS)
    out = []
    try:
        url = server.create_database("scale")
        upgrade(url, embedding_width=(DIM, MODEL_VERSION))
        dsn = server.dsn("scale")
        with psycopg.connect(dsn, autocommit=True) as conn:  # load first, build after: much faster
            conn.execute("DROP INDEX IF EXISTS ix_persons_embedding_hnsw, ix_persons_embedding_hnsw_half")
        copy_s = copy_into_postgres(dsn, gallery)
        with psycopg.connect(dsn, autocommit=True) as conn:
            table_bytes = conn.execute("SELECT pg_total_relation_size('persons')").fetchone()[0]
        print(f"  COPY {len(gallery)} rows: {copy_s:.1f} s, table {table_bytes / 2**20:.0f} MiB", flush=True)
        engine = make_engine(url)
        for cfg in configs:
            kind, m, efc = cfg.split(":")
            cast = "::halfvec(512)" if kind == "halfvec" else ""
            opclass = f"{kind}_cosine_ops"
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("DROP INDEX IF EXISTS bench_hnsw")
                t0 = time.perf_counter()
                conn.execute(f"CREATE INDEX bench_hnsw ON persons USING hnsw ((embedding{cast}) {opclass}) "
                             f"WITH (m = {int(m)}, ef_construction = {int(efc)})")
                build_s = time.perf_counter() - t0
                conn.execute("ANALYZE persons")
                index_bytes = conn.execute("SELECT pg_relation_size('bench_hnsw')").fetchone()[0]
            print(f"  {cfg}: build {build_s:.1f} s, {index_bytes / 2**20:.0f} MiB", flush=True)
            for ef in ef_searches:
                store = PersonStore(engine, MODEL_VERSION, DIM, ef_search=ef)
                if kind == "halfvec":  # the service's path (migration 0002's index)
                    search = lambda q, store=store: store.nearest(q, K)  # noqa: E731
                else:
                    search = _vector_search(engine, ef, text, bindparam, select, Float, Person, Candidate)
                plan = _plan(engine, kind, ef)
                res = measure(search, queries, truth, exact_i, threshold)
                row = {"engine": f"pg-hnsw-{kind}", "m": int(m), "ef_construction": int(efc),
                       "ef_search": ef, "build_s": round(build_s, 1), "index_bytes": int(index_bytes),
                       "copy_s": round(copy_s, 1), "table_bytes": int(table_bytes), "plan": plan, **res}
                print(f"    ef_search {ef}: enrolled p50 {res['enrolled']['p50_ms']} ms, "
                      f"p99 {res['enrolled']['p99_ms']} ms, recall@1 {res['enrolled']['recall@1']}, "
                      f"recall@10 {res['enrolled']['recall@10']}", flush=True)
                out.append(row)
                emit(out)
        engine.dispose()
    finally:
        server.stop()
    return out


def _vector_search(engine, ef, text, bindparam, select, Float, Person, Candidate):
    """Same query shape as PersonStore.nearest, on a full-precision vector index."""
    from pgvector.sqlalchemy import Vector
    from sqlalchemy.orm import Session

    def search(q):
        with Session(engine) as s, s.begin():
            s.execute(text(f"SET LOCAL hnsw.ef_search = {int(ef)}"))
            qp = bindparam("q", np.asarray(q, np.float32), type_=Vector(DIM))
            d = Person.embedding.op("<=>", return_type=Float)(qp)
            rows = s.execute(select(Person.person_id, Person.display_name, d.label("d"))
                             .where(Person.model_version == MODEL_VERSION).order_by(d).limit(K)).all()
        return [Candidate(r[0], r[1], float(r[2])) for r in rows]

    return search


def _plan(engine, kind: str, ef: int) -> str:
    """First lines of EXPLAIN for the search query: the index must serve it."""
    from sqlalchemy import text

    cast = "::halfvec(512)" if kind == "halfvec" else ""
    vec = "[" + ",".join(["0.04419"] * DIM) + "]"
    with engine.connect() as conn, conn.begin():
        conn.execute(text(f"SET LOCAL hnsw.ef_search = {ef}"))
        rows = conn.execute(text(
            f"EXPLAIN SELECT person_id FROM persons WHERE model_version = :v "
            f"ORDER BY embedding{cast} <=> '{vec}'{cast} LIMIT {K}"), {"v": MODEL_VERSION}).all()
    return " / ".join(r[0].strip() for r in rows[:3])


# ----------------------------------------------------------------------------- commands


def run(args) -> None:
    threshold = json.loads((ARTIFACT / "metadata.json").read_text())["threshold"]
    t0 = time.perf_counter()
    if args.fit_on == "base":
        emb, ids = real_embeddings()
    else:  # the service's default artefact and detector (bench/_face_embeddings.py's cache)
        sys.path.insert(0, str(REPO / "bench"))
        from _face_embeddings import celeba_embeddings

        z = celeba_embeddings()
        emb, ids = z["embeddings"][z["found"]].astype(np.float64), z["identities"][z["found"]]
    gen = FaceLikeGenerator(emb, ids)
    summary = gen.summary()
    print(f"real embeddings {emb.shape} ({time.perf_counter() - t0:.0f} s); generator {summary}", flush=True)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for n in args.n:
        t0 = time.perf_counter()
        gallery, queries, truth = make_dataset(gen, n, args.queries, args.unenrolled_share, seed=args.seed)
        exact_i, exact_d = exact_top_k(gallery, queries)
        print(f"N={n}: data + exact truth {time.perf_counter() - t0:.0f} s", flush=True)
        result = {"n": n, "fit_on": args.fit_on, "queries": args.queries, "unenrolled_share": args.unenrolled_share, "k": K,
                  "threshold": threshold, "generator": summary, "cpu_count": os.cpu_count(),
                  "command": "python bench/identify_scale.py " + " ".join(sys.argv[1:]),
                  "exact_truth": {
                      "enrolled_top1_is_true_identity": round(float(np.mean(
                          exact_i[truth >= 0, 0] == truth[truth >= 0])), 4),
                      "enrolled_identified_at_threshold": round(float(np.mean(
                          (exact_i[truth >= 0, 0] == truth[truth >= 0]) & (exact_d[truth >= 0, 0] <= threshold))), 4),
                      "unenrolled_false_match_at_threshold": round(float(np.mean(
                          exact_d[truth < 0, 0] <= threshold)), 4) if (truth < 0).any() else None,
                      "unenrolled_nearest_distance_p1_p50": np.quantile(exact_d[truth < 0, 0], [0.01, 0.5])
                      .round(4).tolist() if (truth < 0).any() else None,
                  }, "results": []}
        path = OUT_DIR / f"n{n}{args.label}.json"
        if args.append and path.exists():
            old = json.loads(path.read_text())
            result["results"] = [r for r in old["results"]]

        def emit(rows, result=result, path=path, base=list(result["results"])):
            result["results"] = base + rows
            path.write_text(json.dumps(result, indent=1))

        sqlite_rows = []
        if not args.skip_sqlite:
            sqlite_rows.append(bench_sqlite(gallery, queries, truth, exact_i, threshold, OUT_DIR))
            s = sqlite_rows[0]["enrolled"]
            print(f"  sqlite-exact: p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, load_index "
                  f"{sqlite_rows[0]['load_index_s']} s", flush=True)
            emit(sqlite_rows)
        if not args.skip_postgres:
            bench_postgres(gallery, queries, truth, exact_i, threshold, args.configs, args.ef_search,
                           lambda rows: emit(sqlite_rows + rows))
        print(f"N={n} done: {path}", flush=True)


def report(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted((json.loads(p.read_text()) for p in OUT_DIR.glob("n*.json")), key=lambda r: r["n"])
    print("| N | engine | m / ef_c | ef_search | build s | index MiB | p50 ms | p99 ms | recall@1 | recall@10 | non-enrolled p99 ms / recall@1 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    series: dict[str, list] = {}
    for run_ in runs:
        for r in run_["results"]:
            e, u = r["enrolled"], r.get("unenrolled") or {}
            if r["engine"] == "sqlite-exact":
                label, cfg, ef, build = "sqlite-exact", "-", "-", f"load {r['load_index_s']}"
                size = r["index_bytes"] / 2**20
            else:
                label = f"{r['engine']} m{r['m']} efc{r['ef_construction']} ef{r['ef_search']}"
                cfg, ef, build, size = f"{r['m']} / {r['ef_construction']}", r["ef_search"], r["build_s"], r["index_bytes"] / 2**20
            print(f"| {run_['n']:,} | {r['engine']} | {cfg} | {ef} | {build} | {size:.0f} | {e['p50_ms']} | "
                  f"{e['p99_ms']} | {e['recall@1']:.4f} | {e['recall@10']:.4f} | "
                  f"{u.get('p99_ms', '-')} / {u.get('recall@1', '-')} |")
            series.setdefault(label, []).append((run_["n"], e["p50_ms"], e["p99_ms"], e["recall@1"]))
    for run_ in runs:
        print(f"\nN={run_['n']:,}: exact truth {run_['exact_truth']}")
    if runs:
        print(f"\ngenerator: {runs[-1]['generator']}")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for label, pts in sorted(series.items()):
        if label != "sqlite-exact" and not any(n == max(r["n"] for r in runs) for n, *_ in pts):
            continue  # only configurations measured at the largest N
        pts = sorted(pts)
        ns = [p[0] for p in pts]
        style = dict(marker="o", lw=2.5, color="black") if label == "sqlite-exact" else dict(marker=".")
        axes[0].plot(ns, [p[2] for p in pts], label=label, **style)
        axes[1].plot(ns, [p[1] for p in pts], label=label, **style)
    for ax, what in zip(axes, ("p99", "p50")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("enrolled people N")
        ax.set_ylabel(f"identify search latency {what} (ms)")
        ax.axhline(20, color="red", ls=":", lw=1)
        ax.grid(True, which="both", alpha=.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Identify search latency vs gallery size (face-like 512-D, 2 CPU cores, one query at a time)")
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)
    print(f"\nplot: {PLOT.relative_to(REPO)}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--n", type=int, nargs="+", default=[10000, 100000])
    r.add_argument("--queries", type=int, default=600)
    r.add_argument("--unenrolled-share", type=float, default=0.2)
    r.add_argument("--configs", nargs="+", default=["vector:16:64", "vector:32:128", "halfvec:16:64"],
                   help="kind:m:ef_construction, kind = vector or halfvec")
    r.add_argument("--ef-search", type=int, nargs="+", default=[20, 40, 100, 200])
    r.add_argument("--skip-sqlite", action="store_true")
    r.add_argument("--skip-postgres", action="store_true")
    r.add_argument("--append", action="store_true", help="keep earlier results of the same N")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--fit-on", choices=["base", "default"], default="base",
                   help="real embeddings the generator is fitted on: the base graph's (all CelebA "
                        "faces), or the default artefact's (bench/_face_embeddings.py)")
    r.add_argument("--label", default="", help="suffix of the result file, for runs of one N split in parts")
    r.set_defaults(fn=run)
    rep = sub.add_parser("report")
    rep.set_defaults(fn=report)
    args = p.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
