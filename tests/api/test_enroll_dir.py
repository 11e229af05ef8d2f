"""`python -m app enroll-dir` against a real HTTP server: one person per photo or subfolder,
refusals counted by code, --replace, and the exit status. The command is run as a user would
(a subprocess); the server uses the fake model (the rules under test are the service's intake
and enroll rules, not accuracy)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from PIL import Image

from app.core.config import REPO_ROOT, Settings
from tests.conftest import (
    FakeDetector, FakeEmbedder, add_keys, migrated_sqlite_url, serve_in_thread, yale_bytes,
)


@pytest.fixture
def server(tmp_path):
    from app.main import create_app

    database_url = migrated_sqlite_url(tmp_path)
    admin_key, client_key = add_keys(database_url)
    app = create_app(Settings(database_url=database_url), embedder=FakeEmbedder(), detector=FakeDetector())
    with serve_in_thread(app) as url:
        yield url, admin_key, client_key


def enroll_dir(folder, url, key, *extra):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "app", "enroll-dir", str(folder), "--url", url,
                           "--key", key, *extra], capture_output=True, text=True, env=env, timeout=120)


def tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for name in ("subject01.normal", "subject02.normal", "subject03.normal"):
        (root / f"{name}.png").write_bytes(yale_bytes(name))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "tiny.png").write_bytes(tiny_png())
    (root / "notes.txt").write_text("not a photo: ignored")
    person = root / "alice"  # one subfolder = one person: the first usable photo counts
    person.mkdir()
    (person / "1-unusable.png").write_bytes(tiny_png())
    (person / "2-good.png").write_bytes(yale_bytes("subject04.happy"))
    (person / "3-never-sent.png").write_bytes(yale_bytes("subject04.sad"))
    return root


def test_enrolls_one_person_per_photo_and_per_subfolder(server, photos):
    url, admin_key, client_key = server
    r = enroll_dir(photos, url, admin_key, "--concurrency", "3")
    assert r.returncode == 1, r.stderr  # two photos were refused
    assert "enrolled 4 of 6 persons (7 photos sent)" in r.stdout
    assert "refused: " in r.stdout and "image_corrupt 1" in r.stdout and "image_too_small 1" in r.stdout
    assert "6/6" in r.stderr  # progress reached the end
    import httpx

    listed = httpx.get(f"{url}/persons", headers={"X-API-Key": client_key}).json()
    assert sorted(p["person_id"] for p in listed["items"]) == [
        "alice", "subject01.normal", "subject02.normal", "subject03.normal"]


def test_existing_persons_are_refused_unless_replace(server, photos):
    url, admin_key, _ = server
    for bad in ("broken.jpg", "tiny.png"):
        (photos / bad).unlink()
    assert enroll_dir(photos, url, admin_key).returncode == 0
    again = enroll_dir(photos, url, admin_key)
    assert again.returncode == 1 and "person_exists 4" in again.stdout
    replaced = enroll_dir(photos, url, admin_key, "--replace")
    assert replaced.returncode == 0 and "enrolled 4 of 4 persons" in replaced.stdout


def test_a_client_key_is_refused_by_the_service(server, photos):
    url, _, client_key = server
    r = enroll_dir(photos, url, client_key)
    assert r.returncode == 1 and "forbidden 6" in r.stdout


def test_no_server_is_a_clear_failure(photos):
    r = enroll_dir(photos, "http://127.0.0.1:9", "fa_x")
    assert r.returncode == 1 and "connection_error 6" in r.stdout


def test_empty_or_missing_folder_exits_2(tmp_path):
    assert enroll_dir(tmp_path, "http://127.0.0.1:9", "k").returncode == 2
    assert enroll_dir(tmp_path / "nope", "http://127.0.0.1:9", "k").returncode == 2


# --- several photos per person ------------------------------------------------------------------

def persons(url, client_key) -> dict[str, int]:
    import httpx

    items = httpx.get(f"{url}/persons", params={"limit": 500}, headers={"X-API-Key": client_key}).json()["items"]
    return {p["person_id"]: p["template_size"] for p in items}


def test_prefix_groups_the_164_yale_photos_into_15_persons(server):
    url, admin_key, client_key = server
    from tests.conftest import YALE

    r = enroll_dir(YALE, url, admin_key, "--person-from", "prefix", "--separator", ".")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "enrolled 15 of 15 persons (164 photos sent)" in r.stdout
    assert "faces stored: 164" in r.stdout
    sizes = persons(url, client_key)
    assert sorted(sizes) == [f"subject{i:02d}" for i in range(1, 16)]
    assert sum(sizes.values()) == 164 and set(sizes.values()) <= {10, 11}
    assert "15/15" in r.stderr  # the progress bar counts persons


def test_parent_dir_pools_each_folders_photos_and_reports_refused_ones(server, tmp_path):
    url, admin_key, client_key = server
    root = tmp_path / "people"
    (root / "ada").mkdir(parents=True)
    (root / "bob" / "2026").mkdir(parents=True)
    (root / "ada" / "0-tiny.png").write_bytes(tiny_png())  # refused: the next photo enrolls
    for m in ("happy", "normal", "sad"):
        (root / "ada" / f"{m}.png").write_bytes(yale_bytes(f"subject05.{m}"))
    (root / "ada" / "z-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")  # refused extra
    (root / "bob" / "normal.png").write_bytes(yale_bytes("subject06.normal"))
    (root / "bob" / "2026" / "wink.png").write_bytes(yale_bytes("subject06.wink"))  # person "2026"
    (root / "loner.png").write_bytes(yale_bytes("subject07.normal"))  # directly in DIR: one person
    r = enroll_dir(root, url, admin_key, "--person-from", "parent-dir")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "enrolled 4 of 4 persons (8 photos sent)" in r.stdout
    assert "faces stored: 6" in r.stdout and "photos refused: image_corrupt 1" in r.stdout
    assert "ada (z-broken.jpg): image_corrupt" in r.stdout
    assert persons(url, client_key) == {"ada": 3, "bob": 1, "2026": 1, "loner": 1}
    again = enroll_dir(root, url, admin_key, "--person-from", "parent-dir", "--replace")
    assert again.returncode == 0 and persons(url, client_key)["ada"] == 3  # rebuilt, not appended


def test_file_rule_is_the_default_and_separator_must_not_be_empty(tmp_path):
    from app.cli.enroll_dir import find_jobs

    (tmp_path / "a.x.png").write_bytes(b"")
    (tmp_path / "a.y.png").write_bytes(b"")
    assert [j.person_id for j in find_jobs(tmp_path)] == ["a.x", "a.y"]
    assert [(j.person_id, len(j.photos)) for j in find_jobs(tmp_path, "prefix", ".")] == [("a", 2)]
    with pytest.raises(ValueError):
        find_jobs(tmp_path, "prefix", "")
    assert enroll_dir(tmp_path, "http://127.0.0.1:9", "k", "--person-from", "prefix", "--separator", "").returncode == 2
