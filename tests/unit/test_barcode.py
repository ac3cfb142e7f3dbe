"""Tests for vision.barcode: QR codes generated with ``qrcode``, degraded like phone frames."""

from __future__ import annotations

import functools
import sys
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import qrcode
import zxingcpp

from vision.barcode import (
    QR_ONLY,
    UPSCALE_MAX_PIXELS,
    DecodedCode,
    Decoder,
    _cascade,
    _dedupe,
    _pyzbar_reader,
    _to_gray,
    _zxing_reader,
    read_codes,
)
from vision.errors import VisionError

DECODERS: tuple[Decoder, ...] = ("zxing", "pyzbar")
Image = npt.NDArray[np.uint8]
Quad = npt.NDArray[np.float64]

# An agent-badge-like token: URL, agent id, carrier, random-looking signature; 118 bytes.
BADGE = (
    b"https://badge.example.cn/v1/agent?id=SH-0042&carrier=CMCC&t="
    b"Zq7Kx2mP9vR4tY8wB3nL6cF1hJ5dG0sA-_eU2iO7pQ4kM9zX3vN8bT1yW6r"
)
CREDENTIAL = b"eid:v2:9f8e7d6c5b4a39281706f5e4d3c2b1a0:sig=MEUCIQDx1y2z3w4v5u6t7s8r9q0p"


def qr_modules(payload: bytes, border: int = 4) -> npt.NDArray[np.bool_]:
    """Module matrix (True = dark), quiet zone included, EC level M."""
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=border)
    qr.add_data(payload)
    qr.make(fit=True)
    return np.array(qr.get_matrix(), dtype=bool)


def cluttered_background(width: int, height: int, seed: int) -> Image:
    """Rectangles, lines, text and sensor noise: what surrounds a code on a desk."""
    rng = np.random.default_rng(seed)
    bg = np.empty((height, width, 3), np.uint8)
    bg[:] = rng.integers(150, 230, 3)
    for _ in range(60):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        shape = int(rng.integers(0, 3))
        if shape == 0:
            x1, y1 = x0 + int(rng.integers(5, 120)), y0 + int(rng.integers(5, 120))
            cv2.rectangle(bg, (x0, y0), (x1, y1), color, -1)
        elif shape == 1:
            end = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(bg, (x0, y0), end, color, int(rng.integers(1, 4)))
        else:
            scale = float(rng.uniform(0.4, 1.5))
            cv2.putText(bg, "SIM 4G 123", (x0, y0), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 2)
    noise = rng.normal(0, 6, bg.shape)
    return np.clip(bg + noise, 0, 255).astype(np.uint8)


def paste_code(
    background: Image, modules: npt.NDArray[np.bool_], quad: Quad, border: int = 4
) -> tuple[Image, Quad]:
    """Warp a code (quiet zone included) onto ``quad``; return the image and the true
    symbol corners (quiet zone excluded) as TL, TR, BR, BL ``(x, y)``."""
    ppm = 8  # render sharp, then let the warp resample like a camera would
    side = modules.shape[0] * ppm
    code = cv2.resize(
        np.where(modules, 0, 255).astype(np.uint8), (side, side), interpolation=cv2.INTER_NEAREST
    )
    src = np.array([[0, 0], [side, 0], [side, side], [0, side]], np.float32)
    homography = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    height, width = background.shape[:2]
    warped = cv2.warpPerspective(code, homography, (width, height), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((side, side), 255, np.uint8), homography, (width, height))
    alpha = (mask.astype(np.float32) / 255)[..., None]
    out = (background * (1 - alpha) + warped[..., None] * alpha).astype(np.uint8)
    b = border * ppm
    symbol = np.array([[b, b], [side - b, b], [side - b, side - b], [b, side - b]], np.float32)
    truth = cv2.perspectiveTransform(symbol.reshape(-1, 1, 2), homography).reshape(-1, 2)
    return out, np.asarray(truth, dtype=np.float64)


def jittered_quad(cx: float, cy: float, size: float, jitter: Quad) -> Quad:
    square = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * size / 2
    return np.asarray(square + jitter * size + np.array([cx, cy]), dtype=np.float64)


def phone_degrade(image: Image, sigma: float, quality: int = 70) -> Image:
    blurred = cv2.GaussianBlur(image, (0, 0), sigma)
    ok, encoded = cv2.imencode(".jpg", blurred, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return np.asarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR), dtype=np.uint8)


# Corner offsets as a fraction of the code size. zbar fails outright on some
# perspective shapes that zxing-cpp reads (e.g. [[.06,-.08],[-.05,.04],[.09,.07],
# [-.04,-.06]] at any size); this one both decoders read on every seed tried.
JITTER = np.array([[0.02, -0.04], [-0.07, -0.08], [0.05, 0.07], [0.02, 0.04]])


def badge_scene() -> tuple[Image, Quad]:
    """A 180 px badge QR on a cluttered 1600x1200 frame, in perspective, sigma 0.6, JPEG 70."""
    scene, truth = _badge_scene()
    return scene.copy(), truth.copy()  # tests may freeze or edit their copy


@functools.cache
def _badge_scene() -> tuple[Image, Quad]:
    scene, truth = paste_code(
        cluttered_background(1600, 1200, seed=7),
        qr_modules(BADGE),
        jittered_quad(620, 510, 180, JITTER),
    )
    return phone_degrade(scene, sigma=0.6), truth


def assert_polygon_near(code: DecodedCode, truth: Quad, tol: float) -> None:
    """Every true corner has a polygon point within ``tol`` px, and vice versa."""
    points = np.array(code.polygon, np.float64)
    assert points.shape == (4, 2)
    distances = np.linalg.norm(points[:, None, :] - truth[None, :, :], axis=2)
    assert distances.min(axis=0).max() <= tol, distances
    assert distances.min(axis=1).max() <= tol, distances


@pytest.mark.parametrize("decoder", DECODERS)
def test_reads_a_degraded_badge(decoder: Decoder) -> None:
    scene, truth = badge_scene()

    codes = read_codes(scene, decoder=decoder)

    assert len(codes) == 1
    code = codes[0]
    assert (code.kind, code.payload, code.text, code.decoder) == (
        "qrcode",
        BADGE,
        BADGE.decode(),
        decoder,
    )
    assert_polygon_near(code, truth, tol=3.0)


@pytest.mark.parametrize("decoder", DECODERS)
def test_polygon_starts_at_the_symbol_top_left_for_an_upright_code(decoder: Decoder) -> None:
    square = jittered_quad(320, 240, 200, np.zeros((4, 2)))
    scene, truth = paste_code(cluttered_background(640, 480, seed=2), qr_modules(BADGE), square)

    (code,) = read_codes(scene, decoder=decoder)

    np.testing.assert_allclose(np.array(code.polygon), truth, atol=2.0)


@pytest.mark.parametrize(
    ("decoder", "size", "sigma"),
    [
        # ~2.3-2.5 px/module and blurred: only the 2x pass decodes these.
        pytest.param("zxing", 120, 1.1, id="zxing"),
        pytest.param("pyzbar", 130, 1.0, id="pyzbar"),
    ],
)
def test_small_blurred_code_is_read_by_the_upscale_pass(
    decoder: Decoder, size: int, sigma: float
) -> None:
    scene, truth = paste_code(
        cluttered_background(640, 480, seed=1),
        qr_modules(BADGE),
        jittered_quad(320, 240, size, JITTER / 4),
    )
    scene = phone_degrade(scene, sigma=sigma)
    reader = _zxing_reader(QR_ONLY) if decoder == "zxing" else _pyzbar_reader(QR_ONLY)
    passes = [bool(reader(image, scale)) for scale, image in _cascade(_to_gray(scene))]
    assert passes == [False, False, True], "precondition: only the upscale pass decodes"

    (code,) = read_codes(scene, decoder=decoder)

    assert code.payload == BADGE
    assert_polygon_near(code, truth, tol=3.0)


@pytest.mark.parametrize("decoder", DECODERS)
def test_reads_two_codes_sorted_top_to_bottom(decoder: Decoder) -> None:
    background = cluttered_background(1200, 900, seed=3)
    scene, badge_truth = paste_code(
        background, qr_modules(BADGE), jittered_quad(850, 620, 190, JITTER)
    )
    scene, credential_truth = paste_code(
        scene, qr_modules(CREDENTIAL), jittered_quad(300, 250, 170, -JITTER)
    )
    scene = phone_degrade(scene, sigma=0.6)

    codes = read_codes(scene, decoder=decoder)

    assert [c.payload for c in codes] == [CREDENTIAL, BADGE]
    assert_polygon_near(codes[0], credential_truth, tol=3.0)
    assert_polygon_near(codes[1], badge_truth, tol=3.0)


@pytest.mark.parametrize("decoder", DECODERS)
def test_two_copies_of_one_code_are_two_results(decoder: Decoder) -> None:
    modules = qr_modules(BADGE)
    scene, _ = paste_code(
        np.full((500, 1000, 3), 255, np.uint8),
        modules,
        jittered_quad(250, 250, 200, np.zeros((4, 2))),
    )
    scene, _ = paste_code(scene, modules, jittered_quad(750, 250, 200, np.zeros((4, 2))))

    codes = read_codes(scene, decoder=decoder)

    assert [c.payload for c in codes] == [BADGE, BADGE]
    assert codes[0].center[0] < codes[1].center[0]


def _gray_noise(height: int, width: int) -> Image:
    return np.random.default_rng(0).integers(0, 256, (height, width), dtype=np.uint8)


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(np.zeros((1, 1), np.uint8), id="1x1-gray"),
        pytest.param(np.zeros((1, 1, 3), np.uint8), id="1x1-bgr"),
        pytest.param(np.full((480, 640, 3), 255, np.uint8), id="blank-white"),
        pytest.param(np.zeros((480, 640), np.uint8), id="blank-black"),
        pytest.param(_gray_noise(31, 31), id="tiny-noise"),
        pytest.param(_gray_noise(480, 640), id="noise"),
        pytest.param(cluttered_background(800, 600, seed=5), id="clutter-without-code"),
    ],
)
@pytest.mark.parametrize("decoder", DECODERS)
def test_images_without_codes_give_an_empty_tuple(image: Image, decoder: Decoder) -> None:
    assert read_codes(image, decoder=decoder) == ()


@pytest.mark.parametrize(
    ("image", "error"),
    [
        pytest.param(np.zeros((0, 0), np.uint8), ValueError, id="empty-0x0"),
        pytest.param(np.zeros((0, 10, 3), np.uint8), ValueError, id="empty-0x10x3"),
        pytest.param(np.zeros((10, 10), np.float32), ValueError, id="float32"),
        pytest.param(np.zeros((10, 10, 3), np.float64), ValueError, id="float64"),
        pytest.param(np.zeros((10, 10), np.uint16), ValueError, id="uint16"),
        pytest.param(np.zeros((10, 10), np.int64), ValueError, id="int64"),
        pytest.param(np.zeros((10, 10), bool), ValueError, id="bool"),
        pytest.param(np.zeros((10, 10, 4), np.uint8), ValueError, id="bgra"),
        pytest.param(np.zeros((10, 10, 1), np.uint8), ValueError, id="hxwx1"),
        pytest.param(np.zeros(100, np.uint8), ValueError, id="1-d"),
        pytest.param(np.zeros((2, 10, 10, 3), np.uint8), ValueError, id="batch"),
        pytest.param([[0, 255], [255, 0]], TypeError, id="list"),
        pytest.param(None, TypeError, id="none"),
    ],
)
def test_rejects_malformed_input(image: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        read_codes(image)


@pytest.mark.parametrize("decoder", DECODERS)
def test_gray_and_bgr_inputs_agree(decoder: Decoder) -> None:
    scene, _ = badge_scene()
    gray = np.asarray(cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY), dtype=np.uint8)

    assert read_codes(gray, decoder=decoder) == read_codes(scene, decoder=decoder)


@pytest.mark.parametrize("decoder", DECODERS)
def test_input_is_never_modified_and_may_be_read_only(decoder: Decoder) -> None:
    scene, _ = badge_scene()
    before = scene.copy()
    scene.flags.writeable = False

    codes = read_codes(scene, decoder=decoder)

    assert len(codes) == 1
    np.testing.assert_array_equal(scene, before)


@pytest.mark.parametrize("decoder", DECODERS)
def test_non_contiguous_views_are_read_in_their_own_coordinates(decoder: Decoder) -> None:
    scene, truth = badge_scene()
    crop = scene[300:800, 400:900]  # a view, not C-contiguous
    fortran = np.asfortranarray(scene)

    (from_crop,) = read_codes(crop, decoder=decoder)
    (from_fortran,) = read_codes(fortran, decoder=decoder)

    assert_polygon_near(from_crop, truth - np.array([400, 300]), tol=3.0)
    assert_polygon_near(from_fortran, truth, tol=3.0)


def _code128(text: str) -> Image:
    code = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.Code128)
    strip = np.asarray(zxingcpp.write_barcode_to_image(code, scale=3), dtype=np.uint8)
    canvas = np.full((strip.shape[0] + 80, strip.shape[1] + 80), 255, np.uint8)
    canvas[40:-40, 40:-40] = strip
    return canvas


@pytest.mark.parametrize("decoder", DECODERS)
def test_reads_code128_when_asked(decoder: Decoder) -> None:
    image = _code128("SIM-8986-0012-3456")

    (code,) = read_codes(image, decoder=decoder, kinds={"code128"})
    everything = read_codes(image, decoder=decoder, kinds=None)
    qr_only = read_codes(image, decoder=decoder)

    assert (code.kind, code.text) == ("code128", "SIM-8986-0012-3456")
    assert [c.kind for c in everything] == ["code128"]
    assert qr_only == ()


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize(
    ("kinds", "match"),
    [
        pytest.param(set(), "kinds is empty", id="empty"),
        pytest.param((), "kinds is empty", id="empty-tuple"),
        pytest.param({""}, "unknown barcode kind", id="blank-name"),
        pytest.param({"qr"}, "unknown barcode kind", id="qr"),
        pytest.param({"qrcode", "nope"}, "unknown barcode kind", id="one-unknown"),
        pytest.param("qr", "unknown barcode kind", id="bare-string"),
    ],
)
def test_unknown_kinds_are_rejected(decoder: Decoder, kinds: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        read_codes(np.zeros((10, 10), np.uint8), decoder=decoder, kinds=kinds)


def test_kinds_may_be_a_single_name() -> None:
    image = _code128("A-1")

    assert [c.kind for c in read_codes(image, kinds="code128")] == ["code128"]


def test_unknown_decoder_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown decoder"):
        read_codes(np.zeros((10, 10), np.uint8), decoder="opencv")  # type: ignore[arg-type]


def _sharp_code(payload: bytes) -> Image:
    modules = qr_modules(payload)
    return np.asarray(
        cv2.resize(
            np.where(modules, 0, 255).astype(np.uint8),
            None,
            fx=6,
            fy=6,
            interpolation=cv2.INTER_NEAREST,
        ),
        dtype=np.uint8,
    )


@pytest.mark.parametrize(
    ("decoder", "payload", "text"),
    [
        pytest.param("zxing", "身份证 SIM".encode(), "身份证 SIM", id="zxing-utf8"),
        pytest.param("pyzbar", "身份证 SIM".encode(), "身份证 SIM", id="pyzbar-utf8"),
        pytest.param("zxing", b"\xff\xfe\x00\x01sig\x80", None, id="zxing-binary-raw"),
    ],
)
def test_payload_bytes_and_text(decoder: Decoder, payload: bytes, text: str | None) -> None:
    (code,) = read_codes(_sharp_code(payload), decoder=decoder)

    assert (code.payload, code.text) == (payload, text)


def test_pyzbar_transcodes_binary_payloads() -> None:
    # Documented limitation: zbar reads non-UTF-8 byte mode as Latin-1.
    payload = b"\xff\xfe\x00\x01sig\x80"

    (code,) = read_codes(_sharp_code(payload), decoder="pyzbar")

    assert code.payload == payload.decode("latin-1").encode()


@pytest.mark.parametrize(("decoder", "module"), [("zxing", "zxingcpp"), ("pyzbar", "pyzbar")])
def test_missing_decoder_is_a_vision_error(
    decoder: Decoder, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail

    with pytest.raises(VisionError) as info:
        read_codes(np.zeros((10, 10), np.uint8), decoder=decoder)

    assert info.value.code == "barcode.decoder_unavailable"


def test_decoded_code_is_frozen() -> None:
    code = DecodedCode("qrcode", b"x", "x", ((0.0, 0.0),), "zxing")

    with pytest.raises(AttributeError):
        code.kind = "code128"  # type: ignore[misc]


def _code_at(x: float, y: float, payload: bytes = b"x", size: float = 100) -> DecodedCode:
    half = size / 2
    polygon = (
        (x - half, y - half),
        (x + half, y - half),
        (x + half, y + half),
        (x - half, y + half),
    )
    return DecodedCode("qrcode", payload, payload.decode(), polygon, "pyzbar")


@pytest.mark.parametrize(
    ("codes", "kept"),
    [
        pytest.param([], 0, id="empty"),
        pytest.param([_code_at(100, 100)], 1, id="one"),
        pytest.param([_code_at(100, 100), _code_at(103, 98)], 1, id="same-symbol-twice"),
        pytest.param([_code_at(100, 100), _code_at(300, 100)], 2, id="two-copies-apart"),
        pytest.param([_code_at(100, 100), _code_at(100, 100, b"y")], 2, id="different-payload"),
    ],
)
def test_dedupe(codes: list[DecodedCode], kept: int) -> None:
    assert len(_dedupe(codes)) == kept


def test_cascade_skips_the_upscale_pass_on_large_frames() -> None:
    side = int(UPSCALE_MAX_PIXELS**0.5) + 1
    large = np.zeros((side, side), np.uint8)
    small = np.zeros((480, 640), np.uint8)

    assert [scale for scale, _ in _cascade(large)] == [1.0, 1.0]
    assert [scale for scale, _ in _cascade(small)] == [1.0, 1.0, 2.0]
