"""Artefacts of the frozen Keras ports alone or fused (app/inference/fusion.py), with flip
test-time augmentation or not, measured through the service's own embedder.

`python -m model faces export-ports --version V --parts sface:0.3 dlib:0.7 --flip` aligns CelebA
and Yale the way the service will (the canvas template for a fusion, the part's own template for a
single port), embeds the validation and test identities and Yale with the embedder
app/inference/registry.py builds from the metadata, and writes thresholds, metrics, the
all-pairs statistics and the impostor tail like every export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.domain.vectors import l2_normalize
from app.inference.artifacts import ModelArtifact
from app.inference.metadata import EmbedderMetadata
from app.inference.registry import build_embedder
from app.vision.align import AlignmentTemplate
from model.faces import dlib, sface
from model.faces.config import FaceTuneConfig
from model.faces.dlib import DLIB_150, dlib_features, dlib_template
from model.faces.evaluation import evaluate_variant, time_per_face
from model.faces.export import write_artifact
from model.faces.faceset import celeba_faces, yale_faces
from model.faces.sface import sface_features

# dlib's chip sits in the canvas at this whole-pixel offset, so its crop is a slice; the canvas
# also holds SFace's ArcFace 112 crop, which reaches 32 px above and 9 px beside dlib's chip
# (similarity from the ArcFace template to dlib's: scale 1.46, 0.7 degrees).
CANVAS_SIZE = 184
DLIB_OFFSET = (17, 33)


def part_specs() -> dict[str, tuple[dict, object]]:
    """{name: (metadata `embedder` block without head, its template)}."""
    return {"sface": (sface.embedder_spec(None), sface.arcface_template()),
            "dlib": (dlib.embedder_spec(None), dlib.dlib_template())}


SFACE_WEIGHT = 0.3  # chosen on validation identities (python -m model faces candidates)


def flip_average(orig: np.ndarray, flipped: np.ndarray) -> np.ndarray:
    """Flip test-time augmentation: l2(l2(face) + l2(mirror)), as app/inference/flip.py computes."""
    return l2_normalize(l2_normalize(orig) + l2_normalize(flipped))


def fuse(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    """[sqrt(w) a, sqrt(1 - w) b] of the L2-normalised parts: unit length, and its cosine
    similarity is w cos_a + (1 - w) cos_b."""
    return np.concatenate([np.sqrt(w) * l2_normalize(a), np.sqrt(1.0 - w) * l2_normalize(b)], axis=-1)


def fused_features(sface_set, cache: Path | None = None) -> np.ndarray:
    """The default's fused vector before any head, for every usable face: flip-averaged SFace
    (faces of `sface_set`, ArcFace-aligned) and dlib (the same photos on dlib's template) outputs,
    fused with SFACE_WEIGHT. Each base aligned directly (the service cuts SFace's crop from the
    canvas instead; docs/models.md compares the two)."""
    dlib_set = celeba_faces(cache=cache, template=dlib_template())
    if not np.array_equal(dlib_set.usable, sface_set.usable):
        raise RuntimeError("the SFace and dlib face sets differ")
    s = flip_average(*(sface_features(sface_set.faces, sface_set.usable, f, cache) for f in (False, True)))
    d = flip_average(*(dlib_features(dlib_set.faces, dlib_set.usable, f, cache) for f in (False, True)))
    out = fuse(s, d, SFACE_WEIGHT)
    out[~sface_set.usable] = 0
    return out


def canvas_template():
    return AlignmentTemplate(np.array(DLIB_150) + DLIB_OFFSET, CANVAS_SIZE,
                             f"canvas {CANVAS_SIZE}: dlib's 150 chip at offset {DLIB_OFFSET}, SFace's "
                             "ArcFace 112 crop cut from it (app/inference/fusion.py)")


def embedder_block(parts: list[tuple[str, float]], flip: bool | set[str]) -> tuple[dict, object, int]:
    """(metadata `embedder` block, alignment template, embedding_dim) for these parts; `flip`:
    True for every part, or the names of the parts that average with the mirror image."""
    flips = {n for n, _ in parts} if flip is True else set(flip or ())
    specs = part_specs()
    if len(parts) == 1:
        spec, template = specs[parts[0][0]]
        return {**spec, "flip": parts[0][0] in flips}, template, 128
    blocks = []
    for name, weight in parts:
        spec, template = specs[name]
        blocks.append({**spec, "flip": name in flips, "weight": weight, "embedding_dim": 128,
                       "alignment": template.to_metadata()})
    template, width = canvas_template(), sum(b["embedding_dim"] for b in blocks)
    spec = {"kind": "fusion", "parts": blocks, "input_size": template.size,
            "preprocessing": "YuNet 5 landmarks, similarity alignment to the canvas template; each part "
                             "cut from the canvas onto its own template; each part's embedding "
                             f"L2-normalised, times sqrt(weight), concatenated ({width} "
                             "values: the sum of the parts' widths)"}
    return spec, template, width


def export_ports(version: str, parts: list[tuple[str, float]], flip: bool | set[str], out: Path,
                 data_dir: str | None = None) -> dict:
    spec, template, dim = embedder_block(parts, flip)
    folder = out / version
    emb = build_embedder(ModelArtifact(folder, EmbedderMetadata.model_validate(
        {"model_version": version, "embedding_dim": dim, "embedder": spec, "alignment": template.to_metadata()})))
    cfg = FaceTuneConfig(preset="ports", base="+".join(n for n, _ in parts), embedding_dim=dim)
    celeba = celeba_faces(data_dir, template=template)
    yale = yale_faces(data_dir, template=template)
    tuned, distances, labels = evaluate_variant(emb, cfg, celeba, yale)
    ms = {b: round(time_per_face(emb, celeba.faces[celeba.usable], batch=b), 2) for b in (1, 32)}
    folder.mkdir(parents=True, exist_ok=True)
    flips = {n for n, _ in parts} if flip is True else set(flip or ())
    what = " + ".join(f"{n} (weight {w}{', with its mirror image' if n in flips else ''})" for n, w in parts)
    return write_artifact(folder, version, cfg, spec, template, tuned, distances, labels, ms, celeba, yale,
                          None, what)
