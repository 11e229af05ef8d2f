import io

import numpy as np
import pytest
from PIL import Image

from app.core import errors
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
