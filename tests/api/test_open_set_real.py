"""The 1:N promise on real photos, through the real detector and model (issue 16): with 100
people enrolled, photos of 50 people who are not enrolled are named as no one at the
default FPIR, while photos of the enrolled people are named correctly.

CelebA subset, split by identity as the trainer splits it: the strangers are 50 test
identities (seen neither by the fine-tune nor by the threshold tuning); the enrolled are
the 10 other test identities, the 60 validation identities and 30 training identities.
Each enrolled person is enrolled from their first photo that passes the enroll rules and
probed with their next photo.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import DATA_DIR, make_api, migrated_sqlite_url

pytestmark = pytest.mark.slow

CELEBA = DATA_DIR / "celeba_subset"


def celeba_people() -> tuple[dict[int, list[str]], dict[str, np.ndarray]]:
    from model.faces.data import load_celeba, split_identities

    celeba = load_celeba(str(DATA_DIR))
    by_id: dict[int, list[str]] = {}
    for name, ident in zip(celeba.files, celeba.identities):
        by_id.setdefault(int(ident), []).append(name)
    return by_id, split_identities(celeba.identities, 0)


def photo(name: str) -> bytes:
    return (CELEBA / "images" / name).read_bytes()


@pytest.fixture
def api(tmp_path, real_embedder, real_detector):
    """SQLite only: the decision is the same code on PostgreSQL (tests/api/test_identify_threshold.py
    runs both), and 250 real-model requests are worth running once."""
    with make_api(migrated_sqlite_url(tmp_path), real_embedder, real_detector) as a:
        yield a


def test_strangers_are_unknown_and_enrolled_people_are_named_in_a_gallery_of_100(api):
    by_id, split = celeba_people()
    test_ids = [int(i) for i in split["test"]]
    strangers = test_ids[:50]
    enrolled_ids = test_ids[50:] + [int(i) for i in split["val"]] + [int(i) for i in split["train"][:30]]
    assert len(enrolled_ids) == 100

    probes: dict[str, str] = {}
    for ident in enrolled_ids:
        photos = by_id[ident]
        for k, name in enumerate(photos[:-1]):  # the first photo that enrolls; the next one probes
            if api.enroll(f"c{ident}", photo(name)).status_code == 201:
                probes[f"c{ident}"] = photos[k + 1]
                break
    assert len(probes) >= 95, f"only {len(probes)} of 100 people could be enrolled"

    def ask(name: str) -> dict:
        r = api.identify(photo(name), top_k=1)
        assert r.status_code in (200, 422), r.text  # 422: no face found in that photo
        return r.json() if r.status_code == 200 else {}

    named_strangers, would_match_1to1, asked = [], 0, 0
    for ident in strangers:
        body = ask(by_id[ident][0])
        if not body:
            continue
        asked += 1
        assert body["gallery_size"] == len(probes)
        assert body["target_fpir"] == 0.01  # the default
        assert body["threshold_source"] == "fpir"
        assert body["threshold"] < body["verify_threshold"]
        would_match_1to1 += body["candidates"][0]["distance"] <= body["verify_threshold"]
        if body["match"] is not None:
            named_strangers.append((ident, body["match"]))
    assert asked >= 45
    assert named_strangers == []

    right = wrong = first = 0
    for person, name in probes.items():
        body = ask(name)
        first += bool(body) and body["candidates"][0]["person_id"] == person
        if body and body["match"] is not None:
            right += body["match"]["person_id"] == person
            wrong += body["match"]["person_id"] != person
    print(f"enrolled: named {right}, misnamed {wrong}, nearest is right {first} of {len(probes)}; "
          f"strangers within the 1:1 threshold: {would_match_1to1}/{asked}")
    # FPIR 0.01 is a rate, not a bound: an enrolled person whose own photo is out of reach is,
    # for the gallery, a stranger, named with about that probability; with 100 probes one
    # wrong name is within the target (YuNet build: 1, the probes now include the hard photos
    # MTCNN found no face in), two would not be
    assert wrong <= 1, f"{wrong} enrolled people were named as someone else"
    # FNIR at FPIR 0.01 and N = 100 is 0.26 [0.22, 0.29] for the fused default on CelebA
    # (docs/benchmarks.md, every gallery of 100 unseen people); this gallery names 73 of 100
    # (SFace: 70)
    assert right >= MIN_NAMED * len(probes), f"only {right} of {len(probes)} enrolled people were named"
    assert first >= MIN_RANK1 * len(probes), f"the nearest was right for only {first} of {len(probes)}"


MIN_NAMED = 0.6
MIN_RANK1 = 0.7
