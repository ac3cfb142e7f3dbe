"""Structural checks of uploaded images, cheap enough for the API process.

The API never decodes pixels (CPU work belongs to workers). It checks what can be
checked from the bytes: size, the format's signature, a parsable header with sane
dimensions (decompression bombs), and that the file is complete (a JPEG ends with its
EOI marker, a PNG with IEND, a WebP's RIFF length matches). A file that passes and
still fails to decode in the worker is decided with ``image.unreadable``.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

from PIL import Image

from services.errors import PayloadTooLarge, Unprocessable, UnsupportedMedia

CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MIN_SIDE = 200  # smaller than this cannot show a readable ID card or a face


@dataclass(frozen=True, slots=True)
class CheckedImage:
    data: bytes
    content_type: str
    width: int
    height: int


def _format(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _jpeg_complete(data: bytes) -> bool:
    """An end-of-image marker after the first scan. Walking the header segments skips an
    EXIF thumbnail's own EOI; phones may append data after the EOI (motion photos), so
    the marker need not be last. Entropy-coded data cannot contain FFD9 (FF is stuffed)."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return True  # not a segment structure we know: the header check decides
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan
            return data.find(b"\xff\xd9", pos) != -1
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + int(length)
    return False


def _complete(fmt: str, data: bytes) -> bool:
    if fmt == "JPEG":
        return _jpeg_complete(data)
    if fmt == "PNG":
        return data[-12:-8] == b"\x00\x00\x00\x00" and data[-8:-4] == b"IEND"
    if fmt == "WEBP":
        (riff_len,) = struct.unpack("<I", data[4:8])
        return int(riff_len) + 8 <= len(data)
    return False


def check_image(part: str, data: bytes, *, max_bytes: int, max_pixels: int) -> CheckedImage:
    if not data:
        raise Unprocessable(f"{part}: the file is empty", code="upload.empty")
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"{part}: {len(data)} bytes, the limit is {max_bytes}", code="upload.too_large"
        )
    fmt = _format(data)
    if fmt is None:
        raise UnsupportedMedia(f"{part}: not a JPEG, PNG or WebP image", code="upload.not_an_image")
    if not _complete(fmt, data):
        raise Unprocessable(f"{part}: the {fmt} file is truncated", code="upload.truncated")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                detected = im.format
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise PayloadTooLarge(f"{part}: {exc}", code="upload.too_many_pixels") from exc
    except Exception as exc:  # PIL raises many types for a bad header
        raise Unprocessable(
            f"{part}: the {fmt} header is unreadable ({type(exc).__name__})", code="upload.corrupt"
        ) from exc
    if detected != fmt:
        raise Unprocessable(
            f"{part}: header says {detected}, signature {fmt}", code="upload.corrupt"
        )
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"{part}: {width}x{height} pixels, the limit is {max_pixels}",
            code="upload.too_many_pixels",
        )
    if min(width, height) < MIN_SIDE:
        raise Unprocessable(
            f"{part}: {width}x{height} is too small (at least {MIN_SIDE} px a side)",
            code="upload.too_small",
        )
    return CheckedImage(data, CONTENT_TYPES[fmt], width, height)
