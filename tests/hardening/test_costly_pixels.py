"""Small files with costly pixels, against the real server process and model: a 6300x6300
PNG is a few hundred KB but decodes to 40 megapixels (seconds of CPU, ~500 MB). Detection
admits by decoded pixels, not by count: of eight sent at once, those that would push the
pixels in detection past the budget are refused at once (503 overloaded), and an ordinary
verify sent meanwhile is admitted and answered."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from PIL import Image

from tests.conftest import add_keys, migrated_sqlite_url, yale_bytes
from tests.hardening.serving import serve


def costly_png(side: int = 6300) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (120, 130, 140)).save(buf, "PNG")
    return buf.getvalue()


def test_costly_pngs_are_admitted_by_pixels_and_ordinary_verifies_still_pass(tmp_path):
    url = migrated_sqlite_url(tmp_path)
    admin_key, client_key = add_keys(url)
    costly = costly_png()
    assert len(costly) < 1024 * 1024
    with serve(tmp_path, url) as served, httpx.Client(base_url=served.base_url, timeout=120,
                                                      limits=httpx.Limits(max_connections=16)) as http:
        r = http.post("/enroll", data={"person_id": "s1"}, headers={"X-API-Key": admin_key},
                      files={"image": ("a.png", yale_bytes("subject01.normal"))})
        assert r.status_code == 201, r.text
        barrier = threading.Barrier(8)

        def attack(_):
            barrier.wait()
            return http.post("/verify", data={"person_id": "s1"}, headers={"X-API-Key": client_key},
                             files={"image": ("big.png", costly)})

        def ordinary():
            time.sleep(0.5)  # the costly ones are in detection by now
            return http.post("/verify", data={"person_id": "s1"}, headers={"X-API-Key": client_key},
                             files={"image": ("a.png", yale_bytes("subject01.happy"))})

        with ThreadPoolExecutor(9) as pool:
            normal = pool.submit(ordinary)
            attacks = list(pool.map(attack, range(8)))
            normal = normal.result()
    refused = [r for r in attacks if r.status_code == 503]
    assert all(r.json()["code"] == "overloaded" for r in refused)
    assert {r.status_code for r in attacks} <= {503, 422}, [(r.status_code, r.text[:200]) for r in attacks]
    # a 40-megapixel photo fits the 48-megapixel budget alone: the others are refused while it runs
    assert len(refused) >= 6, [r.status_code for r in attacks]
    assert normal.status_code == 200 and normal.json()["match"] is True, normal.text
