"""Tests for vision.io: every image is generated here, no binary fixtures."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from vision.errors import ImageDecodeError, VisionError
from vision.io import DecodedImage, decode_image, load_image, sniff_format

RED_BGR = (0, 0, 255)


def _encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def _rgb(
    width: int = 64, height: int = 48, color: tuple[int, int, int] = (10, 200, 30)
) -> Image.Image:
    return Image.new("RGB", (width, height), color)


def _noise(width: int = 120, height: int = 90, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR declares ``width x height`` RGB: a decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _webp_header_only(width: int, height: int) -> bytes:
    """A lossless-WebP header declaring ``width x height`` with no image data behind it."""
    bits = (width - 1) | ((height - 1) << 14)
    payload = b"\x2f" + bits.to_bytes(4, "little") + b"\x00" * 16
    chunk = b"VP8L" + len(payload).to_bytes(4, "little") + payload
    return b"RIFF" + (4 + len(chunk)).to_bytes(4, "little") + b"WEBP" + chunk


def _find_chunk(data: bytes, kind: bytes) -> int:
    """Offset of the length field of the first ``kind`` chunk in a PNG."""
    return data.index(kind) - 4


def _png_bad_ihdr_crc() -> bytes:
    data = bytearray(_encode(_noise(), "PNG"))
    crc_at = _find_chunk(bytes(data), b"IHDR") + 8 + 13
    data[crc_at] ^= 0xFF
    return bytes(data)


def _png_bad_idat_crc() -> bytes:
    data = bytearray(_encode(_noise(), "PNG"))
    start = _find_chunk(bytes(data), b"IDAT")
    length = struct.unpack(">I", data[start : start + 4])[0]
    data[start + 8 + length] ^= 0xFF  # first CRC byte
    return bytes(data)


def _png_bad_idat_data() -> bytes:
    """IDAT payload scrambled but with a recomputed CRC: only zlib can notice."""
    data = bytearray(_encode(_noise(), "PNG"))
    start = _find_chunk(bytes(data), b"IDAT")
    length = struct.unpack(">I", data[start : start + 4])[0]
    payload = bytearray(data[start + 8 : start + 8 + length])
    payload[2:40] = bytes(range(38))
    data[start + 8 : start + 8 + length] = payload
    data[start + 8 + length : start + 12 + length] = struct.pack(
        ">I", zlib.crc32(b"IDAT" + bytes(payload)) & 0xFFFFFFFF
    )
    return bytes(data)


def _png_without_iend() -> bytes:
    return _encode(_noise(), "PNG")[:-12]


def _random_bytes() -> bytes:
    return b"\x00" + np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes()


def _jpeg_magic_then_garbage() -> bytes:
    return b"\xff\xd8\xff\xe0" + b"\x13" * 600


SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
    b'<rect width="100" height="100" fill="red"/></svg>'
)
HTML = b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>"


@pytest.mark.parametrize(
    ("make", "code"),
    [
        pytest.param(lambda: b"", "image.empty", id="empty"),
        pytest.param(_random_bytes, "image.unsupported_format", id="random-bytes"),
        pytest.param(lambda: b"name,id\nZhang San,1\n", "image.unsupported_format", id="text"),
        pytest.param(lambda: SVG, "image.unsupported_format", id="svg"),
        pytest.param(lambda: HTML, "image.unsupported_format", id="html"),
        pytest.param(
            lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "image.unsupported_format", id="pdf"
        ),
        pytest.param(lambda: _encode(_rgb(), "GIF"), "image.unsupported_format", id="gif"),
        pytest.param(lambda: _encode(_rgb(), "BMP"), "image.unsupported_format", id="bmp"),
        pytest.param(lambda: _encode(_rgb(), "TIFF"), "image.unsupported_format", id="tiff"),
        pytest.param(lambda: b"\xff\xd8", "image.unsupported_format", id="two-bytes-of-jpeg"),
        pytest.param(
            lambda: b"RIFF\x00\x00\x00\x00WAVE", "image.unsupported_format", id="riff-wav"
        ),
        pytest.param(_jpeg_magic_then_garbage, "image.corrupt", id="jpeg-magic-garbage"),
        pytest.param(
            lambda: _encode(_noise(), "JPEG")[:1500], "image.truncated", id="jpeg-truncated-early"
        ),
        pytest.param(
            lambda: _encode(_noise(), "JPEG")[:-2], "image.truncated", id="jpeg-without-eoi"
        ),
        pytest.param(
            lambda: _encode(_noise(), "PNG")[:5000], "image.truncated", id="png-truncated"
        ),
        pytest.param(_png_without_iend, "image.truncated", id="png-without-iend"),
        pytest.param(_png_bad_ihdr_crc, "image.corrupt", id="png-bad-ihdr-crc"),
        pytest.param(_png_bad_idat_crc, "image.corrupt", id="png-bad-idat-crc"),
        pytest.param(_png_bad_idat_data, "image.corrupt", id="png-bad-idat-data"),
        pytest.param(
            lambda: _encode(_noise(), "WEBP")[:-100], "image.truncated", id="webp-truncated"
        ),
        pytest.param(
            lambda: _png_header_only(30000, 30000), "image.too_many_pixels", id="png-bomb-900mp"
        ),
        pytest.param(
            lambda: _png_header_only(10000, 10000), "image.too_many_pixels", id="png-bomb-100mp"
        ),
        pytest.param(
            lambda: _png_header_only(8000, 8000), "image.too_many_pixels", id="png-bomb-64mp"
        ),
        pytest.param(
            lambda: _webp_header_only(16000, 16000), "image.too_many_pixels", id="webp-bomb"
        ),
        pytest.param(lambda: _encode(_rgb(10, 10), "PNG"), "image.too_small", id="png-10x10"),
        pytest.param(lambda: _encode(_rgb(400, 31), "JPEG"), "image.too_small", id="jpeg-400x31"),
        pytest.param(lambda: _encode(_rgb(1, 1), "WEBP"), "image.too_small", id="webp-1x1"),
    ],
)
def test_decode_image_refuses(make: Callable[[], bytes], code: str) -> None:
    data = make()

    with pytest.raises(ImageDecodeError) as info:
        decode_image(data)

    assert info.value.code == code
    assert isinstance(info.value, VisionError)


def test_decode_image_refuses_too_many_bytes_before_sniffing() -> None:
    data = _encode(_noise(), "PNG")

    with pytest.raises(ImageDecodeError) as info:
        decode_image(data, max_bytes=len(data) - 1)

    assert info.value.code == "image.too_large"


def test_decode_image_pixel_limit_is_a_parameter() -> None:
    data = _encode(_rgb(100, 100), "PNG")

    assert decode_image(data, max_pixels=10_000).width == 100
    with pytest.raises(ImageDecodeError, match=r"image\.too_many_pixels"):
        decode_image(data, max_pixels=9_999)


def _rgba_png() -> bytes:
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[:, :20] = (255, 0, 0, 0)  # fully transparent red: must become white
    rgba[:, 20:40] = (0, 0, 0, 128)  # half-transparent black: mid grey
    rgba[:, 40:] = (0, 0, 255, 255)  # opaque blue
    return _encode(Image.fromarray(rgba, "RGBA"), "PNG")


def _palette_png_with_transparency() -> bytes:
    im = Image.new("P", (40, 40), 0)
    im.putpalette([255, 0, 0, 0, 255, 0] + [0] * (254 * 3))
    im.paste(1, (20, 0, 40, 40))
    return _encode(im, "PNG", transparency=0)


def _exif_jpeg(orientation: int) -> bytes:
    """80x40 stored pixels, grey, with a red 12x12 block at the stored top-left."""
    im = Image.new("RGB", (80, 40), (128, 128, 128))
    im.paste((255, 0, 0), (0, 0, 12, 12))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(im, "JPEG", quality=95, exif=exif.tobytes())


@pytest.mark.parametrize(
    ("make", "fmt", "shape", "probes"),
    [
        pytest.param(
            lambda: _encode(_rgb(64, 48, (255, 0, 0)), "PNG"),
            "png",
            (48, 64, 3),
            {(10, 10): RED_BGR},
            id="rgb-png",
        ),
        pytest.param(
            _rgba_png,
            "png",
            (40, 60, 3),
            {(5, 5): (255, 255, 255), (5, 30): (127, 127, 127), (5, 50): (255, 0, 0)},
            id="rgba-png-alpha-on-white",
        ),
        pytest.param(
            _palette_png_with_transparency,
            "png",
            (40, 40, 3),
            {(5, 5): (255, 255, 255), (5, 30): (0, 255, 0)},
            id="palette-png-transparency",
        ),
        pytest.param(
            lambda: _encode(Image.new("L", (50, 40), 77), "PNG"),
            "png",
            (40, 50, 3),
            {(3, 3): (77, 77, 77)},
            id="grayscale-png",
        ),
        pytest.param(
            lambda: _encode(Image.new("1", (50, 40), 1), "PNG"),
            "png",
            (40, 50, 3),
            {(3, 3): (255, 255, 255)},
            id="bilevel-png",
        ),
        pytest.param(
            lambda: _encode(Image.fromarray(np.full((40, 50), 51400, np.uint16)), "PNG"),
            "png",
            (40, 50, 3),
            {(3, 3): (200, 200, 200)},
            id="16bit-grayscale-png",
        ),
        pytest.param(
            lambda: _encode(Image.new("CMYK", (50, 40), (255, 0, 0, 0)), "JPEG", quality=95),
            "jpeg",
            (40, 50, 3),
            {(20, 20): (255, 255, 0)},
            id="cmyk-jpeg-cyan",
        ),
        pytest.param(
            lambda: _encode(Image.new("L", (50, 40), 30), "JPEG"),
            "jpeg",
            (40, 50, 3),
            {(20, 20): (30, 30, 30)},
            id="grayscale-jpeg",
        ),
        pytest.param(
            lambda: _encode(_rgb(64, 48, (255, 0, 0)), "WEBP", lossless=True),
            "webp",
            (48, 64, 3),
            {(10, 10): RED_BGR},
            id="webp-lossless",
        ),
        pytest.param(
            lambda: _encode(_rgb(64, 48, (255, 0, 0)), "WEBP", quality=90),
            "webp",
            (48, 64, 3),
            {(10, 10): RED_BGR},
            id="webp-lossy",
        ),
        pytest.param(
            lambda: _encode(Image.new("RGBA", (64, 48), (0, 0, 0, 0)), "WEBP", lossless=True),
            "webp",
            (48, 64, 3),
            {(10, 10): (255, 255, 255)},
            id="webp-alpha-on-white",
        ),
        pytest.param(
            lambda: _encode(_rgb(32, 32), "PNG"), "png", (32, 32, 3), {}, id="min-side-exactly"
        ),
    ],
)
def test_decode_image_normalises_to_bgr_uint8(
    make: Callable[[], bytes],
    fmt: str,
    shape: tuple[int, int, int],
    probes: dict[tuple[int, int], tuple[int, int, int]],
) -> None:
    decoded = decode_image(make())

    assert decoded.format == fmt
    assert decoded.pixels.shape == shape
    assert decoded.pixels.dtype == np.uint8
    assert (decoded.height, decoded.width) == shape[:2]
    assert decoded.orientation_applied == 1
    for (row, col), bgr in probes.items():
        assert _close(decoded.pixels[row, col], bgr), (row, col, decoded.pixels[row, col])


def _close(pixel: npt.NDArray[np.uint8], bgr: tuple[int, int, int], tol: int = 6) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - np.array(bgr)) <= tol))


@pytest.mark.parametrize(
    ("orientation", "size_wh", "marker_rc"),
    [
        # The stored top-left red block must land in the displayed corner shown.
        pytest.param(1, (80, 40), (5, 5), id="1-none"),
        pytest.param(3, (80, 40), (34, 74), id="3-rotate-180"),
        pytest.param(6, (40, 80), (5, 34), id="6-rotate-90-cw"),
        pytest.param(8, (40, 80), (74, 5), id="8-rotate-90-ccw"),
        pytest.param(2, (80, 40), (5, 74), id="2-mirror"),
        pytest.param(0, (80, 40), (5, 5), id="0-invalid-ignored"),
    ],
)
def test_decode_image_applies_exif_orientation(
    orientation: int, size_wh: tuple[int, int], marker_rc: tuple[int, int]
) -> None:
    decoded = decode_image(_exif_jpeg(orientation))

    assert (decoded.width, decoded.height) == size_wh
    assert decoded.orientation_applied == (orientation if 1 <= orientation <= 8 else 1)
    assert _close(decoded.pixels[marker_rc], RED_BGR, tol=40)
    # ...and only there: the opposite corner stays grey.
    opposite = (decoded.height - 1 - marker_rc[0], decoded.width - 1 - marker_rc[1])
    assert _close(decoded.pixels[opposite], (128, 128, 128), tol=20)


def test_decoded_pixels_are_read_only_and_contiguous() -> None:
    decoded = decode_image(_encode(_noise(), "PNG"))

    assert decoded.pixels.flags.c_contiguous
    with pytest.raises(ValueError, match="read-only"):
        decoded.pixels[0, 0, 0] = 1


def test_decoded_image_is_frozen() -> None:
    decoded = decode_image(_encode(_noise(), "PNG"))

    with pytest.raises(AttributeError):
        decoded.width = 1  # type: ignore[misc]


def test_noise_png_round_trips_exactly() -> None:
    im = _noise()

    decoded = decode_image(_encode(im, "PNG"))

    np.testing.assert_array_equal(decoded.pixels, np.asarray(im)[:, :, ::-1])


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        pytest.param(b"", None, id="empty"),
        pytest.param(b"\xff\xd8\xff", "jpeg", id="jpeg"),
        pytest.param(b"\x89PNG\r\n\x1a\n", "png", id="png"),
        pytest.param(b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp", id="webp"),
        pytest.param(b"RIFF\x00\x00\x00\x00AVI ", None, id="riff-avi"),
        pytest.param(b"GIF89a", None, id="gif"),
    ],
)
def test_sniff_format(data: bytes, fmt: str | None) -> None:
    assert sniff_format(data) == fmt


def test_load_image_ignores_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "scan.gif"
    path.write_bytes(_encode(_rgb(64, 48), "PNG"))

    decoded = load_image(path)

    assert isinstance(decoded, DecodedImage)
    assert decoded.format == "png"


def test_load_image_refuses_large_files_without_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    path.write_bytes(b"\xff\xd8\xff" + b"\x00" * 5000)

    with pytest.raises(ImageDecodeError) as info:
        load_image(path, max_bytes=4096)

    assert info.value.code == "image.too_large"


def test_vision_error_keeps_code_and_message() -> None:
    err = ImageDecodeError("image.corrupt", "bad")

    assert (err.code, err.message) == ("image.corrupt", "bad")
    assert str(err) == "image.corrupt: bad"
