"""The demo page in a real browser (Debian's headless Chromium, phone-sized viewport) against a
real server with the real model: enroll a Yale subject, verify a second photo of them
("match"), identify a third, see a refusal, delete. The real model, not the fake embedder,
because the test asserts the page shows the service's real decision for the same person.
Screenshots go to test-artifacts/browser/. Every request the browser makes must go to the
service's own origin, or be refused by the page's CSP inside the browser (the docs'
vendored bundles included)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import YALE

PHONE = {"width": 390, "height": 844}
pytestmark = pytest.mark.slow


class Traffic:
    """Every request a page starts, and those the browser itself blocked by the page's CSP
    (failure "csp": refused before anything left the machine)."""

    def __init__(self, page) -> None:
        self.requests: list[str] = []
        self.csp_blocked: set[str] = set()
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("requestfailed", lambda r: r.failure == "csp" and self.csp_blocked.add(r.url))

    def sent_elsewhere(self, origin: str) -> list[str]:
        return [u for u in self.requests if not u.startswith((origin + "/", "data:", "blob:"))
                and u not in self.csp_blocked]


def _no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_demo_page_enroll_verify_identify_delete(browser, live_server, artefacts):
    from playwright.sync_api import expect

    page = browser.new_page(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    traffic = Traffic(page)
    page.on("dialog", lambda d: d.accept())  # the delete confirmation
    page.goto(live_server.url + "/")
    expect(page.locator("#service-status")).to_contain_text("ready: model")
    page.fill("#api-key", live_server.admin_key)

    # enroll subject 01 from one photo
    page.set_input_files("#photo-file", str(YALE / "subject01.normal.png"))
    page.fill("#person-id", "yale-01")
    page.fill("#display-name", "Subject 01")
    page.click("#enroll")
    expect(page.locator("#verdict")).to_have_text("enrolled yale-01", timeout=60_000)
    expect(page.locator("#aligned")).to_be_visible()
    expect(page.locator("#persons li")).to_have_count(1)
    expect(page.locator("#persons")).to_contain_text("yale-01 (Subject 01)")

    # add a second photo to the person's template
    page.set_input_files("#photo-file", str(YALE / "subject01.wink.png"))
    page.click("#add-face")
    expect(page.locator("#verdict")).to_have_text("added a photo to yale-01: template of 2 photos",
                                                  timeout=60_000)
    expect(page.locator("#persons")).to_contain_text("yale-01 (Subject 01) · 2 photos")

    # verify a second photo of the same person: the page says match, with the distance bar
    page.set_input_files("#photo-file", str(YALE / "subject01.happy.png"))
    page.click("#verify")
    expect(page.locator("#verdict")).to_have_text("match: this is yale-01", timeout=60_000)
    expect(page.locator("#distance-text")).to_contain_text("≤ threshold")
    expect(page.locator("#distance-fill")).to_have_class(re.compile(r"\bmatch\b"))
    expect(page.locator("#aligned-figure")).to_be_visible()
    for hidden in ("#camera", "#camera-shoot", "#camera-stop"):  # until the webcam is opened
        expect(page.locator(hidden)).to_be_hidden()
    assert page.evaluate("document.getElementById('photo-canvas').width") == 320  # the photo, drawn
    assert _no_horizontal_scroll(page)
    page.screenshot(path=str(artefacts / "demo-after-verify.png"), full_page=True)

    # identify a third photo: ranked candidates, the nearest one named
    page.set_input_files("#photo-file", str(YALE / "subject01.sad.png"))
    page.click("#identify")
    expect(page.locator("#verdict")).to_have_text("identified: yale-01", timeout=60_000)
    expect(page.locator("#candidates tbody tr")).to_have_count(1)
    expect(page.locator("#candidates tbody tr").first).to_contain_text("yale-01")
    page.screenshot(path=str(artefacts / "demo-after-identify.png"), full_page=True)

    # a refusal shows its code and message
    page.fill("#person-id", "nobody")
    page.click("#verify")
    expect(page.locator("#problem")).to_contain_text("person_not_found", timeout=60_000)
    expect(page.locator("#verdict")).to_have_text("refused (404)")

    # delete with the admin key
    page.click("#persons button[aria-label='Delete yale-01']")
    expect(page.locator("#verdict")).to_have_text("deleted yale-01")
    expect(page.locator("#persons-total")).to_have_text("nobody is enrolled")
    page.screenshot(path=str(artefacts / "demo-after-delete.png"), full_page=True)

    assert not traffic.sent_elsewhere(live_server.url) and not traffic.csp_blocked


def test_webcam_photo_is_sent_and_its_refusal_shown(browser, live_server, artefacts):
    """Chromium's fake camera shows a test pattern, not a face: the page takes the photo and
    shows the service's no_face refusal with its message."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport=PHONE, permissions=["camera"])
    page = context.new_page()
    page.goto(live_server.url + "/")
    page.fill("#api-key", live_server.client_key)
    page.click("#camera-start")
    expect(page.locator("#camera-shoot")).to_be_visible()
    for _ in range(100):  # wait_for_function would eval() in the page, which its CSP forbids
        if page.evaluate("document.getElementById('camera').videoWidth > 0"):
            break
        page.wait_for_timeout(100)
    page.click("#camera-shoot")
    expect(page.locator("#photo-name")).to_contain_text("webcam.jpg")
    page.click("#identify")
    expect(page.locator("#problem")).to_contain_text("no_face", timeout=60_000)
    expect(page.locator("#problem")).to_contain_text("No face was found")
    page.click("#camera-stop")
    expect(page.locator("#camera")).to_be_hidden()
    page.screenshot(path=str(artefacts / "demo-webcam-refused.png"), full_page=True)
    context.close()


def test_docs_render_offline_and_load_nothing_from_elsewhere(browser, live_server, artefacts):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    traffic = Traffic(page)
    page.goto(live_server.url + "/docs")
    page.wait_for_selector(".swagger-ui .opblock-summary-path", timeout=60_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert {"/enroll", "/verify", "/identify"} <= {p.strip() for p in paths}
    page.screenshot(path=str(artefacts / "docs.png"), full_page=False)
    verify = page.locator(".opblock", has_text="Is this photo the enrolled person?")
    verify.locator(".opblock-summary").click()
    page.wait_for_selector(".responses-table .response[data-code='422']", timeout=30_000)
    assert "person_not_found" in verify.inner_text()  # the 404 example, by code
    verify.screenshot(path=str(artefacts / "docs-verify.png"))

    page.goto(live_server.url + "/redoc")
    page.locator("h2", has_text="Enroll a person from one photo").first.wait_for(timeout=60_000)
    page.screenshot(path=str(artefacts / "redoc.png"), full_page=False)
    # ReDoc's footer asks for its logo from cdn.redoc.ly; the CSP stops it in the browser
    assert not traffic.sent_elsewhere(live_server.url), traffic.sent_elsewhere(live_server.url)


def test_a_face_is_chosen_by_clicking_it_when_the_photo_has_several(browser, live_server, artefacts, tmp_path):
    """Two Yale subjects side by side, equally far from the centre: enroll is refused with the
    faces outlined; a click on the right-hand face (subject02) sends its box, and the person
    enrolled is subject02 (their other photo verifies)."""
    import numpy as np

    from tests.vision.photos import png, rgb_of
    from playwright.sync_api import expect

    pair = np.concatenate([rgb_of("yalefaces/subject01.normal.png"),
                           rgb_of("yalefaces/subject02.normal.png")[:, ::-1]], axis=1)
    photo = tmp_path / "pair.png"
    photo.write_bytes(png(pair))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(live_server.url + "/")
    page.fill("#api-key", live_server.admin_key)
    page.set_input_files("#photo-file", str(photo))
    page.fill("#person-id", "yale-02")
    page.click("#enroll")
    expect(page.locator("#problem")).to_contain_text("multiple_faces", timeout=60_000)
    expect(page.locator("#face-hint")).to_contain_text("2 faces: click the one to use")
    # the right-hand face: subject02's face centre, about (446, 148) in the 640x243 photo
    canvas = page.locator("#photo-canvas")
    box = canvas.bounding_box()
    canvas.click(position={"x": 446 * box["width"] / 640, "y": 148 * box["height"] / 243})
    expect(page.locator("#face-hint")).to_contain_text("face chosen at")
    page.click("#enroll")
    expect(page.locator("#verdict")).to_have_text("enrolled yale-02", timeout=60_000)
    page.screenshot(path=str(artefacts / "demo-face-chosen.png"), full_page=True)
    page.set_input_files("#photo-file", str(YALE / "subject02.happy.png"))
    page.click("#verify")
    expect(page.locator("#verdict")).to_have_text("match: this is yale-02", timeout=60_000)
