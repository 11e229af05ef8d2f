"""Which runtime runs the embedder (FACEAPI_RUNTIME), why, and building it.

- litert: the Keras ports converted to .tflite (app/inference/litert_build.py) and run by LiteRT;
  TensorFlow is never imported by the service process. When a file is missing from the cache,
  the build step runs once in a subprocess (`python -m app models prepare`), so TensorFlow's
  memory leaves with it.
- keras: the Keras ports in-process on TensorFlow (places the work on a GPU when it sees one).
- remote: TensorFlow Serving at FACEAPI_EMBEDDER_URL (app/inference/remote.py).

Unset, the choice is: remote when FACEAPI_EMBEDDER_URL is set; keras when a GPU is visible and
the installed TensorFlow is a GPU build; litert otherwise, unless the artefact has no LiteRT build.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from glob import glob
from importlib import metadata

from app.core.config import REPO_ROOT, Settings
from app.inference import litert
from app.inference.artifacts import ModelArtifact
from app.inference.embedder import Embedder
from app.inference.registry import build_embedder
from app.inference.remote import RemoteEmbedder

log = logging.getLogger("app.inference")


class RuntimeChoiceError(ValueError):
    """The settings ask for a runtime that cannot run this artefact here."""


@dataclass(frozen=True)
class RuntimeChoice:
    name: str  # litert | keras | remote
    reason: str

    def as_dict(self) -> dict:
        return {"name": self.name, "reason": self.reason}


def gpu_visible() -> str | None:
    """A GPU device node when one is present and the installed TensorFlow can use it (not the
    tensorflow-cpu build); None otherwise. Looks at files and package metadata only."""
    nodes = sorted(glob("/dev/nvidia[0-9]*"))
    if not nodes:
        return None
    try:
        metadata.version("tensorflow")  # tensorflow[and-cuda]; tensorflow-cpu has another name
    except metadata.PackageNotFoundError:
        return None
    return nodes[0]


def choose_runtime(settings: Settings, artifact: ModelArtifact) -> RuntimeChoice:
    asked, url = settings.runtime, settings.embedder_url
    if asked == "remote" and not url:
        raise RuntimeChoiceError("FACEAPI_RUNTIME=remote needs FACEAPI_EMBEDDER_URL (the TensorFlow "
                                 "Serving REST URL)")
    if asked in ("litert", "keras") and url:
        raise RuntimeChoiceError(f"FACEAPI_RUNTIME={asked} but FACEAPI_EMBEDDER_URL is set: unset one")
    if asked == "litert" and not litert.supports(artifact):
        raise RuntimeChoiceError(f"FACEAPI_RUNTIME=litert cannot run artefact {artifact.model_version}: "
                                 f"{_unsupported(artifact)}; use FACEAPI_RUNTIME=keras")
    if asked:
        return RuntimeChoice(asked, f"FACEAPI_RUNTIME={asked}")
    if url:
        return RuntimeChoice("remote", "FACEAPI_EMBEDDER_URL is set")
    gpu = gpu_visible()
    if gpu:
        return RuntimeChoice("keras", f"a GPU is visible ({gpu}) and TensorFlow is a GPU build")
    if not litert.supports(artifact):
        return RuntimeChoice("keras", f"no GPU, but {_unsupported(artifact)}")
    return RuntimeChoice("litert", "CPU host (no GPU visible to TensorFlow): LiteRT, TensorFlow not imported")


def _unsupported(artifact: ModelArtifact) -> str:
    try:
        litert.net_specs(artifact)
    except ValueError as exc:
        return str(exc)
    return ""


def prepare_in_subprocess(settings: Settings, artifact: ModelArtifact) -> None:
    """Run the build step (`python -m app models prepare`) in a child process: TensorFlow is
    imported there only."""
    started = time.monotonic()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cmd = [sys.executable, "-m", "app", "models", "prepare", "--model", str(artifact.path),
           "--cache-dir", str(settings.model_cache_dir)]
    log.info("LiteRT model cache incomplete: building it once (%s)", " ".join(cmd[1:]))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError("the LiteRT build step failed (run `python -m app models prepare` to see "
                           "why): " + " | ".join(tail))
    log.info("LiteRT models built in %.1f s into %s", time.monotonic() - started, settings.model_cache_dir)


def build_for(choice: RuntimeChoice, settings: Settings, artifact: ModelArtifact) -> Embedder:
    """The embedder of `artifact` on the chosen runtime (blocking: model load, maybe a build)."""
    if choice.name == "remote":
        return RemoteEmbedder(settings.embedder_url, artifact)
    if choice.name == "keras":
        return build_embedder(artifact)
    missing = litert.missing_files(artifact, settings.model_cache_dir)
    if missing and litert.converter_version() is None:
        raise litert.ModelCacheMissing(f"{missing[0]} is not in the LiteRT model cache and TensorFlow, "
                                       "which builds it, is not installed here: run `python -m app "
                                       "models prepare` where it is and copy the cache folder here")
    if missing:
        prepare_in_subprocess(settings, artifact)
        still = litert.missing_files(artifact, settings.model_cache_dir)
        if still:
            raise RuntimeError(f"the LiteRT build step ran but {still[0]} is missing")
    return build_embedder(artifact, litert=litert.LiteRTOptions(settings.model_cache_dir,
                                                                settings.litert_threads))


def tensorflow_imported() -> bool:
    return "tensorflow" in sys.modules or "keras" in sys.modules
