"""Safe image decoding: bytes in, an RGB uint8 array out, or a clear 4xx error.

The order matters: size of the bytes, type sniffed from the magic bytes (never the
file name or the client's content type), declared dimensions read from the header
and checked *before* any pixel is decoded (decompression bombs), then decoding,
EXIF orientation and conversion to RGB.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from app.core.config import default_of
from app.domain import errors

# magic bytes -> Pillow format name
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"BM", "BMP"),
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
)


@dataclass(frozen=True)
class DecodeLimits:
    max_bytes: int = default_of("max_upload_bytes")
    max_pixels: int = default_of("max_pixels")
    min_side: int = default_of("min_image_side")


def sniff_format(data: bytes) -> str | None:
    """Pillow format name from the first bytes, or None for anything we do not accept."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for offset, magic, fmt in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return fmt
    return None


def decode_image(data: bytes, limits: DecodeLimits = DecodeLimits()) -> np.ndarray:
    """Decode untrusted bytes into an HxWx3 uint8 RGB array (first frame of animations)."""
    return decode_reduced(data, limits, 0)[0]


def decode_reduced(data: bytes, limits: DecodeLimits, reduce_to: int) -> tuple[np.ndarray, int]:
    """Like decode_image, but a JPEG whose longer side is at least twice `reduce_to` is decoded
    at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling, Pillow's `draft`), its longer side
    kept at `reduce_to` or more: 5-10x faster than decoding a 12-megapixel photo in full.
    Returns the array and the factor k (1, 2, 4 or 8): a decoded pixel is k x k photo pixels.
    The limits apply to the photo's declared size, whatever the factor."""
    if not data:
        raise errors.EmptyImage("The image is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise errors.PayloadTooLarge(
            f"The image is {len(data)} bytes; the limit is {limits.max_bytes} bytes"
        )
    fmt = sniff_format(data)
    if fmt is None:
        raise errors.UnsupportedImageType(
            "The bytes are not a JPEG, PNG, WebP, BMP or GIF image (the type is read from the content)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = image.size
            _check_dimensions(width, height, limits)
            if reduce_to and fmt == "JPEG" and max(width, height) >= 2 * reduce_to:
                r = reduce_to / max(width, height)
                image.draft("RGB", (math.ceil(width * r), math.ceil(height * r)))
            image.seek(0)
            image.load()
    except errors.DomainError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own check (before ours can read the size) speaks of "DOS attacks"; ours does not
        raise errors.ImageTooManyPixels(
            f"The image declares more than {Image.MAX_IMAGE_PIXELS} pixels; "
            f"the limit is {limits.max_pixels} pixels") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, ZeroDivisionError,
            struct.error, MemoryError):
        raise errors.CorruptImage(f"The {fmt} image is truncated or corrupt") from None
    factor = max(1, round(width / image.size[0]))  # before the EXIF turn, which may swap sides
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block must not reject an otherwise good photo
        pass
    return to_rgb(image), factor  # EXIF rotation swaps the sides, so the checks above still hold


def decoded_pixels(data: bytes, reduce_to: int = 0) -> int:
    """The pixels `decode_reduced` would decode, read from the header alone (no pixel is
    decoded; microseconds): the cost a request asks of the detection stage. 1 for bytes whose
    header cannot be read (their decode fails at once)."""
    fmt = sniff_format(data)
    if fmt is None:
        return 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            width, height = Image.open(io.BytesIO(data), formats=[fmt]).size
    except Exception:  # any unreadable header: decode_reduced says what is wrong
        return 1
    k = 1
    if reduce_to and fmt == "JPEG":  # libjpeg's DCT scaling, as decode_reduced asks for it
        while k < 8 and max(width, height) / (2 * k) >= reduce_to:
            k *= 2
    return max(1, math.ceil(width / k) * math.ceil(height / k))


def _check_dimensions(width: int, height: int, limits: DecodeLimits) -> None:
    if width * height > limits.max_pixels:
        raise errors.ImageTooManyPixels(
            f"The image is {width}x{height} = {width * height} pixels; "
            f"the limit is {limits.max_pixels} pixels"
        )
    if min(width, height) < limits.min_side:
        raise errors.ImageTooSmall(
            f"The image is {width}x{height}; both sides must be at least {limits.min_side} px"
        )


def to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> uint8 RGB. 16-bit and float images are rescaled, alpha is
    composited onto mid-grey (a transparent background must not look like a face edge)."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(image, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo) * 255.0
        return np.repeat(a.round().astype(np.uint8)[..., None], 3, axis=2)
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (128, 128, 128, 255))
        image = Image.alpha_composite(background, image)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)
