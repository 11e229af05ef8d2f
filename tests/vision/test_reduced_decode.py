"""Large JPEGs are first decoded at a reduced scale (app/vision/pipeline.py): the face found,
its box in the photo's pixels, the enroll rules and the embedding must be those of the full
decode. Real photos enlarged to the sizes of ordinary camera photos, the real model."""

from __future__ import annotations

import numpy as np
import pytest

from app.domain import errors
from app.vision.decode import DecodeLimits
from app.vision.pipeline import FacePipeline
from tests.vision.photos import jpeg, paste, resized, rgb_of

PHOTOS = ("yalefaces/subject01.happy.png", "celeba_subset/images/186017.jpg")


def pipelines(detector, artifact):
    full = FacePipeline(detector, DecodeLimits(), artifact.alignment)
    reduced = FacePipeline(detector, DecodeLimits(), artifact.alignment, reduce_to=640)
    return full, reduced


def enlarged(rel: str, long_side: int) -> np.ndarray:
    rgb = rgb_of(rel)
    return resized(rgb, long_side / max(rgb.shape[:2]))


@pytest.mark.parametrize("long_side", [2000, 4000])
@pytest.mark.parametrize("rel", PHOTOS)
def test_a_large_photo_gives_the_face_and_embedding_of_the_full_decode(
        rel, long_side, real_detector, real_embedder, model_artifact, monkeypatch):
    full, reduced = pipelines(real_detector, model_artifact)
    data = jpeg(enlarged(rel, long_side))
    a = full.extract(data, enroll=True)
    import app.vision.pipeline as pipeline_module

    def no_full_decode(*args):
        raise AssertionError("the photo was decoded in full")

    monkeypatch.setattr(pipeline_module, "decode_image", no_full_decode)
    b = reduced.extract(data, enroll=True)
    size = a.face.size
    assert np.allclose(a.face.box, b.face.box, atol=0.03 * size), (a.face.box, b.face.box)
    assert np.allclose(a.face.landmarks, b.face.landmarks, atol=0.03 * size)
    ea, eb = real_embedder.embed(np.stack([a.aligned, b.aligned]))
    assert 1.0 - float(ea @ eb) < 0.05  # the verify threshold is ~0.63


def test_a_small_face_in_a_large_photo_is_searched_in_the_full_decode(real_detector, model_artifact):
    full, reduced = pipelines(real_detector, model_artifact)
    face = resized(rgb_of("yalefaces/subject01.normal.png"), 0.25)  # face ~30 px
    photo = paste(np.full((2400, 3200, 3), 90, np.uint8), face, (1500, 1000))
    a, b = full.extract(jpeg(photo), enroll=False), reduced.extract(jpeg(photo), enroll=False)
    assert np.allclose(a.face.box, b.face.box, atol=1.0)
    assert 1500 < b.face.box[0] < 1500 + face.shape[1]


def test_the_enroll_rules_see_the_faces_of_a_large_photo_in_its_own_pixels(real_detector, model_artifact):
    full, reduced = pipelines(real_detector, model_artifact)
    a, b = rgb_of("yalefaces/subject01.normal.png"), rgb_of("yalefaces/subject02.normal.png")
    two = resized(np.concatenate([a, b[:, ::-1]], axis=1), 3200 / 640)  # both faces near the middle
    with pytest.raises(errors.MultipleFaces) as info_full:
        full.extract(jpeg(two), enroll=True)
    with pytest.raises(errors.MultipleFaces) as info_reduced:
        reduced.extract(jpeg(two), enroll=True)
    assert np.allclose(info_full.value.extra["face_sizes"], info_reduced.value.extra["face_sizes"], rtol=0.03)
    # a smaller real face in the background: the main person enrolls, boxes in photo pixels
    main = resized(a, 3000 / 320)
    photo = paste(main, resized(b, 2.5), (0, 0))  # its face ~300 px, the main one ~1,200
    sample = reduced.extract(jpeg(photo), enroll=True)
    assert sample.faces_detected == 2 and sample.face.box[0] > b.shape[1] * 2.5
