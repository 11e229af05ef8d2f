"""Hostile images: whatever bytes arrive, the answer is a 4xx with a clear code or a correct
result, never a 500, and memory stays bounded.

- property-based (hypothesis): random bytes, and real JPEG/PNG/WebP/GIF/BMP files with bytes
  flipped, inserted, deleted and truncated, straight into the decoder;
- headers that declare 50000x50000 pixels (PNG, JPEG, GIF, BMP, WebP at its 16383 max),
  decoded in a child process whose peak RSS is measured;
- a 200 MB body, refused while it streams: the bytes the server pulled are counted;
- animated GIF/WebP, CMYK JPEG, 16-bit PNG (grey and RGB), alpha, EXIF-rotated faces and
  extreme aspect ratios through the real detector and embedder: faces still verify.
"""

from __future__ import annotations

import io
import json
import select
import socket
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.api.problems import status_of
from app.domain import errors
from app.vision.decode import DecodeLimits, decode_image
from tests.conftest import yale_bytes

LIMITS = DecodeLimits()  # the service defaults
FACE = Image.open(io.BytesIO(yale_bytes("subject01.happy"))).convert("RGB")
SMALL = FACE.resize((80, 60))


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


SEEDS = {fmt: encode(SMALL, fmt) for fmt in ("JPEG", "PNG", "WEBP", "GIF", "BMP")}
SEEDS["PNG-alpha"] = encode(SMALL.convert("RGBA"), "PNG")
SEEDS["JPEG-progressive"] = encode(SMALL, "JPEG", progressive=True)


def decode_outcome(data: bytes, limits: DecodeLimits = LIMITS) -> str:
    """'ok' (a valid RGB array) or the 4xx code; anything else fails the test."""
    try:
        rgb = decode_image(data, limits)
    except errors.DomainError as exc:
        assert 400 <= status_of(exc) < 500, (status_of(exc), exc.code)
        assert exc.code and exc.detail
        return exc.code
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.shape[0] * rgb.shape[1] <= limits.max_pixels
    assert min(rgb.shape[:2]) >= limits.min_side
    return "ok"


# --- property-based: random and mutated bytes ----------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    decode_outcome(data)


@FUZZ
@given(st.sampled_from(sorted(SEEDS)), st.binary(min_size=0, max_size=16))
def test_random_bytes_behind_a_real_magic_number(fmt, tail):
    seed = SEEDS[fmt]
    decode_outcome(seed[:16] + tail)  # signature and start of header, then garbage


@st.composite
def mutated(draw):
    fmt = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[fmt])
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "dup"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 64))]
        elif op == "truncate":
            del data[i:]
        else:  # duplicate a slice (repeated chunks / markers)
            j = min(len(data), i + draw(st.integers(1, 256)))
            data[i:i] = data[i:j]
    return bytes(data)


@settings(FUZZ, max_examples=600)
@given(mutated())
def test_mutated_real_images(data):
    decode_outcome(data)


@pytest.mark.parametrize("fmt", sorted(SEEDS))
def test_every_truncation_point(fmt):
    seed = SEEDS[fmt]
    cuts = sorted(set(np.linspace(0, len(seed) - 1, 60).astype(int)))
    outcomes = {decode_outcome(seed[:n]) for n in cuts}
    assert outcomes <= {"ok", "image_missing", "image_corrupt", "unsupported_image_type", "image_too_small"}
    assert decode_outcome(seed) == "ok"


# --- decompression bombs: declared dimensions, bounded memory --------------------------------

def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int, depth: int = 8, color: int = 2) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 4096))
            + _chunk(b"IEND", b""))


def jpeg_declaring(width: int, height: int) -> bytes:
    data = bytearray(encode(SMALL, "JPEG"))
    i = 2
    while i < len(data):  # walk the markers to the SOF0 frame header and patch its size
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker == 0xC0:
            data[i + 5 : i + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        i += 2 + length
    raise AssertionError("no SOF0")


def gif_declaring(width: int, height: int) -> bytes:
    data = bytearray(encode(SMALL, "GIF"))
    data[6:10] = struct.pack("<HH", width, height)  # logical screen
    j = data.index(b"\x2c")  # first image descriptor
    data[j + 5 : j + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def bmp_declaring(width: int, height: int) -> bytes:
    data = bytearray(encode(SMALL, "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def webp_declaring(width: int, height: int) -> bytes:
    """A lossless WebP (VP8L) header declaring width x height (at most 16384 per side)."""
    bits = (width - 1) | ((height - 1) << 14)
    payload = b"\x2f" + struct.pack("<I", bits) + b"\0" * 32
    chunk = b"VP8L" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


BOMBS = {
    "png-50000x50000": png_declaring(50_000, 50_000),
    "png16-50000x50000": png_declaring(50_000, 50_000, depth=16),
    "png-1x2e9": png_declaring(1 << 16, 1 << 15),
    "jpeg-50000x50000": jpeg_declaring(50_000, 50_000),
    "gif-50000x50000": gif_declaring(50_000, 50_000),
    "bmp-50000x50000": bmp_declaring(50_000, 50_000),
    "webp-16383x16383": webp_declaring(16_383, 16_383),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_declared_huge_images_are_refused_before_decoding(name):
    assert decode_outcome(BOMBS[name]) in {"image_too_many_pixels", "image_corrupt"}
    if not name.startswith("webp"):  # our VP8L header is minimal; Pillow may call it corrupt first
        assert decode_outcome(BOMBS[name]) == "image_too_many_pixels"


def test_memory_stays_bounded_while_decoding_bombs_and_garbage():
    """All bombs, plus 200 mutated files, in a fresh process: its peak RSS stays small. A single
    50000x50000 RGB decode would need 7.5 GB."""
    payload = {k: v.hex() for k, v in BOMBS.items()}
    script = textwrap.dedent("""
        import json, resource, sys, random
        from app.domain import errors
        from app.vision.decode import decode_image
        bombs = {k: bytes.fromhex(v) for k, v in json.load(sys.stdin).items()}
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        codes = {}
        rnd = random.Random(0)
        samples = list(bombs.items())
        for i in range(200):
            name, data = rnd.choice(samples)
            data = bytearray(data)
            for _ in range(4):
                data[rnd.randrange(len(data))] = rnd.randrange(256)
            samples.append((f"{name}~{i}", bytes(data)))
        for name, data in samples:
            try:
                decode_image(data)
                codes[name] = "ok"
            except errors.DomainError as e:
                codes[name] = e.code
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"base_kb": base, "peak_kb": peak, "codes": codes}))
    """)
    out = subprocess.run([sys.executable, "-c", script], input=json.dumps(payload), text=True,
                         capture_output=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    grew_mb = (result["peak_kb"] - result["base_kb"]) / 1024
    assert grew_mb < 300, f"decoding bombs grew the peak RSS by {grew_mb:.0f} MB"
    assert {result["codes"][k] for k in BOMBS} <= {"image_too_many_pixels", "image_corrupt"}


# --- a 200 MB body is refused while it streams -----------------------------------------------

TWO_HUNDRED_MB = 200 * 1024 * 1024


PREAMBLE = (b"--xyz\r\nContent-Disposition: form-data; name=\"person_id\"\r\n\r\nbig\r\n"
            b"--xyz\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
            b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff")


def _asgi_post(app, portal, headers: list[tuple[bytes, bytes]], chunk: bytes, total: int) -> tuple[int, int]:
    """POST /enroll straight into the ASGI app with a valid multipart body (a file field that
    goes on for `total` bytes) produced on demand; returns (status, bytes the app pulled)."""
    pulled = 0
    status = {}

    async def receive():
        nonlocal pulled
        if pulled >= total:
            return {"type": "http.request", "body": b"", "more_body": False}
        body = PREAMBLE if pulled == 0 else chunk
        pulled += len(body)
        return {"type": "http.request", "body": body, "more_body": pulled < total}

    async def send(message):
        if message["type"] == "http.response.start":
            status["code"] = message["status"]

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/enroll", "raw_path": b"/enroll", "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
             "state": {}}

    async def call():
        await app(scope, receive, send)

    portal.call(call)
    return status["code"], pulled


@pytest.fixture
def fake_api(tmp_path):
    from tests.conftest import FakeDetector, FakeEmbedder, make_api, migrated_sqlite_url

    with make_api(migrated_sqlite_url(tmp_path), FakeEmbedder(), FakeDetector()) as api:
        yield api


def test_200mb_body_refused_while_streaming(fake_api):
    app, portal = fake_api.http.app, fake_api.http.portal
    key = fake_api.admin["X-API-Key"].encode()
    limit = 10 * 1024 * 1024 * 4 // 3 + 64 * 1024  # BodyLimit for the default max_upload_bytes
    chunk = b"\xff" * (1024 * 1024)
    boundary = b"multipart/form-data; boundary=xyz"
    # declared length: refused before a single byte is read
    status, pulled = _asgi_post(app, portal, [(b"content-type", boundary), (b"x-api-key", key),
                                              (b"content-length", str(TWO_HUNDRED_MB).encode())],
                                chunk, TWO_HUNDRED_MB)
    assert (status, pulled) == (413, 0)
    # chunked (no length): refused as soon as the limit is crossed, not after 200 MB
    status, pulled = _asgi_post(app, portal, [(b"content-type", boundary), (b"x-api-key", key)],
                                chunk, TWO_HUNDRED_MB)
    assert status == 413
    assert pulled <= limit + len(chunk), f"pulled {pulled} bytes before refusing"
    print(f"\n200 MB chunked body: refused with 413 after pulling {pulled} bytes (limit {limit})")
    assert fake_api.count_persons() == 0


def test_200mb_body_over_a_real_socket(tmp_path):
    """The same over TCP against uvicorn: the client manages to push only a small part of the
    200 MB before the 413 comes back and the server stops reading."""
    from tests.conftest import migrated_sqlite_url
    from tests.hardening.conftest import live_app

    with live_app(migrated_sqlite_url(tmp_path)) as live:
        host, port = live.base_url.removeprefix("http://").split(":")
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.sendall(f"POST /enroll HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {live.admin_key}\r\n"
                     "Content-Type: multipart/form-data; boundary=xyz\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        sock.setblocking(False)
        preamble = PREAMBLE
        block = b"100000\r\n" + b"\xff" * 0x100000 + b"\r\n"  # 1 MiB chunks
        sent, answer = 0, b""
        while sent < TWO_HUNDRED_MB:
            readable, writable, _ = select.select([sock], [sock], [], 10)
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionError:
                    break
                answer += data
                if not data or b"\r\n\r\n" in answer:
                    break
            elif writable:
                try:
                    if preamble:
                        sock.sendall(b"%x\r\n" % len(preamble) + preamble + b"\r\n")
                        preamble = b""
                    sent += sock.send(block)
                except (BlockingIOError, ConnectionError):
                    break
            else:
                break  # neither: the server stopped reading and said nothing (a failure below)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < 40 * 1024 * 1024, f"the server accepted {sent} bytes"
        print(f"\n200 MB over TCP: 413 after the client pushed {sent} bytes")


# --- odd but valid photos of a face still verify (real detector and embedder) ----------------

def exif_rotated_jpeg(image: Image.Image) -> bytes:
    """Pixels stored rotated 90° counter-clockwise, EXIF orientation 6 says 'rotate back'."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(image.rotate(90, expand=True), "JPEG", quality=95, exif=exif.tobytes())


def png16(image: Image.Image, rgb: bool) -> bytes:
    """A 16-bit PNG (grey or RGB, 48 bits per pixel), written by hand: Pillow cannot write RGB16."""
    a = np.asarray(image.convert("RGB" if rgb else "L"), np.uint16) * 257
    h, w = a.shape[:2]
    rows = a.reshape(h, -1).astype(">u2").tobytes()
    stride = w * (6 if rgb else 2)
    raw = b"".join(b"\0" + rows[y * stride : (y + 1) * stride] for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2 if rgb else 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def with_alpha(image: Image.Image) -> bytes:
    rgba = image.convert("RGBA")
    alpha = np.full(rgba.size[::-1], 255, np.uint8)
    alpha[:, : rgba.width // 8] = 0  # a transparent strip at the left edge
    rgba.putalpha(Image.fromarray(alpha))
    return encode(rgba, "PNG")


def animated(image: Image.Image, fmt: str) -> bytes:
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (image.height, image.width, 3), np.uint8))
    return encode(image, fmt, save_all=True, append_images=[noise, image.transpose(Image.FLIP_LEFT_RIGHT)],
                  duration=100, loop=0)


VARIANTS = {
    "exif-rotated-jpeg": lambda im: exif_rotated_jpeg(im),
    "cmyk-jpeg": lambda im: encode(im.convert("CMYK"), "JPEG", quality=95),
    "png16-grey": lambda im: png16(im, rgb=False),
    "png16-rgb": lambda im: png16(im, rgb=True),
    "png-alpha": with_alpha,
    "la-png": lambda im: encode(im.convert("LA"), "PNG"),
    "palette-png": lambda im: encode(im.convert("P"), "PNG"),
    "animated-gif": lambda im: animated(im, "GIF"),
    "animated-webp": lambda im: animated(im, "WEBP"),
    "lossless-webp": lambda im: encode(im, "WEBP", lossless=True),
    "bmp": lambda im: encode(im, "BMP"),
}


def test_exif_fixture_really_is_rotated():
    data = exif_rotated_jpeg(FACE)
    stored = Image.open(io.BytesIO(data))
    assert stored.size == (FACE.height, FACE.width)  # stored sideways
    assert decode_image(data).shape == (FACE.height, FACE.width, 3)  # shown upright


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, real_embedder, real_detector):
    from tests.conftest import make_api, migrated_sqlite_url

    with make_api(migrated_sqlite_url(tmp_path_factory.mktemp("hostile")), real_embedder, real_detector) as api:
        assert api.enroll("subject01", yale_bytes("subject01.normal")).status_code == 201
        assert api.enroll("subject02", yale_bytes("subject02.normal")).status_code == 201
        yield api


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_odd_formats_of_a_face_still_verify(enrolled, variant):
    data = VARIANTS[variant](FACE)
    r = enrolled.verify("subject01", data)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["match"] is True, (variant, body)
    plain = enrolled.verify("subject01", encode(FACE, "PNG")).json()
    assert abs(body["distance"] - plain["distance"]) < 0.1, (variant, body["distance"], plain["distance"])
    best = enrolled.identify(data).json()
    assert best["match"] and best["match"]["person_id"] == "subject01"


@pytest.mark.parametrize(("size", "code"), [
    ((32, 40_000), {"no_face"}),        # 1:1250 sliver: the detector must not choke on it
    ((40_000, 32), {"no_face"}),
    ((6000, 6000), {"no_face"}),        # 36 Mpx, under the pixel cap: decoded, downscaled, no face
    ((31, 4000), {"image_too_small"}),
])
def test_extreme_shapes(enrolled, size, code):
    image = Image.new("RGB", size, (120, 130, 140))
    r = enrolled.identify(encode(image, "PNG"))
    assert r.status_code in (413, 422), r.text
    assert r.json()["code"] in code


def test_hostile_bytes_through_the_real_pipeline(enrolled):
    """A sample of mutated files through the HTTP API with the real detector: never a 5xx."""
    rng = np.random.default_rng(1)
    statuses = []
    for i in range(24):
        data = bytearray(SEEDS[sorted(SEEDS)[i % len(SEEDS)]])
        for _ in range(3):
            data[rng.integers(16, len(data))] = rng.integers(0, 256)
        r = enrolled.identify(bytes(data))
        statuses.append(r.status_code)
        assert r.status_code < 500 and "Traceback" not in r.text, r.text
    for name, bomb in BOMBS.items():
        r = enrolled.verify("subject01", bomb)
        assert r.status_code in (413, 422) and r.json()["code"] in {"image_too_many_pixels", "image_corrupt"}, name
