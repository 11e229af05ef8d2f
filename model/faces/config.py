"""Face fine-tuning configuration: one dataclass, presets, `--set field=value` overrides.

As in nanoGPT (and model/omniglot/config.py for Omniglot), a preset is a plain config object; a
run stores its resolved config as JSON beside its checkpoints, so a checkpoint says how
it was made and `--resume` can check it continues the same run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from model.common.config import JsonConfig, apply_overrides


@dataclass(frozen=True)
class FaceTuneConfig(JsonConfig):
    preset: str = "triplet"
    seed: int = 0

    # --- data (model/faces/data.py, splits.py): identities split by split_identities, pairs by balanced_pairs
    split_seed: int = 0
    fractions: tuple[float, ...] = (0.6, 0.2, 0.2)
    eval_pairs: int = 3000  # same pairs per val/test split (as many different), as tune-threshold
    max_train_identities: int = 0  # 0 = all train identities (smoke tests use a few)
    max_images_per_identity: int = 0  # 0 = all

    # --- base: "facenet" (Inception-ResNet-v1, model/faces/heads.py), "sface" (frozen Keras port of
    # OpenCV's SFace, 128-D, ArcFace 112 alignment; model/faces/sface.py) or "fusion" (the default's
    # fused SFace + dlib vector, 256-D; model/faces/fusion.py)
    base: str = "facenet"

    # --- model (model/faces/heads.py)
    objective: str = "triplet"  # "triplet" (semi-hard margin loss) or "pairs" (pair head + BCE)
    base_stage: str = "Bottleneck"  # first trainable stage of the base: "Bottleneck" = frozen base,
    #                                 "Block8" = last block trainable, "stem" = images end to end
    trainable_from: str = ""  # with base_stage="stem": first trainable stage (e.g. "Repeat_2__block8_1")
    embedding_dim: int = 512  # projection size (identity-initialised when 512)
    pair_hidden: int = 256
    pair_dropout: float = 0.3
    triplet_margin: float = 0.2

    # --- augmentation: flip is served from cached features of mirrored faces when the base is
    # cut (base_stage != "stem"); affine and colour jitter need images, i.e. base_stage="stem"
    flip: bool = True
    affine: bool = False  # small rotation (+-8 deg), scale (+-5 %), shift (+-4 px)
    color_jitter: bool = False  # brightness/contrast/saturation +-20 %

    # --- training
    epochs: int = 20
    batch_size: int = 128  # triplet: identities_per_batch x (batch_size / identities_per_batch)
    identities_per_batch: int = 32
    pairs_per_epoch: int = 16384  # pairs objective: half same, half different, fresh each epoch
    triplet_batches_per_epoch: int = 64
    lr: float = 1e-4
    weight_decay: float = 1e-4  # AdamW
    patience: int = 6  # epochs without a better validation ROC AUC before stopping


def triplet() -> FaceTuneConfig:
    """Frozen base (cached 512-D features, with mirrored faces), 512-D projection, semi-hard triplets."""
    return FaceTuneConfig(preset="triplet")


def pairs() -> FaceTuneConfig:
    """Frozen base, 512-D projection under a pair head (|a-b|, (a-b)^2, a*b, cos), BCE on balanced pairs."""
    return replace(FaceTuneConfig(), preset="pairs", objective="pairs", lr=1e-4, batch_size=256)


def block8_triplet() -> FaceTuneConfig:
    """VGGFace-style: last block (Block8) and bottleneck trainable from cached block8_5 features,
    semi-hard triplets. Runs on CPU because only the last block is recomputed."""
    return replace(FaceTuneConfig(), preset="block8-triplet", base_stage="Block8", lr=3e-5, epochs=15)


def block8_pairs() -> FaceTuneConfig:
    """Last block trainable, pair head + BCE."""
    return replace(block8_triplet(), preset="block8-pairs", objective="pairs", batch_size=256, pairs_per_epoch=8192)


def gpu_blocks() -> FaceTuneConfig:
    """Images end to end, base trainable from Repeat_2/block8_1, with flip + affine + colour jitter.

    Meant for a GPU (e.g. KERAS_BACKEND=jax); on 2 CPU cores an epoch takes hours.
    """
    return replace(
        FaceTuneConfig(), preset="gpu-blocks", base_stage="stem", trainable_from="Repeat_2__block8_1",
        affine=True, color_jitter=True, lr=1e-5, epochs=20, batch_size=96, identities_per_batch=24,
    )


def sface_triplet() -> FaceTuneConfig:
    """Frozen SFace (cached 128-D outputs), 128x128 projection, semi-hard triplets. No flip: on
    2 CPU cores the mirrored faces cost a second pass of the base over the subset."""
    return replace(FaceTuneConfig(), preset="sface-triplet", base="sface", embedding_dim=128, epochs=15,
                   flip=False)


def sface_pairs() -> FaceTuneConfig:
    """Frozen SFace, 128x128 projection under the pair head, BCE on balanced pairs."""
    return replace(sface_triplet(), preset="sface-pairs", objective="pairs", batch_size=256)


def fusion_triplet() -> FaceTuneConfig:
    """The default's fused, flip-averaged SFace + dlib vector (256-D, frozen, cached), a 256x256
    projection (identity start), semi-hard triplets; flip is already inside the features."""
    return replace(sface_triplet(), preset="fusion-triplet", base="fusion", embedding_dim=256)


def smoke() -> FaceTuneConfig:
    """Tests: 12 train identities x 8 faces, frozen base, 3 quick epochs."""
    return replace(
        FaceTuneConfig(), preset="smoke", max_train_identities=12, max_images_per_identity=8,
        eval_pairs=60, epochs=3, batch_size=32, identities_per_batch=8, triplet_batches_per_epoch=6,
        pairs_per_epoch=512, lr=1e-3, patience=3,
    )


PRESETS = {
    "triplet": triplet,
    "pairs": pairs,
    "block8-triplet": block8_triplet,
    "block8-pairs": block8_pairs,
    "gpu-blocks": gpu_blocks,
    "sface-triplet": sface_triplet,
    "sface-pairs": sface_pairs,
    "fusion-triplet": fusion_triplet,
    "smoke": smoke,
}


def validate(cfg: FaceTuneConfig) -> FaceTuneConfig:
    from model.faces.facenet_keras import STAGE_NAMES

    if cfg.base not in ("facenet", "sface", "fusion"):
        raise ValueError(f"base must be 'facenet', 'sface' or 'fusion', got {cfg.base!r}")
    if cfg.base in ("sface", "fusion") and (cfg.base_stage != "Bottleneck" or cfg.affine or cfg.color_jitter):
        raise ValueError("base='sface' trains a head on the frozen port's cached outputs: "
                         "keep base_stage='Bottleneck' and no affine / colour augmentation")
    if cfg.objective not in ("triplet", "pairs"):
        raise ValueError(f"objective must be 'triplet' or 'pairs', got {cfg.objective!r}")
    if cfg.base_stage not in STAGE_NAMES:
        raise ValueError(f"base_stage must be one of {STAGE_NAMES}")
    if cfg.trainable_from and cfg.trainable_from not in STAGE_NAMES:
        raise ValueError(f"trainable_from must be one of {STAGE_NAMES}")
    if (cfg.affine or cfg.color_jitter) and cfg.base_stage != "stem":
        raise ValueError("affine / colour jitter change the pixels, so they need base_stage='stem' "
                         "(cached features only cover original and mirrored faces)")
    if cfg.objective == "triplet" and cfg.batch_size % cfg.identities_per_batch:
        raise ValueError("batch_size must be a multiple of identities_per_batch")
    return cfg


def resolve(preset: str, overrides: list[str] | None = None) -> FaceTuneConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    return validate(apply_overrides(PRESETS[preset](), overrides))


__all__ = ["FaceTuneConfig", "PRESETS", "apply_overrides", "resolve"]
