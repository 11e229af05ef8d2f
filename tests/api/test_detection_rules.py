"""Which face the service takes, over HTTP with the real detector and model, on real photos:
the person the photo is of, a refusal that states its measured values, rotated portraits."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import yale_bytes
from tests.vision.photos import jpeg, paste, png, resized, rgb_of, rotated


def test_a_portrait_with_a_smaller_face_in_the_background_enrolls_the_main_person(api):
    main = rgb_of("yalefaces/subject01.normal.png")
    background = resized(rgb_of("yalefaces/subject02.normal.png"), 0.33)
    r = api.enroll("s1", png(paste(main, background, (0, 0))))
    assert r.status_code == 201, r.text
    assert r.json()["face"]["faces_detected"] == 2
    assert r.json()["face"]["box"][0] > background.shape[1]  # the large face, right of the pasted one
    # the enrolled embedding is subject01's: their other photo matches, subject02's does not
    assert api.verify("s1", yale_bytes("subject01.happy")).json()["match"] is True
    assert api.verify("s1", yale_bytes("subject02.happy")).json()["match"] is False


def test_two_equally_large_faces_are_refused_with_the_measured_sizes(api):
    a, b = rgb_of("yalefaces/subject01.normal.png"), rgb_of("yalefaces/subject02.normal.png")
    photo = png(np.concatenate([a, b[:, ::-1]], axis=1))  # both faces as near the middle
    r = api.enroll("pair", photo)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "multiple_faces"
    assert body["comparable_faces"] == 2 and len(body["face_sizes"]) == 2
    assert body["size_ratio"] < body["required_ratio"]
    assert f"{body['size_ratio']:.2f}" in body["detail"]
    # verify takes the largest face of such a photo and says how many it saw
    api.enroll("s1", yale_bytes("subject01.normal"))
    assert api.verify("s1", photo).json()["face"]["faces_detected"] == 2


@pytest.mark.parametrize("degrees", [-20, 20])
@pytest.mark.parametrize("photo", ["yalefaces/subject01.normal.png", "celeba_subset/images/186017.jpg"])
def test_a_portrait_rotated_20_degrees_verifies_against_the_upright_one(api, photo, degrees):
    upright = rgb_of(photo)
    assert api.enroll("p", png(upright)).status_code == 201
    body = api.verify("p", jpeg(rotated(upright, degrees))).json()
    assert body["distance"] < body["threshold"], body
    assert body["match"] is True
