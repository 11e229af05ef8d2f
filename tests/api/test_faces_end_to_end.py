"""The product's promise on real photos, through the real detector and model:
enroll from one photo, verify the same person, reject others, identify, delete. The first two
run on both embedder runtimes (keras, litert)."""

from __future__ import annotations

from tests.conftest import as_jpeg, yale_bytes

OTHERS = ("subject02", "subject05", "subject09")


def test_enroll_verify_identify_delete_on_real_faces(runtime_api):
    api = runtime_api
    r = api.enroll("subject01", yale_bytes("subject01.normal"), display_name="Subject 1")
    assert r.status_code == 201, r.text
    assert r.json()["person"]["person_id"] == "subject01"
    assert r.json()["face"]["faces_detected"] == 1
    for other in OTHERS:  # a gallery, so identify has to choose
        assert api.enroll(other, yale_bytes(f"{other}.normal")).status_code == 201

    # same person, another photo (and another format: JPEG)
    r = api.verify("subject01", as_jpeg(yale_bytes("subject01.happy")))
    body = r.json()
    assert r.status_code == 200, r.text
    assert body["match"] is True
    assert body["distance"] <= body["threshold"]
    assert body["model_version"] == api.http.get("/model").json()["model_version"]

    # three other people do not verify as subject01
    for other in OTHERS:
        body = api.verify("subject01", yale_bytes(f"{other}.glasses")).json()
        assert body["match"] is False, (other, body)
        assert body["distance"] > body["threshold"]

    r = api.identify(yale_bytes("subject01.sleepy"), top_k=3)
    body = r.json()
    assert r.status_code == 200, r.text
    assert body["match"]["person_id"] == "subject01"
    assert body["candidates"][0]["person_id"] == "subject01"
    assert len(body["candidates"]) == 3
    assert [c["distance"] for c in body["candidates"]] == sorted(c["distance"] for c in body["candidates"])

    assert api.http.delete("/persons/subject01", headers=api.admin).status_code == 204
    assert api.http.get("/persons/subject01", headers=api.client).status_code == 404
    assert api.verify("subject01", yale_bytes("subject01.happy")).status_code == 404
    body = api.identify(yale_bytes("subject01.sleepy")).json()
    assert all(c["person_id"] != "subject01" for c in body["candidates"])


def test_unknown_face_gets_no_match(runtime_api):
    api = runtime_api
    api.enroll("subject01", yale_bytes("subject01.normal"))
    body = api.identify(yale_bytes("subject07.normal")).json()
    assert body["match"] is None
    assert body["candidates"][0]["distance"] > body["threshold"]


def test_json_base64_enroll_and_verify(api):
    import base64

    b64 = base64.b64encode(yale_bytes("subject03.normal")).decode()
    r = api.http.post("/enroll", json={"person_id": "s3", "image_base64": b64}, headers=api.admin)
    assert r.status_code == 201, r.text
    b64 = base64.b64encode(yale_bytes("subject03.wink")).decode()
    r = api.http.post("/verify", json={"person_id": "s3", "image_base64": b64}, headers=api.client)
    assert r.status_code == 200 and r.json()["match"] is True, r.text


def test_replace_re_enrolls(api):
    assert api.enroll("p1", yale_bytes("subject04.normal")).status_code == 201
    r = api.enroll("p1", yale_bytes("subject06.normal"), replace=True)
    assert r.status_code == 201 and r.json()["replaced"] is True
    assert api.verify("p1", yale_bytes("subject06.happy")).json()["match"] is True
    assert api.verify("p1", yale_bytes("subject04.happy")).json()["match"] is False
    assert api.count_persons() == 1


def test_persons_are_paged(api):
    for i, s in enumerate(("subject02", "subject03", "subject04")):
        api.enroll(f"p{i}", yale_bytes(f"{s}.normal"))
    page = api.http.get("/persons?offset=1&limit=1", headers=api.client).json()
    assert page["total"] == 3 and page["offset"] == 1 and page["limit"] == 1
    assert [p["person_id"] for p in page["items"]] == ["p1"]
    assert "embedding" not in page["items"][0]
