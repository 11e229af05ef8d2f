import io

import numpy as np
import pytest
from PIL import Image

from app.domain import errors
from app.vision.decode import DecodeLimits, decode_image, sniff_format
from tests.conftest import yale_bytes


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


PHOTO = Image.open(io.BytesIO(yale_bytes("subject01.normal"))).convert("RGB")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF"])
def test_each_format_decodes_to_rgb(fmt):
    rgb = decode_image(encode(PHOTO, fmt))
    assert rgb.dtype == np.uint8 and rgb.shape == (243, 320, 3)


def test_type_comes_from_bytes_not_name():
    assert sniff_format(encode(PHOTO, "PNG")) == "PNG"
    assert sniff_format(b"<html>") is None


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    rgb = decode_image(encode(PHOTO, "JPEG", exif=exif))
    assert rgb.shape == (320, 243, 3)


def test_modes_become_rgb():
    for image in (PHOTO.convert("CMYK"), PHOTO.convert("RGBA"), PHOTO.convert("LA"), PHOTO.convert("P")):
        fmt = "JPEG" if image.mode == "CMYK" else "PNG"
        assert decode_image(encode(image, fmt)).shape == (243, 320, 3)
    sixteen = Image.fromarray((np.asarray(PHOTO.convert("L"), np.uint16) * 256).astype(np.uint16))
    rgb = decode_image(encode(sixteen, "PNG"))
    assert rgb.shape == (243, 320, 3) and rgb.max() == 255 and rgb.min() == 0


def test_limits():
    data = encode(PHOTO, "PNG")
    with pytest.raises(errors.PayloadTooLarge):
        decode_image(data, DecodeLimits(max_bytes=len(data) - 1))
    with pytest.raises(errors.ImageTooManyPixels):
        decode_image(data, DecodeLimits(max_pixels=320 * 243 - 1))
    with pytest.raises(errors.ImageTooSmall):
        decode_image(data, DecodeLimits(min_side=244))
    with pytest.raises(errors.CorruptImage):
        decode_image(data[:200])


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_that_keeps_the_asked_side():
    from app.vision.decode import decode_reduced

    big = PHOTO.resize((4000, 3038), Image.BICUBIC)
    rgb, k = decode_reduced(encode(big, "JPEG", quality=90), DecodeLimits(), 640)
    assert k == 4 and rgb.shape == (760, 1000, 3)  # 1/8 would be 500 px, under 640
    # not reduced: a PNG (no DCT scaling), a JPEG under twice the asked side, reduce_to 0
    assert decode_reduced(encode(big, "PNG"), DecodeLimits(), 640)[1] == 1
    small = PHOTO.resize((1200, 911), Image.BICUBIC)
    assert decode_reduced(encode(small, "JPEG"), DecodeLimits(), 640)[0].shape == (911, 1200, 3)
    assert decode_reduced(encode(big, "JPEG"), DecodeLimits(), 0)[0].shape == (3038, 4000, 3)


def test_a_reduced_decode_keeps_the_limits_of_the_declared_size_and_the_exif_turn():
    from app.vision.decode import decode_reduced

    big = PHOTO.resize((4000, 3038), Image.BICUBIC)
    with pytest.raises(errors.ImageTooManyPixels):
        decode_reduced(encode(big, "JPEG"), DecodeLimits(max_pixels=4000 * 3038 - 1), 640)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    rgb, k = decode_reduced(encode(big, "JPEG", exif=exif), DecodeLimits(), 640)
    assert k == 4 and rgb.shape == (1000, 760, 3)
