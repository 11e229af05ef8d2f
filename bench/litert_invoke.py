"""Faces per LiteRT invoke: speed and memory of each net of the default artefact (or FACEAPI_MODEL)
at several invoke sizes, each size in a fresh process (memory is per process).

    nice python bench/litert_invoke.py --sizes 1,2,4,8,16,32 --faces 32 --repeats 3

For each size: the net's ms per face over a batch of `--faces` faces run in passes of that size
(best of `--repeats`), and the process RSS after loading the nets and after the batch. Needs the
model cache (`python -m app models prepare`); TensorFlow is not imported.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: app/ importable


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_size(size: int, faces: int, repeats: int, threads: int) -> dict:
    import numpy as np

    from app.core.config import load_settings
    from app.inference.artifacts import load_artifact
    from app.inference.litert import LiteRTNet, cached_path, net_specs

    settings = load_settings()
    artifact = load_artifact(settings.model_dir())
    base = rss_mb()
    nets = [(s.kind, s.input_size, LiteRTNet(cached_path(settings.model_cache_dir, s), threads, size))
            for s in net_specs(artifact)]
    loaded = rss_mb()
    row = {"invoke_size": size, "rss_before_mb": round(base), "rss_loaded_mb": round(loaded)}
    rng = np.random.default_rng(0)
    for kind, side, net in nets:
        x = rng.uniform(0, 255, (faces, side, side, 3)).astype(np.float32)
        net(x[:size])  # first invoke at this size (allocation, XNNPACK set-up)
        best = min(_timed(net, x) for _ in range(repeats))
        row[f"{kind}_ms_per_face"] = round(1000 * best / faces, 2)
    row["rss_after_batch_mb"] = round(rss_mb())
    return row


def _timed(net, x) -> float:
    t = time.perf_counter()
    net(x)
    return time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1,2,4,8,16,32")
    p.add_argument("--faces", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child: measure one size
    a = p.parse_args()
    if a.one:
        print(json.dumps(one_size(a.one, a.faces, a.repeats, a.threads)))
        return 0
    rows = []
    for size in (int(s) for s in a.sizes.split(",")):
        out = subprocess.run([sys.executable, __file__, "--one", str(size), "--faces", str(a.faces),
                              "--repeats", str(a.repeats), "--threads", str(a.threads)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
