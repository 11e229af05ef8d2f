"""`python -m app models prepare`: the model build step of the LiteRT runtime (TensorFlow is
imported here, never by `serve` on litert). `serve` runs it itself when a file is missing.
`python -m app models export-savedmodel`: the whole embedder for TensorFlow Serving."""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path


def add_parser(commands) -> None:
    models = commands.add_parser("models", help="the model build step (LiteRT runtime)")
    sub = models.add_subparsers(dest="models_command", required=True)
    prepare = sub.add_parser("prepare", help="convert the artefact's nets to .tflite files in the "
                             "model cache (built from the installed weights; cached ones are kept)")
    prepare.add_argument("--model", help="artefact folder or version (default: FACEAPI_MODEL)")
    prepare.add_argument("--cache-dir", type=Path, help="default: FACEAPI_MODEL_CACHE_DIR")
    export = sub.add_parser("export-savedmodel", help="the artefact's whole embedder as one SavedModel "
                            "for TensorFlow Serving (signature serving_default: faces -> embeddings)")
    export.add_argument("--model", help="artefact folder or version (default: FACEAPI_MODEL)")
    export.add_argument("--out", type=Path, default=None,
                        help="version folder TensorFlow Serving reads (default: var/tfserving/faceapi/1)")


def run(settings, args) -> int:
    from app.inference.artifacts import load_artifact
    from app.inference.litert import net_specs
    from app.inference.litert_build import prepare

    if args.model:
        settings = settings.model_copy(update={"model": args.model})
    artifact = load_artifact(settings.model_dir())
    if args.models_command == "export-savedmodel":
        return export(artifact, args.out)
    cache_dir = args.cache_dir or settings.model_cache_dir
    try:
        net_specs(artifact)
    except ValueError as exc:
        print(f"nothing to build for {artifact.model_version}: {exc} (it runs on FACEAPI_RUNTIME=keras)")
        return 0
    started = time.perf_counter()
    noise = io.StringIO()  # the converter prints its traced signatures on stdout
    with contextlib.redirect_stdout(noise):
        lines = []
        prepare(artifact, cache_dir, log=lines.append)
    for line in lines:
        print(line)
    print(f"LiteRT models of {artifact.model_version} ready in {cache_dir} "
          f"({time.perf_counter() - started:.1f} s)")
    return 0


def export(artifact, out: Path | None) -> int:
    from app.core.config import REPO_ROOT
    from app.inference.savedmodel_export import export_savedmodel

    out = out or REPO_ROOT / "var" / "tfserving" / "faceapi" / "1"
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        export_savedmodel(artifact, out)
    print(f"SavedModel of {artifact.model_version} written to {out} ({time.perf_counter() - started:.1f} s); "
          "serve it with TensorFlow Serving and set FACEAPI_EMBEDDER_URL")
    return 0
