"""check_image: the API's structural checks of an upload, and the HTTP status of each error."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from services.api.uploads import MIN_SIDE, CheckedImage, check_image
from services.errors import PayloadTooLarge, ServiceError, Unprocessable, UnsupportedMedia

MAX_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 40_000_000


def encode(fmt: str, size: tuple[int, int] = (320, 240), **params: object) -> bytes:
    im = Image.new("RGB", size)
    # Some structure, so that the encoders produce more than a few bytes.
    for x in range(0, size[0], 8):
        for y in range(0, size[1], 8):
            im.putpixel((x, y), ((x * 7) % 256, (y * 3) % 256, (x + y) % 256))
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A structurally complete PNG (signature, IHDR, IDAT, IEND) whose header claims
    ``width`` x ``height`` pixels with a body of a few bytes: a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def check(data: bytes, **limits: int) -> CheckedImage:
    return check_image(
        "id_front",
        data,
        max_bytes=limits.get("max_bytes", MAX_BYTES),
        max_pixels=limits.get("max_pixels", MAX_PIXELS),
    )


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return encode("JPEG", quality=90)


@pytest.mark.parametrize(
    ("fmt", "content_type", "params"),
    [
        ("JPEG", "image/jpeg", {"quality": 85}),
        ("JPEG", "image/jpeg", {"quality": 85, "progressive": True}),
        ("PNG", "image/png", {}),
        ("WEBP", "image/webp", {"quality": 80}),
        ("WEBP", "image/webp", {"lossless": True}),
    ],
    ids=["jpeg", "jpeg_progressive", "png", "webp", "webp_lossless"],
)
def test_valid_images_pass(fmt: str, content_type: str, params: dict[str, object]) -> None:
    data = encode(fmt, (400, 300), **params)
    checked = check(data)
    assert checked == CheckedImage(data, content_type, 400, 300)


def test_minimum_side_passes() -> None:
    checked = check(encode("PNG", (MIN_SIDE, MIN_SIDE)))
    assert (checked.width, checked.height) == (MIN_SIDE, MIN_SIDE)


def test_jpeg_with_short_padding_after_eoi_passes(jpeg: bytes) -> None:
    assert check(jpeg + b"\x00" * 32).content_type == "image/jpeg"


def test_jpeg_with_camera_trailer_passes(jpeg: bytes) -> None:
    assert check(jpeg + b"SEFH" + b"\x00" * 4096).content_type == "image/jpeg"


def _cut(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _corrupt_header(data: bytes) -> bytes:
    # Valid start (SOI + a marker byte) and end (EOI), garbage in between.
    return data[:3] + bytes((i * 37 + 11) % 256 for i in range(600)) + data[603:]


# id: (data, code, status)
ERRORS: dict[str, tuple[bytes, str, int]] = {
    "empty": (b"", "upload.empty", 422),
    "text": (b"name,id_number\nZhang San,110105199001011234\n" * 20, "upload.not_an_image", 415),
    "html": (b"<!doctype html><html><body>hi</body></html>", "upload.not_an_image", 415),
    "gif": (encode("GIF", (300, 300)), "upload.not_an_image", 415),
    "bmp": (encode("BMP", (300, 300)), "upload.not_an_image", 415),
    "tiff": (encode("TIFF", (300, 300)), "upload.not_an_image", 415),
    "truncated_jpeg": (_cut(encode("JPEG", (400, 300))), "upload.truncated", 422),
    "truncated_png": (_cut(encode("PNG", (400, 300))), "upload.truncated", 422),
    "png_without_iend": (encode("PNG", (400, 300))[:-12], "upload.truncated", 422),
    "truncated_webp": (_cut(encode("WEBP", (400, 300))), "upload.truncated", 422),
    "jpeg_signature_only": (b"\xff\xd8\xff", "upload.truncated", 422),
    "corrupt_jpeg_header": (_corrupt_header(encode("JPEG", (400, 300))), "upload.corrupt", 422),
    "corrupt_png_header": (
        encode("PNG", (400, 300))[:12] + b"XXXX" + encode("PNG", (400, 300))[16:],
        "upload.corrupt", 422,
    ),
    "too_many_pixels_bomb": (png_claiming(50_000, 50_000), "upload.too_many_pixels", 413),
    # Over PIL's warning threshold (89 M) but under its error threshold (179 M).
    "too_many_pixels_warning": (png_claiming(10_000, 10_000), "upload.too_many_pixels", 413),
    # Under PIL's thresholds, over ours (40 M).
    "too_many_pixels_limit": (png_claiming(8_000, 6_000), "upload.too_many_pixels", 413),
    "too_small": (encode("JPEG", (100, 100)), "upload.too_small", 422),
    "too_narrow": (encode("PNG", (1000, 150)), "upload.too_small", 422),
}  # fmt: skip


@pytest.mark.parametrize(("data", "code", "status"), list(ERRORS.values()), ids=list(ERRORS))
def test_refused(data: bytes, code: str, status: int) -> None:
    with pytest.raises(ServiceError) as info:
        check(data)
    assert (info.value.code, info.value.status) == (code, status)
    assert str(info.value.detail).startswith("id_front: ")


def test_crafted_bomb_is_complete_and_tiny() -> None:
    bomb = png_claiming(50_000, 50_000)
    assert len(bomb) < 200
    assert bomb[-12:-8] == b"\x00\x00\x00\x00"
    assert bomb[-8:-4] == b"IEND"


def test_over_max_bytes(jpeg: bytes) -> None:
    with pytest.raises(PayloadTooLarge) as info:
        check(jpeg, max_bytes=len(jpeg) - 1)
    assert (info.value.code, info.value.status) == ("upload.too_large", 413)
    assert check(jpeg, max_bytes=len(jpeg)).data == jpeg  # the limit itself is allowed


def test_max_pixels_is_a_parameter(jpeg: bytes) -> None:
    assert check(jpeg, max_pixels=320 * 240).width == 320
    with pytest.raises(PayloadTooLarge):
        check(jpeg, max_pixels=320 * 240 - 1)


@pytest.mark.parametrize(
    ("error_class", "status"),
    [(Unprocessable, 422), (UnsupportedMedia, 415), (PayloadTooLarge, 413)],
)
def test_error_classes_status(error_class: type[ServiceError], status: int) -> None:
    assert error_class.status == status
    assert error_class("x", code="upload.x").status == status


def test_fixture_order_images_pass() -> None:
    from tests.conftest import FIXTURES

    for path in sorted((FIXTURES / "orders").glob("good_*.jpg")):
        checked = check(path.read_bytes())
        assert checked.content_type == "image/jpeg"
        assert min(checked.width, checked.height) >= MIN_SIDE
