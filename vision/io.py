"""Decode uploaded image bytes into BGR pixel arrays, defensively.

Uploads come from the internet (storefronts, courier apps, browsers), so this module
treats every byte as hostile: it sniffs the format from magic bytes (never from a
file name or a declared content type), accepts only JPEG, PNG and WebP, checks the
pixel count from the header before any pixel buffer is allocated, refuses truncated
files, and normalises whatever it accepts to one convention: ``uint8`` BGR, shape
``(H, W, 3)``, upright (EXIF orientation applied), alpha composited on white.

Every refusal is an :class:`~vision.errors.ImageDecodeError` with a stable code:

==========================  ==================================================
``image.empty``             no bytes at all
``image.too_large``         more than ``max_bytes`` bytes
``image.unsupported_format`` anything but JPEG / PNG / WebP (GIF, BMP, PDF, ...)
``image.too_many_pixels``   header declares more than ``max_pixels`` pixels
``image.too_small``         shorter side below ``min_side`` pixels
``image.truncated``         the file ends before its pixel data does
``image.corrupt``           the format matched but the data does not decode
==========================  ==================================================
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, ImageFile, ImageOps

from vision.errors import ImageDecodeError

ImageFormat = Literal["jpeg", "png", "webp"]

DEFAULT_MAX_BYTES: Final = 15 * 1024 * 1024
DEFAULT_MAX_PIXELS: Final = 40_000_000
DEFAULT_MIN_SIDE: Final = 32

_PIL_FORMAT: Final[dict[ImageFormat, str]] = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}

# Magic bytes of formats we refuse, only to make the error message useful.
_KNOWN_REFUSED: Final[tuple[tuple[bytes, str], ...]] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"%PDF", "PDF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
)

# Errors PIL and its codecs raise on malformed data once the magic bytes matched.
_DECODE_ERRORS: Final = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
    TypeError,
)


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """An accepted upload, normalised.

    :ivar pixels: ``uint8`` array of shape ``(height, width, 3)``, BGR channel order
        (OpenCV's convention), upright, C-contiguous and read-only (copy it before
        drawing on it).
    :ivar format: the sniffed container format.
    :ivar width: ``pixels.shape[1]``, after orientation.
    :ivar height: ``pixels.shape[0]``, after orientation.
    :ivar orientation_applied: the EXIF orientation (1-8) that was undone; 1 when the
        file had none, an invalid value, or unreadable EXIF.
    """

    pixels: npt.NDArray[np.uint8]
    format: ImageFormat
    width: int
    height: int
    orientation_applied: int


def sniff_format(data: bytes) -> ImageFormat | None:
    """Return the image format named by ``data``'s magic bytes, or ``None``.

    Only the three accepted formats are recognised; everything else is ``None``.
    """
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def decode_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
) -> DecodedImage:
    """Decode a JPEG, PNG or WebP upload into an upright BGR ``uint8`` array.

    Conversions: EXIF orientation is applied (``PIL.ImageOps.exif_transpose``); alpha
    and palette transparency are composited on white; palette, grayscale, 1-bit,
    CMYK and YCbCr become 8-bit colour; 16-bit samples are scaled to 8 bits. Only the
    first frame of a multi-frame file (APNG, animated WebP, MPO) is used. ICC
    profiles are ignored.

    :param data: the raw file bytes.
    :param max_bytes: refuse larger inputs (``image.too_large``).
    :param max_pixels: refuse images whose header declares more pixels
        (``image.too_many_pixels``); checked before pixel memory is allocated.
    :param min_side: refuse images whose shorter side is smaller
        (``image.too_small``).
    :return: the decoded image.
    :raises ImageDecodeError: with one of the ``image.*`` codes in the module docs.
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # A global PIL switch; with it on, truncated uploads would decode as grey.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False")
    if not data:
        raise ImageDecodeError("image.empty", "no image data")
    if len(data) > max_bytes:
        raise ImageDecodeError(
            "image.too_large", f"{len(data)} bytes exceeds the limit of {max_bytes}"
        )
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageDecodeError(
            "image.unsupported_format", f"not JPEG, PNG or WebP ({_describe(data)})"
        )
    if fmt == "webp":
        # Pillow's WebP decoder allocates the whole canvas when the file is opened,
        # so the size has to be checked from the header before PIL sees the bytes.
        width, height = _webp_size(data)
        _check_size(width, height, max_pixels=max_pixels, min_side=min_side)

    with _open(data, fmt) as im:
        # Header only so far: no pixel buffer exists yet.
        _check_size(im.width, im.height, max_pixels=max_pixels, min_side=min_side)
        if fmt == "png":
            _verify_png(data)
        try:
            im.load()
        except _DECODE_ERRORS as exc:
            raise _load_error(exc) from exc
        orientation = _exif_orientation(im)
        try:
            upright = ImageOps.exif_transpose(im) if orientation != 1 else im
            rgb = np.asarray(_to_rgb8(upright), dtype=np.uint8)
        except _DECODE_ERRORS as exc:
            raise ImageDecodeError("image.corrupt", f"cannot convert pixels: {exc}") from exc

    pixels = np.ascontiguousarray(rgb[:, :, ::-1])
    pixels.flags.writeable = False
    return DecodedImage(
        pixels=pixels,
        format=fmt,
        width=int(pixels.shape[1]),
        height=int(pixels.shape[0]),
        orientation_applied=orientation,
    )


def load_image(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
) -> DecodedImage:
    """Read a file and :func:`decode_image` it; the extension is ignored.

    :raises ImageDecodeError: as :func:`decode_image`; ``image.too_large`` is raised
        without reading an oversized file into memory.
    :raises OSError: when the file cannot be read.
    """
    with open(path, "rb") as fh:
        # One byte over the limit is enough to know it is too large.
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageDecodeError("image.too_large", f"file exceeds the limit of {max_bytes} bytes")
    return decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels, min_side=min_side)


def _describe(data: bytes) -> str:
    for magic, name in _KNOWN_REFUSED:
        if data.startswith(magic):
            return name
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "HEIF/AVIF"
    head = data[:256].lstrip().lower()
    if head.startswith((b"<svg", b"<?xml")) or b"<svg" in head:
        return "SVG/XML"
    if head.startswith((b"<!doctype html", b"<html")):
        return "HTML"
    return "unrecognised data"


def _check_size(width: int, height: int, *, max_pixels: int, min_side: int) -> None:
    if width * height > max_pixels:
        raise ImageDecodeError(
            "image.too_many_pixels",
            f"{width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}",
        )
    if min(width, height) < min_side:
        raise ImageDecodeError(
            "image.too_small", f"{width}x{height}: the shorter side is under {min_side} px"
        )


def _open(data: bytes, fmt: ImageFormat) -> Image.Image:
    """Open (parse the header of) ``data`` with the one PIL plugin for ``fmt``."""
    try:
        # PIL warns between MAX_IMAGE_PIXELS and twice that, and raises above; make
        # the warning an error too. (catch_warnings touches process-wide state; the
        # workers decode in processes, not threads.)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[fmt]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError("image.too_many_pixels", str(exc)) from exc
    except _DECODE_ERRORS as exc:
        # UnidentifiedImageError is an OSError: the magic matched but the header didn't.
        raise ImageDecodeError("image.corrupt", f"cannot parse the {fmt} header: {exc}") from exc


def _load_error(exc: BaseException) -> ImageDecodeError:
    # PIL reports a short read only in the message ("image file is truncated",
    # "truncated PNG file", "Truncated File Read"); anything else is damaged data.
    if isinstance(exc, EOFError) or "truncated" in str(exc).lower():
        return ImageDecodeError("image.truncated", f"the file ends early: {exc}")
    return ImageDecodeError("image.corrupt", f"cannot decode pixels: {exc}")


def _verify_png(data: bytes) -> None:
    """Check every chunk CRC up to IEND; PIL's load() skips IDAT CRCs and a missing IEND."""
    # verify() needs a fresh file object and leaves the image unusable: open twice.
    with _open(data, "png") as im:
        try:
            im.verify()
        except _DECODE_ERRORS as exc:
            raise _load_error(exc) from exc


def _webp_size(data: bytes) -> tuple[int, int]:
    """Canvas ``(width, height)`` from a WebP header (RIFF + VP8 / VP8L / VP8X)."""
    riff_size = int.from_bytes(data[4:8], "little")
    if len(data) < riff_size + 8:
        raise ImageDecodeError(
            "image.truncated", f"WebP declares {riff_size + 8} bytes, got {len(data)}"
        )
    chunk = data[12:16]
    if len(data) < 30:
        raise ImageDecodeError("image.corrupt", "WebP header too short")
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
    elif chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise ImageDecodeError("image.corrupt", "bad VP8 start code")
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
    elif chunk == b"VP8L":
        if data[20] != 0x2F:
            raise ImageDecodeError("image.corrupt", "bad VP8L signature")
        bits = int.from_bytes(data[21:25], "little")
        width = 1 + (bits & 0x3FFF)
        height = 1 + ((bits >> 14) & 0x3FFF)
    else:
        raise ImageDecodeError("image.corrupt", f"unknown WebP chunk {chunk!r}")
    return width, height


def _exif_orientation(im: Image.Image) -> int:
    """EXIF orientation 1-8, or 1 when absent, invalid or unreadable."""
    try:
        value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except _DECODE_ERRORS:
        # Broken EXIF is common in edited photos; the pixels are still usable.
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_rgb8(im: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit ``RGB``: 16-bit scaled down, transparency on white."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit grayscale PNG; map 0..65535 onto 0..255 (PIL's convert() clips instead).
        wide = np.asarray(im).astype(np.float32)
        im = Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")
