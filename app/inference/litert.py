"""The Keras ports (SFace, dlib) run by LiteRT, the TensorFlow Lite runtime (`ai-edge-litert`),
without TensorFlow in the process.

The `.tflite` files are made by the build step (app/inference/litert_build.py, the only place
that imports TensorFlow for this runtime: `python -m app models prepare`, or `serve` runs it once
in a subprocess when a file is missing). They are cached under FACEAPI_MODEL_CACHE_DIR (default
./var/models, git-ignored), one file per net, named by a key over what the file depends on: the
source weight file's SHA-256 (and the head's, if any), where the net is cut, the converter
(TensorFlow and Keras versions) and this module's BUILD_FORMAT. Another wheel or another
TensorFlow gives another key, so a stale file is never used. The build step also writes
MANIFEST (converter.json) in the cache folder, naming the converter it used: a process without
TensorFlow (the default Docker image) keys its files by that name instead, so a cache built
elsewhere (the image's build stage) is found; with TensorFlow installed the installed version
counts, as before.

Here a net is the plain `Interpreter` (XNNPACK on by default, `threads` threads); the batch
dimension of the input is resized to the pass size (`resize_tensor_input`) only when that size
changes. Nothing in this module imports TensorFlow or Keras.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from app.core.config import default_of
from app.core.wheel_files import file_sha256
from app.domain.vectors import l2_normalize
from app.inference.backbones.dlib.weights import dat_sha256
from app.inference.backbones.sface.weights import onnx_sha256
from app.inference.embedder import check_faces

log = logging.getLogger("app.inference")

BUILD_FORMAT = 1  # bump when the build step changes what it writes
# Images per invoke (the arena is sized for it). Measured on 2 shared CPU cores with
# bench/litert_invoke.py (docs/models.md): ms per image flat within noise from 1 to 8, while each
# doubling adds 12-24 MB of activations (SFace's first layers: 112x112x64 floats per image).
INVOKE_SIZE = 4
# artefact embedder kinds the build step converts
CONVERTIBLE = ("sface-keras", "dlib-keras")
# distributions that provide TensorFlow's converter (whichever is installed)
_TF_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos")
MANIFEST = "converter.json"  # in the cache folder: {"converter": "<what converter_version() said>"}


class ModelCacheMissing(RuntimeError):
    """The .tflite files cannot be found or keyed here (TensorFlow, which builds them, is absent)."""


def converter_version() -> str | None:
    """'tensorflow-cpu 2.21.0 / keras 3.15.1' as installed (read from package metadata: TensorFlow
    is not imported), or None when TensorFlow is not installed (the cache cannot be built here)."""
    for dist in _TF_DISTRIBUTIONS:
        try:
            tf = f"{dist} {metadata.version(dist)}"
            break
        except metadata.PackageNotFoundError:
            continue
    else:
        return None
    try:
        return f"{tf} / keras {metadata.version('keras')}"
    except metadata.PackageNotFoundError:
        return tf


def write_manifest(cache_dir: Path, converter: str) -> Path:
    """Record in `cache_dir` the converter its files were built with (atomically)."""
    path = Path(cache_dir) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{MANIFEST}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"converter": converter}) + "\n")
    os.replace(tmp, path)
    return path


def manifest_converter(cache_dir: Path) -> str | None:
    """The converter `cache_dir`'s MANIFEST names, or None when there is none (or it is unreadable)."""
    try:
        converter = json.loads((Path(cache_dir) / MANIFEST).read_text()).get("converter")
    except (OSError, ValueError, AttributeError):
        return None
    return converter if isinstance(converter, str) and converter else None


@dataclass(frozen=True)
class NetSpec:
    """One net of an artefact to convert: its kind, cut and head, and its source file's hash."""

    kind: str  # sface-keras | dlib-keras
    base_output: str | None
    head: Path | None  # the artefact's Keras head file, if any
    input_size: int

    def source_sha256(self) -> str:
        return onnx_sha256() if self.kind == "sface-keras" else dat_sha256()

    def key(self, converter: str) -> dict:
        return {"kind": self.kind, "source_sha256": self.source_sha256(),
                "head_sha256": file_sha256(self.head) if self.head else None,
                "base_output": self.base_output, "converter": converter, "format": BUILD_FORMAT}

    def file_name(self, converter: str) -> str:
        digest = hashlib.sha256(json.dumps(self.key(converter), sort_keys=True).encode()).hexdigest()
        return f"{self.kind}-{digest[:16]}.tflite"


def net_specs(artifact) -> list[NetSpec]:
    """The convertible nets of `artifact` (a ModelArtifact), in the order the embedder uses them;
    ValueError when it holds a kind that has no LiteRT build (e.g. the FaceNet graph)."""
    def walk(spec) -> list[NetSpec]:  # an EmbedderSpec (app/inference/metadata.py)
        kind = spec.kind or "facenet-graph"
        if kind == "fusion":
            return [n for part in spec.parts or () for n in walk(part)]
        if kind not in CONVERTIBLE:
            raise ValueError(f"embedder kind {kind!r} has no LiteRT build (only {', '.join(CONVERTIBLE)})")
        if spec.input_size is None:
            raise ValueError(f"embedder kind {kind!r} lacks input_size")
        head = artifact.path / spec.head if spec.head else None
        return [NetSpec(kind, spec.base_output, head, spec.input_size)]

    return walk(artifact.embedder)


def supports(artifact) -> bool:
    try:
        net_specs(artifact)
    except ValueError:
        return False
    return True


def cached_path(cache_dir: Path, spec: NetSpec, converter: str | None = None) -> Path:
    """Where `spec`'s .tflite file is (or will be) for the installed converter, or, without
    TensorFlow, for the one the cache's MANIFEST names."""
    converter = converter or converter_version() or manifest_converter(cache_dir)
    if converter is None:
        raise ModelCacheMissing(f"TensorFlow is not installed and {Path(cache_dir) / MANIFEST} is "
                                "missing, so the LiteRT model cache cannot be keyed or built here: run "
                                "`python -m app models prepare` where TensorFlow is installed and copy "
                                "the cache folder (with its manifest) here")
    return Path(cache_dir) / spec.file_name(converter)


def missing_files(artifact, cache_dir: Path) -> list[Path]:
    """The .tflite files `artifact` needs that the cache lacks."""
    return [p for p in (cached_path(cache_dir, s) for s in net_specs(artifact)) if not p.is_file()]


def release_file_pages(path: Path) -> int:
    """Drop this process's resident pages of the memory-mapped `path` (madvise MADV_DONTNEED);
    bytes released. The interpreter maps the .tflite file and XNNPACK packs the weights into its
    own memory, so the mapped copy (~60 MB for the default artefact) is not read again; a page
    that is read comes back from the page cache. Linux only; elsewhere nothing is done."""
    target = str(Path(path).resolve())
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return 0
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    released = 0
    for line in maps:
        fields = line.split(maxsplit=5)
        # only read-only mappings (the interpreter maps the file r--s): dropping a page of one
        # loses nothing, the next read refills it from the file
        if len(fields) == 6 and fields[5] == target and "w" not in fields[1]:
            lo, hi = (int(v, 16) for v in fields[0].split("-"))
            if libc.madvise(lo, hi - lo, 4) == 0:  # MADV_DONTNEED
                released += hi - lo
    return released


@dataclass(frozen=True)
class LiteRTOptions:
    """Where the .tflite files are and how many threads each net gets."""

    cache_dir: Path
    threads: int = default_of("litert_threads")
    invoke_size: int = INVOKE_SIZE


class LiteRTNet:
    """One .tflite net: float32 [N, S, S, 3] -> [N, D], run `invoke_size` faces at a time."""

    def __init__(self, path: Path, threads: int = default_of("litert_threads"), invoke_size: int = INVOKE_SIZE) -> None:
        self.path = Path(path)
        self.invoke_size = invoke_size
        self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        inp = self._interpreter.get_input_details()[0]
        self._input, self._output = inp["index"], self._interpreter.get_output_details()[0]["index"]
        self._shape = tuple(int(d) for d in inp["shape"][1:])
        self._batch = 0
        self._resize(1)
        self._interpreter.set_tensor(self._input, np.zeros((1, *self._shape), np.float32))
        self._interpreter.invoke()  # XNNPACK has packed its own copy of the weights by now
        release_file_pages(self.path)

    def _resize(self, n: int) -> None:
        if n != self._batch:
            self._interpreter.resize_tensor_input(self._input, [n, *self._shape], strict=False)
            self._interpreter.allocate_tensors()
            self._batch = n

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        outs = []
        for s in range(0, len(x), self.invoke_size):
            part = x[s : s + self.invoke_size]
            self._resize(len(part))
            self._interpreter.set_tensor(self._input, part)
            self._interpreter.invoke()
            outs.append(self._interpreter.get_tensor(self._output).copy())
        return np.concatenate(outs)


class LiteRTEmbedder:
    """Aligned uint8 RGB faces [N, S, S, 3] -> L2-normalised embeddings, from a cached .tflite
    file of a Keras port (the same net, head and cut as the Keras embedder of that kind)."""

    def __init__(self, path: Path, model_version: str, input_size: int, embedding_dim: int,
                 threads: int = 2, invoke_size: int = INVOKE_SIZE) -> None:
        self._net = LiteRTNet(path, threads, invoke_size)
        self.model_version, self.input_size, self.embedding_dim = model_version, input_size, embedding_dim
        log.info("embedder %s (LiteRT %s, %d threads, %d faces per invoke)", model_version,
                 Path(path).name, threads, invoke_size)

    def embed(self, faces: np.ndarray) -> np.ndarray:
        check_faces(faces, self.input_size)
        if len(faces) == 0:
            return np.zeros((0, self.embedding_dim), np.float32)
        out = self._net(faces)
        if out.shape[1] != self.embedding_dim:
            raise ValueError(f"{self._net.path.name} makes {out.shape[1]} values, the artefact says "
                             f"{self.embedding_dim}")
        return l2_normalize(out)


def litert_embedder(artifact, options: LiteRTOptions) -> LiteRTEmbedder:
    """The embedder of a one-net artefact (an SFace or dlib port, or one part of a fusion) from its
    cached .tflite file; the caller has checked the artefact's base file."""
    (net,) = net_specs(artifact)
    return LiteRTEmbedder(cached_path(options.cache_dir, net), artifact.model_version, net.input_size,
                          artifact.embedding_dim, options.threads, options.invoke_size)
