"""GPU check for the keras runtime: the default artefact's Keras nets on the GPU against the same
nets on the CPU, on real aligned faces, and their speed. Run it on a GPU host (TensorFlow with
CUDA, e.g. `pip install tensorflow[and-cuda]==2.21.0` in place of tensorflow-cpu):

    python bench/gpu_check.py [--faces 32] [--repeats 5]

Yale photos are detected (YuNet) and aligned on the artefact's canvas as the service does; the
fused embedder (both nets, mirror images, weighting) embeds them once with every variable and op
on /CPU:0 and once on /GPU:0. Passes when every face's cosine between the two is >= 0.9999,
first with TensorFlow's defaults (TF32 matmuls and convolutions allowed on Ampere and later),
then with TF32 off. Prints ms per face for a batch of `--faces` on each device (best of
`--repeats`). Exit status: 0 pass, 1 a cosine below the bound, 2 no GPU visible.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: app/ importable
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MIN_COSINE = 0.9999


def aligned_yale_faces(n: int) -> tuple[np.ndarray, object]:
    from PIL import Image

    from app.core.config import load_settings
    from app.inference.artifacts import load_artifact
    from app.vision.align import align_face
    from app.vision.detect import YuNetDetector

    settings = load_settings()
    artifact = load_artifact(settings.model_dir())
    detector, faces = YuNetDetector(), []
    for p in sorted((settings.data_dir / "yalefaces").glob("subject*.png")):
        rgb = np.asarray(Image.open(p).convert("RGB"))
        found = detector.detect(rgb)
        if found:
            faces.append(align_face(rgb, found[0].landmarks, artifact.alignment))
        if len(faces) == n:
            break
    if len(faces) < n:
        raise SystemExit(f"only {len(faces)} faces found in {settings.data_dir / 'yalefaces'}")
    return np.stack(faces), artifact


def on_device(device: str, artifact, faces: np.ndarray, repeats: int) -> tuple[np.ndarray, float]:
    import tensorflow as tf

    from app.inference.registry import build_embedder

    with tf.device(device):
        embedder = build_embedder(artifact)
        out = embedder.embed(faces)  # also the warm-up
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            embedder.embed(faces)
            best = min(best, time.perf_counter() - t)
    return out, 1000 * best / len(faces)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--faces", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        print(f"no GPU visible to TensorFlow {tf.__version__} (built with CUDA: "
              f"{tf.test.is_built_with_cuda()}); nothing checked")
        return 2
    faces, artifact = aligned_yale_faces(a.faces)
    report = {"gpu": [g.name for g in gpus], "details": tf.config.experimental.get_device_details(gpus[0]),
              "tensorflow": tf.__version__, "faces": len(faces), "model": artifact.model_version}
    cpu, cpu_ms = on_device("/CPU:0", artifact, faces, a.repeats)
    report["cpu_ms_per_face"] = round(cpu_ms, 2)
    ok = True
    for label, tf32 in (("tf32 default", True), ("tf32 off", False)):
        tf.config.experimental.enable_tensor_float_32_execution(tf32)
        gpu, gpu_ms = on_device("/GPU:0", artifact, faces, a.repeats)
        cos = np.sum(cpu * gpu, axis=1) / (np.linalg.norm(cpu, axis=1) * np.linalg.norm(gpu, axis=1))
        report[label] = {"gpu_ms_per_face": round(gpu_ms, 2), "cosine_min": float(cos.min()),
                         "cosine_mean": float(cos.mean()), "pass": bool(cos.min() >= MIN_COSINE)}
        ok &= bool(cos.min() >= MIN_COSINE)
    print(json.dumps(report, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
