"""The whole embedder of an artefact as one TensorFlow SavedModel, for TensorFlow Serving
(FACEAPI_RUNTIME=remote, app/inference/remote.py).

Signature `serving_default`: `faces` float32 [N, S, S, 3] (the aligned canvas, RGB 0..255, S the
artefact's alignment size) -> `embeddings` float32 [N, D], L2-normalised. Everything the service
computes after alignment is inside: each part's crop of the canvas (a slice, or the bilinear
resample Pillow's AFFINE transform makes, with its half-pixel convention, truncated to uint8 as Pillow does),
the mirror images, each net (the Keras ports built from the installed weights, plus heads), the
weighting and the normalisations; the output is the parts' widths summed, unpadded. Made with Keras' ExportArchive, which tracks
the nets' variables. TensorFlow is imported here: a build step, never the serve path on litert.

    python -m app models export-savedmodel [--out var/tfserving/faceapi/1]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.inference.fusion import crop_map
from app.inference.litert import net_specs
from app.inference.litert_build import keras_net


def pil_affine_to_tf(m: np.ndarray) -> list[float]:
    """Pillow's AFFINE map (output pixel centre (x+.5, y+.5) -> input point, sampled at input
    point - .5) as ImageProjectiveTransformV3's 8 numbers (output index -> input index)."""
    a0, a1, a2 = m[0]
    b0, b1, b2 = m[1]
    return [float(a0), float(a1), float(a2 + 0.5 * (a0 + a1) - 0.5),
            float(b0), float(b1), float(b2 + 0.5 * (b0 + b1) - 0.5), 0.0, 0.0]


def _parts(artifact) -> list[dict]:
    """(template, weight, flip, embedding_dim) of each part, in the fused vector's order."""
    spec = artifact.embedder
    if spec.kind != "fusion":
        return [{"template": artifact.alignment, "weight": 1.0, "flip": False, "dim": artifact.embedding_dim}]
    return [{"template": p.alignment.template_(), "weight": p.weight, "flip": bool(p.flip),
             "dim": p.embedding_dim} for p in spec.parts]


def export_savedmodel(artifact, out_dir: Path) -> Path:
    import keras  # here, not at the top: importing Keras loads TensorFlow
    import tensorflow as tf

    nets = [keras_net(s) for s in net_specs(artifact)]
    parts = _parts(artifact)
    canvas = artifact.alignment
    fused_flip = bool(artifact.embedder.flip) and artifact.embedder.kind == "fusion"
    if len(parts) == 1 and artifact.embedder.flip:
        parts[0]["flip"] = True
    crops = []
    for p in parts:
        m, size = crop_map(canvas, p["template"]), p["template"].size
        shift = np.rint(m[:, 2])
        if np.allclose(m[:, :2], np.eye(2), atol=1e-9) and np.allclose(m[:, 2], shift, atol=1e-6):
            crops.append(("slice", (int(shift[0]), int(shift[1])), size))
        else:
            crops.append(("affine", pil_affine_to_tf(m), size))

    def l2(x):
        return x / tf.maximum(tf.norm(x, axis=-1, keepdims=True), 1e-12)

    def crop(x, how):
        kind, arg, size = how
        if kind == "slice":
            return x[:, arg[1] : arg[1] + size, arg[0] : arg[0] + size, :]
        n = tf.shape(x)[0]
        out = tf.raw_ops.ImageProjectiveTransformV3(
            images=x, transforms=tf.tile(tf.constant([arg], tf.float32), [n, 1]),
            output_shape=tf.constant([size, size]), fill_value=tf.constant(0.0),
            interpolation="BILINEAR", fill_mode="CONSTANT")
        return tf.clip_by_value(tf.floor(out + 1e-3), 0.0, 255.0)  # Pillow truncates to uint8

    def fused(x):
        n = tf.shape(x)[0]
        outs = []
        for net, p, how in zip(nets, parts, crops):
            c = crop(x, how)
            if p["flip"]:
                e = l2(net(tf.concat([c, tf.reverse(c, axis=[2])], 0), training=False))
                e = l2(e[:n] + e[n:])
            else:
                e = l2(net(c, training=False))
            outs.append(np.sqrt(p["weight"]).astype(np.float32) * e)
        return tf.concat(outs, axis=1)  # sum of the parts' widths: the artefact's embedding_dim

    def serve(faces):
        x = tf.cast(faces, tf.float32)
        e = l2(l2(fused(x)) + l2(fused(tf.reverse(x, axis=[2])))) if fused_flip else fused(x)
        return {"embeddings": e}

    archive = keras.export.ExportArchive()
    for net in nets:
        archive.track(net)
    archive.add_endpoint(name="serving_default", fn=serve,
                         input_signature=[tf.TensorSpec([None, canvas.size, canvas.size, 3], tf.float32,
                                                        name="faces")])
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    archive.write_out(str(out_dir), verbose=False)
    return out_dir
