"""The one table from an artefact's `embedder.kind` (metadata.json) to the function that builds
its embedder, and `build_embedder`, which reads it.

Each backbone lives in its own folder, app/inference/backbones/<name>/ (weights reader, Keras
net, embedder and its `build`); `fusion` (app/inference/fusion.py) combines other kinds and
`"flip": true` (app/inference/flip.py) wraps any of them. `litert` (app/inference/litert.py:
LiteRTOptions) runs the SFace and dlib ports from their cached .tflite files instead of Keras;
nothing else changes (fusion, flip, weights)."""

from __future__ import annotations

from collections.abc import Callable

from app.inference.artifacts import ArtifactError, ModelArtifact
from app.inference.backbones.dlib import embedder as dlib
from app.inference.backbones.sface import embedder as sface
from app.inference.embedder import Embedder
from app.inference.flip import FlipAveraged
from app.inference.fusion import FusionEmbedder, Part
from app.inference.litert import LiteRTOptions
from app.inference.metadata import EmbedderMetadata

Builder = Callable[[ModelArtifact, LiteRTOptions | None], Embedder]

DEFAULT_KIND = "facenet-graph"  # the kind of an artefact whose embedder block names none


def _facenet(artifact: ModelArtifact, litert: LiteRTOptions | None = None) -> Embedder:
    # imported here, not at the top: the graph module imports Keras, hence TensorFlow (seconds,
    # ~1 GB), which a service running an SFace, dlib or fusion artefact never loads
    from app.inference.backbones.facenet import graph

    return graph.build(artifact, litert)


def _fusion(artifact: ModelArtifact, litert: LiteRTOptions | None = None) -> Embedder:
    """Weighted parts, each an embedder of its own kind on its own crop of the aligned canvas
    (app/inference/fusion.py); `embedder.parts` lists them with their weight and alignment."""
    parts = []
    for spec in artifact.embedder.parts or ():  # the metadata model has checked their form
        sub = EmbedderMetadata(model_version=artifact.model_version, embedding_dim=spec.embedding_dim,
                               embedder=spec, alignment=spec.alignment)
        parts.append(Part(build_embedder(ModelArtifact(artifact.path, sub), litert),
                          spec.alignment.template_(), spec.weight))
    try:
        return FusionEmbedder(artifact.model_version, artifact.alignment, parts, artifact.embedding_dim)
    except ValueError as exc:
        raise ArtifactError(f"{artifact.path}/metadata.json: {exc}") from None


BUILDERS: dict[str, Builder] = {
    "facenet-graph": _facenet,
    "sface-keras": sface.build,
    "dlib-keras": dlib.build,
    "fusion": _fusion,
}


def build_embedder(artifact: ModelArtifact, litert: LiteRTOptions | None = None) -> Embedder:
    """The embedder named by the artefact's `embedder.kind`, flip-averaged when it asks for it."""
    spec = artifact.embedder
    kind = spec.kind or DEFAULT_KIND
    builder = BUILDERS.get(kind)
    if builder is None:
        raise ArtifactError(f"unknown embedder kind {kind!r} in {artifact.path}/metadata.json; "
                            f"known: {', '.join(BUILDERS)}")
    embedder = builder(artifact, litert)
    return FlipAveraged(embedder) if spec.flip else embedder
