"""Flip test-time augmentation and the fusion embedder: what they compute from their parts, and
that the canvas crops are the framings each part was measured with (real photos, YuNet landmarks)."""

from __future__ import annotations

import numpy as np
import pytest

from app.domain.vectors import l2_normalize
from app.inference.embedder import check_faces
from app.inference.flip import FlipAveraged
from app.inference.fusion import FusionEmbedder, Part
from app.vision.align import AlignmentTemplate, align_face
from tests.conftest import YALE, require_data


class ColumnMeans:
    """A stand-in part: per-column means of the face (a mirror image gives other values)."""

    def __init__(self, size: int, dim: int = 8) -> None:
        self.model_version, self.input_size, self.embedding_dim = "columns", size, dim

    def embed(self, faces: np.ndarray) -> np.ndarray:
        check_faces(faces, self.input_size)  # a part given another part's crops fails, as a port does
        cols = faces.astype(np.float32).mean(axis=(1, 3))  # [N, size]
        return l2_normalize(cols[:, np.linspace(0, self.input_size - 1, self.embedding_dim).astype(int)] + 1)


def test_flip_averages_the_face_and_its_mirror_image():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    inner = ColumnMeans(16)
    got = FlipAveraged(inner).embed(faces)
    expected = l2_normalize(inner.embed(faces) + inner.embed(faces[:, :, ::-1]))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert not np.allclose(got, inner.embed(faces), atol=1e-3)
    # a symmetric face is its own mirror: flipping changes nothing
    sym = np.concatenate([faces[:, :, :8], faces[:, :, :8][:, :, ::-1]], axis=2)
    np.testing.assert_allclose(FlipAveraged(inner).embed(sym), inner.embed(sym), atol=1e-6)


def _fusion(w: float) -> FusionEmbedder:
    from model.faces.fusion import canvas_template, part_specs

    specs = part_specs()
    parts = [Part(ColumnMeans(specs["sface"][1].size), specs["sface"][1], w),
             Part(ColumnMeans(specs["dlib"][1].size), specs["dlib"][1], 1 - w)]
    return FusionEmbedder("fusion-test", canvas_template(), parts)


def test_fused_cosine_is_the_weighted_cosine_of_the_parts():
    fusion = _fusion(0.3)
    rng = np.random.default_rng(1)
    faces = rng.integers(0, 256, (4, fusion.input_size, fusion.input_size, 3), dtype=np.uint8)
    e = fusion.embed(faces)
    assert e.shape == (4, 16)  # the 2 x 8 fused values, no padding
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-6)
    a, b = (p.embedder.embed(fusion.crops(faces, i)) for i, p in enumerate(fusion.parts))
    np.testing.assert_allclose(e @ e.T, 0.3 * (a @ a.T) + 0.7 * (b @ b.T), atol=1e-6)


def test_fusion_refuses_bad_weights_and_shapes():
    with pytest.raises(ValueError, match="sum to 1"):
        _fusion(1.3)
    with pytest.raises(ValueError, match="expected"):
        _fusion(0.5).embed(np.zeros((1, 150, 150, 3), np.uint8))


@pytest.fixture(scope="module")
def photo_and_landmarks():
    from PIL import Image

    from app.vision.detect import YuNetDetector

    rgb = np.asarray(Image.open(require_data(YALE / "subject03.normal.png")).convert("RGB"))
    faces = YuNetDetector().detect(rgb)
    assert faces, "YuNet found no face"
    return rgb, faces[0].landmarks


def test_canvas_crops_are_each_parts_own_framing(photo_and_landmarks):
    """dlib's crop of the canvas is exactly the photo aligned on dlib's template; SFace's is the
    photo aligned on the ArcFace template up to resampling (two bilinear steps instead of one)."""
    from model.faces.fusion import canvas_template, part_specs

    rgb, marks = photo_and_landmarks
    canvas = align_face(rgb, marks, canvas_template())
    fusion = _fusion(0.5)
    specs = part_specs()
    direct_dlib = align_face(rgb, marks, specs["dlib"][1])
    np.testing.assert_array_equal(fusion.crops(canvas[None], 1)[0], direct_dlib)
    direct_sface = align_face(rgb, marks, specs["sface"][1])
    diff = np.abs(fusion.crops(canvas[None], 0)[0].astype(float) - direct_sface)
    assert diff.mean() < 6, diff.mean()  # the same framing; a shifted or scaled crop differs by tens
    shifted = align_face(rgb, marks, AlignmentTemplate(specs["sface"][1].points + 4, 112))
    assert np.abs(shifted.astype(float) - direct_sface).mean() > 2 * diff.mean()
