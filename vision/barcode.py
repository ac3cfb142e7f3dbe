"""Read QR codes and barcodes from an image, with zxing-cpp (default) or pyzbar.

The buyer's electronic ID credential and the storefront's anti-counterfeit agent badge
are QR codes photographed by phones: small, slightly blurred, in perspective. Measured
on such frames (spike measurements, section 5), zxing-cpp decoded 50/50 codes in
about 2 ms, pyzbar 37/50 in about 29 ms, and pyzbar needs the ``libzbar0`` system
library; so zxing-cpp is the default and pyzbar the alternative the owner asked for.

Both decoders run the same cascade, stopping at the first pass that finds anything:

1. the grayscale image as is;
2. an unsharp mask (recovers codes softened by blur or JPEG);
3. a 2x cubic upscale plus unsharp mask (codes under ~3 px per module), only for
   images up to :data:`UPSCALE_MAX_PIXELS`.

Results are in the input image's pixel coordinates, whatever pass found them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

import cv2
import numpy as np
import numpy.typing as npt

from vision.errors import VisionError

Decoder = Literal["zxing", "pyzbar"]
Polygon = tuple[tuple[float, float], ...]

# The upscale pass quadruples the pixel count; beyond this the frame is a full-size
# photo whose codes are large enough already, and 4x the memory is not worth it.
UPSCALE_MAX_PIXELS: Final = 4_000_000

QR_ONLY: Final = ("qrcode",)

# pyzbar symbol names that differ from zxing-cpp's, lower-cased.
_PYZBAR_KIND_ALIASES: Final = {"i25": "itf", "databar_exp": "databarexp"}


@dataclass(frozen=True, slots=True)
class DecodedCode:
    """One decoded symbol.

    :ivar kind: lower-case symbology, zxing-cpp's names: ``"qrcode"``, ``"code128"``,
        ``"datamatrix"``, ``"ean13"``, ``"itf"``, ...
    :ivar payload: the decoded bytes. zxing-cpp returns them raw; zbar (pyzbar) re-encodes
        byte-mode data it guesses is not UTF-8 (it reads it as Latin-1 and returns
        UTF-8), so binary payloads such as signed tokens only survive with zxing-cpp.
    :ivar text: ``payload`` decoded as UTF-8, or ``None`` when it is not valid UTF-8.
    :ivar polygon: outline as ``(x, y)`` points in the input image's pixel coordinates
        (origin top-left, x to the right). zxing: the four symbol corners, in the
        symbol's own order (its top-left, top-right, bottom-right, bottom-left; an
        upside-down code starts at the image's bottom-right). pyzbar: the convex hull
        of zbar's location points (four corners for QR codes), clockwise on screen
        from the leftmost point (so upright codes match zxing's order).
    :ivar decoder: which library decoded it.
    """

    kind: str
    payload: bytes
    text: str | None
    polygon: Polygon
    decoder: Decoder

    @property
    def center(self) -> tuple[float, float]:
        """Mean of the polygon points, ``(x, y)``."""
        xs, ys = zip(*self.polygon, strict=True)
        return (sum(xs) / len(xs), sum(ys) / len(ys))


def read_codes(
    image: npt.NDArray[np.uint8],
    *,
    decoder: Decoder = "zxing",
    kinds: Collection[str] | None = QR_ONLY,
) -> tuple[DecodedCode, ...]:
    """Decode every QR code / barcode in ``image``.

    :param image: ``uint8``, shape ``(H, W)`` (grayscale) or ``(H, W, 3)`` (BGR, as
        OpenCV and :func:`vision.io.decode_image` produce). Never modified; read-only
        and non-contiguous arrays are fine.
    :param decoder: ``"zxing"`` (default, faster and more robust) or ``"pyzbar"``.
    :param kinds: symbologies to look for, one name or a collection. The default is QR
        codes only, the only kind this product reads; ``None`` reads every kind the
        decoder knows, at about 10x the cost with zxing-cpp (1600x1200 frame without a
        code, all three passes: ~40 ms QR-only, ~360 ms all kinds, 2-vCPU machine).
    :return: the codes found by the first cascade pass that found any, duplicates
        removed, sorted top-to-bottom then left-to-right; ``()`` when none.
    :raises TypeError: when ``image`` is not a numpy array.
    :raises ValueError: for another dtype or shape, an empty image, an unknown decoder,
        or an unknown or empty set of kinds.
    :raises VisionError: ``barcode.decoder_unavailable`` when the decoder cannot be
        imported (pyzbar without ``libzbar0``).
    """
    if decoder not in ("zxing", "pyzbar"):
        raise ValueError(f"unknown decoder {decoder!r}; use 'zxing' or 'pyzbar'")
    if isinstance(kinds, str):
        kinds = (kinds,)
    if kinds is not None and not kinds:
        raise ValueError("kinds is empty; pass None to read every kind")
    gray = _to_gray(image)
    read_pass = _zxing_reader(kinds) if decoder == "zxing" else _pyzbar_reader(kinds)
    for scale, prepared in _cascade(gray):
        found = [_rescale(code, scale) for code in read_pass(prepared, scale)]
        if found:
            unique = _dedupe(found)
            return tuple(sorted(unique, key=lambda c: (c.center[1], c.center[0])))
    return ()


# --- input ---------------------------------------------------------------------------


def _to_gray(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"image must be (H, W) or (H, W, 3), got shape {image.shape}")
    if image.size == 0:
        raise ValueError(f"image is empty, shape {image.shape}")
    if image.ndim == 3:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
    # Copy: both decoders want C-contiguous memory and must never see the caller's.
    return np.array(image, dtype=np.uint8, order="C", copy=True)


def _unsharp(gray: npt.NDArray[np.uint8], sigma: float) -> npt.NDArray[np.uint8]:
    blurred = cv2.GaussianBlur(gray, (0, 0), sigma)
    return np.asarray(cv2.addWeighted(gray, 2.0, blurred, -1.0, 0), dtype=np.uint8)


def _cascade(gray: npt.NDArray[np.uint8]) -> Iterator[tuple[float, npt.NDArray[np.uint8]]]:
    """Yield ``(scale, image)`` passes lazily: later ones only cost if earlier ones fail."""
    yield 1.0, gray
    yield 1.0, _unsharp(gray, 1.0)
    if gray.size <= UPSCALE_MAX_PIXELS:
        upscaled = np.asarray(
            cv2.resize(gray, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC), dtype=np.uint8
        )
        yield 2.0, _unsharp(upscaled, 2.0)


# --- decoders ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Raw:
    kind: str
    payload: bytes
    polygon: Polygon
    decoder: Decoder


def _unavailable(name: str, exc: BaseException) -> VisionError:
    hint = " (install the libzbar0 system package)" if name == "pyzbar" else ""
    return VisionError("barcode.decoder_unavailable", f"{name} cannot be loaded{hint}: {exc}")


_Reader = Callable[[npt.NDArray[np.uint8], float], list[_Raw]]


def _zxing_reader(kinds: Collection[str] | None) -> _Reader:
    try:
        import zxingcpp
    except ImportError as exc:
        raise _unavailable("zxing", exc) from exc

    by_kind = {
        f.name.lower(): f for f in zxingcpp.BarcodeFormat if f != zxingcpp.BarcodeFormat.NONE
    }
    unknown = sorted(set(kinds or ()) - by_kind.keys())
    if unknown:
        raise ValueError(f"unknown barcode kind(s) {unknown} for zxing")
    formats = zxingcpp.BarcodeFormats([by_kind[kind] for kind in kinds or ()])

    def read(gray: npt.NDArray[np.uint8], scale: float) -> list[_Raw]:
        # An empty BarcodeFormats means "all formats". Scanning downscaled copies of
        # an upscaled pass repeats the first passes at 2-4x the cost.
        found = zxingcpp.read_barcodes(gray, formats=formats, try_downscale=scale <= 1.0)
        return [
            _Raw(
                kind=code.format.name.lower(),
                payload=code.bytes,
                polygon=tuple(
                    (float(p.x), float(p.y))
                    for p in (
                        code.position.top_left,
                        code.position.top_right,
                        code.position.bottom_right,
                        code.position.bottom_left,
                    )
                ),
                decoder="zxing",
            )
            for code in found
            if code.valid
        ]

    return read


def _pyzbar_reader(kinds: Collection[str] | None) -> _Reader:
    try:
        from pyzbar import pyzbar
    except (ImportError, OSError) as exc:  # ImportError when libzbar0 is missing
        raise _unavailable("pyzbar", exc) from exc

    by_kind = {_pyzbar_kind(symbol.name): symbol for symbol in pyzbar.ZBarSymbol}
    symbols: list[Any] | None = None
    if kinds:
        unknown = sorted(set(kinds) - by_kind.keys())
        if unknown:
            raise ValueError(f"unknown barcode kind(s) {unknown} for pyzbar")
        symbols = [by_kind[kind] for kind in kinds]

    def read(gray: npt.NDArray[np.uint8], scale: float) -> list[_Raw]:
        del scale  # zbar has no downscale option
        return [
            _Raw(
                kind=_pyzbar_kind(str(code.type)),
                payload=bytes(code.data),
                polygon=_clockwise(tuple((float(p.x), float(p.y)) for p in code.polygon)),
                decoder="pyzbar",
            )
            for code in pyzbar.decode(gray, symbols=symbols)
        ]

    return read


def _clockwise(hull: Polygon) -> Polygon:
    """pyzbar's hull runs counter-clockwise on screen from its leftmost point; reverse
    it so that an upright QR code reads top-left, top-right, bottom-right, bottom-left,
    as zxing-cpp reports it."""
    return hull[:1] + hull[:0:-1]


def _pyzbar_kind(name: str) -> str:
    kind = name.lower()
    return _PYZBAR_KIND_ALIASES.get(kind, kind)


# --- results -------------------------------------------------------------------------


def _rescale(raw: _Raw, scale: float) -> DecodedCode:
    """Map a pass's coordinates back to the input (pixel centres stay centres)."""
    polygon = raw.polygon
    if scale != 1.0:
        polygon = tuple(((x + 0.5) / scale - 0.5, (y + 0.5) / scale - 0.5) for x, y in polygon)
    try:
        text: str | None = raw.payload.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return DecodedCode(
        kind=raw.kind, payload=raw.payload, text=text, polygon=polygon, decoder=raw.decoder
    )


def _dedupe(codes: list[DecodedCode]) -> list[DecodedCode]:
    """Drop repeats of the same symbol: same kind and payload, overlapping positions.

    Two genuinely separate codes with the same payload (two copies of one badge) are
    kept: their centres are further apart than half the symbol's size.
    """
    kept: list[DecodedCode] = []
    for code in codes:
        if not any(_same_symbol(code, other) for other in kept):
            kept.append(code)
    return kept


def _same_symbol(a: DecodedCode, b: DecodedCode) -> bool:
    if (a.kind, a.payload) != (b.kind, b.payload):
        return False
    xs = [x for x, _ in a.polygon]
    ys = [y for _, y in a.polygon]
    size = max(max(xs) - min(xs), max(ys) - min(ys), 1.0)
    (ax, ay), (bx, by) = a.center, b.center
    return float(np.hypot(ax - bx, ay - by)) <= size / 2
