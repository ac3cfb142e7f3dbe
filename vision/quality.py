"""Capture-quality and fraud signals for ID-card photos, as commercial ID-OCR services raise.

``assess_quality(photo, card)`` returns one :class:`QualitySignal` per code in ``CODES``.
Each keeps the raw ``measured`` value (the evidence), a 0-100 ``score`` mapped from it by
a linear ramp between a "clearly fine" and a "clearly bad" landmark (the ``*_RAMP``
constants), and ``fired`` (score >= ``FIRE_AT[code]``). Landmarks were tuned on the
synthetic captures of ``services.synth.capture``; tests/unit/test_quality.py holds the
checks and the module docstring there the measured separation.

Cheap by construction: the rectified card at half and quarter size, a few crops of the
photo at (up to 1.5x canonical) resolution: printed lines for blur, four 192 px patches
for a screen grid, one 512 px patch for the upscaling trace; never the whole photo. About
10-13 ms of CPU per call for a 1600x1200 or a 12 MP photo (the first call in a process
pays ~150 ms of one-off initialisation).

The synthetic kinds each signal answers to: blur (Gaussian or motion), glare (specular
spot), low_resolution (card shot at ~300 px and upscaled), cut_off, photocopy (grey copy
on paper), recapture (photo of a screen); occlusion was tuned on a drawn finger.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

import cv2
import numpy as np
import numpy.typing as npt

from vision import layout
from vision.card import RectifiedCard
from vision.layout import Region, Side

Image = npt.NDArray[np.uint8]
FloatImage = npt.NDArray[np.float32]
Homography = npt.NDArray[np.float64]

BLUR = "quality.blur"
GLARE = "quality.glare"
LOW_RESOLUTION = "quality.low_resolution"
INCOMPLETE_BORDER = "quality.incomplete_border"
OCCLUSION = "quality.occlusion"
PHOTOCOPY = "quality.photocopy"
RECAPTURE = "quality.recapture"
CODES = (BLUR, GLARE, LOW_RESOLUTION, INCOMPLETE_BORDER, OCCLUSION, PHOTOCOPY, RECAPTURE)

# A signal fires when its score reaches this. Every ramp below is placed so that its
# midpoint (score 50) is the decision boundary: the landmarks carry the tuning.
FIRE_AT: Mapping[str, int] = MappingProxyType(dict.fromkeys(CODES, 50))

# --- Ramps: (measured value scoring 0, measured value scoring 100) --------------------
# blur: edge spread of printed values as a Gaussian sigma, in photo pixels (for cards
# wider than 1500 px, in pixels of the card brought to 1500 px; for an upscaled photo, in
# its original pixels). Sharp photos measure 0.6-1.3, after a Gaussian blur of sigma 1.0
# ~1.4, sigma 1.5 ~1.75, motion blur of 5 px ~1.6: fires from 1.40.
BLUR_RAMP = (1.20, 1.60)
# glare: area share of the card under the largest washed-out specular blob; the
# synthetic highlights cover 0.4-5 %, nothing else measured above 0.3 %; fires at 0.35 %.
GLARE_RAMP = (0.0025, 0.0045)
# low_resolution: effective card width in px (detected width / upscaling factor);
# fires below 500 px.
LOW_RES_RAMP = (650.0, 350.0)
# incomplete_border: share of the card outline on or beyond the frame edge; a cut-off
# card runs one whole side along it (~0.2-0.35).
BORDER_RAMP = (0.0, 0.04)
# occlusion: largest share of a key value's ink span that shows no ink (and is not
# glare); fires from 8 %, about 1.5 of the 18 ID-number digits.
OCCLUSION_RAMP = (0.04, 0.12)
# photocopy: colourfulness of the card (Lab chroma percentile with the colour cast
# removed); real cards measure 6+ (fronts) and 50+ (backs), grey copies 0-5.
PHOTOCOPY_RAMP = (6.5, 4.5)
# recapture: prominence of a narrow spectral peak present in three of four patches;
# print measures < 9, a photographed screen 11-120 (one in 64 lower); fires at 10.5.
RECAPTURE_RAMP = (8.5, 12.5)

# --- Other tuning --------------------------------------------------------------------------
MAX_CROP_SCALE = 1.5  # blur crops of a huge card are sampled at most 1.5x canonical
PAPER_LEVEL = 200.0  # flat-fielded paper maps to this grey level
UPSCALE_PATCH = 512  # native px searched for the interpolation trace
UPSCALE_PEAK = 12.0  # trace prominence that counts as "upscaled" (print: < 10)
RECAPTURE_PATCH = 192  # native px per spectral patch
RECAPTURE_MIN_FREQ = 0.12  # cycles/px: print and guilloche live below, screen grids above
GLARE_MIN_LEVEL = 250.0  # a highlight is at least this bright (8-bit grey)...
GLARE_OVER_PAPER = 12.0  # ...and brighter than the card's median paper by this much
GLARE_MIN_BLOB = 0.002  # of the card: smaller bright specks are ignored
GLARE_MAX_INK = 0.02  # share of a blob that may still show ink
GLARE_INK_CONTRAST = 40  # quarter-size card: blurrier than half size, so a lower bar
GLARE_MAX_EDGE = 0.15  # share of a blob's outline that may run along the card edge
INK_RATIO = 4  # half-size card: ink is darker than the paper around it by 1/4 of it
INK_MIN = 20  # ...and by at least this much (shadowed paper is dark itself)
GAP_BRIDGE = 4  # half-size px: gaps between the characters of a value are narrower
MIN_COVERED_RUN = 7  # half-size px: an inkless run at least this wide counts as covered
WASHED_OVER_PAPER = 5.0  # inkless columns this much brighter than paper are glare...
WASHED_MIN_LEVEL = 215.0  # ...if near white too (a finger is brighter than a shadow)
TIGHT_CROP_TOLERANCE = 0.08  # |log(aspect / card aspect)| of a photo that is the card

HALF_W, HALF_H = layout.CANONICAL_WIDTH // 2, (layout.CANONICAL_HEIGHT - 1) // 2  # 500x315
_SQRT_2PI = math.sqrt(2 * math.pi)


@dataclass(frozen=True, slots=True)
class QualitySignal:
    """One quality or fraud signal: how strongly it is present, and the evidence."""

    code: str  # stable warning code, e.g. "quality.blur"
    score: int  # 0-100: how strongly the problem is present
    fired: bool  # score >= FIRE_AT[code]
    measured: float  # the raw measurement behind the score (units per *_RAMP above)


@dataclass(frozen=True, slots=True)
class QualityReport:
    """All signals of one capture, in ``CODES`` order."""

    signals: tuple[QualitySignal, ...]

    @property
    def warnings(self) -> tuple[str, ...]:
        """Codes of the fired signals."""
        return tuple(s.code for s in self.signals if s.fired)

    def get(self, code: str) -> QualitySignal:
        for signal in self.signals:
            if signal.code == code:
                return signal
        raise KeyError(code)

    def as_dict(self) -> dict[str, dict[str, float | int | bool]]:
        return {
            s.code: {"score": s.score, "fired": s.fired, "measured": s.measured}
            for s in self.signals
        }


def _signal(code: str, measured: float, ramp: tuple[float, float]) -> QualitySignal:
    lo, hi = ramp
    t = (measured - lo) / (hi - lo) if math.isfinite(measured) else 0.0
    score = round(100 * min(1.0, max(0.0, t)))
    value = round(float(measured), 5) if math.isfinite(measured) else 0.0
    return QualitySignal(code, score, score >= FIRE_AT[code], value)


# --- Geometry --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Geometry:
    """Where the card lies in the photo, also when the whole photo was taken as it."""

    quad: npt.NDArray[np.float64]  # TL, TR, BR, BL of the upright card, photo px
    width_px: float
    to_photo: Homography  # canonical card px -> photo px


def _geometry(photo: Image, card: RectifiedCard) -> _Geometry:
    h, w = photo.shape[:2]
    # Without an outline rectify_card took the image corners, long side first, turned by
    # its rotation; a degenerate detected quad is treated the same way.
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
    quad = np.roll(corners, -(card.rotation // 90) % 4, axis=0)
    if card.detection is not None:
        q = np.asarray(card.detection.quad, np.float64).reshape(-1, 2)
        if q.shape == (4, 2) and np.isfinite(q).all():
            if abs(cv2.contourArea(q.astype(np.float32))) > 16.0:
                quad = q
    cw, ch = layout.CANONICAL_WIDTH, layout.CANONICAL_HEIGHT
    src = np.array([[0, 0], [cw - 1, 0], [cw - 1, ch - 1], [0, ch - 1]], np.float32)
    m = np.asarray(cv2.getPerspectiveTransform(src, quad.astype(np.float32)), np.float64)
    width = float(np.linalg.norm(quad[1] - quad[0]) + np.linalg.norm(quad[2] - quad[3])) / 2
    return _Geometry(quad, width, m)


def _to_photo(geo: _Geometry, fx: float, fy: float) -> tuple[float, float]:
    """A point given in card fractions, in photo pixels."""
    p = geo.to_photo @ np.array([fx * layout.CANONICAL_WIDTH, fy * layout.CANONICAL_HEIGHT, 1.0])
    return float(p[0] / p[2]), float(p[1] / p[2])


def _visible(photo: Image, geo: _Geometry, width: int, height: int) -> Image:
    """1 where a card of ``width`` x ``height`` px shows inside the photo's frame.

    A card running off the frame is warped with made-up (replicated) pixels there;
    nothing should be judged on them.
    """
    h, w = photo.shape[:2]
    frame = np.array([[[0, 0]], [[w - 1, 0]], [[w - 1, h - 1]], [[0, h - 1]]], np.float64)
    scale = np.diag([width / layout.CANONICAL_WIDTH, height / layout.CANONICAL_HEIGHT, 1.0])
    try:
        to_small = scale @ np.linalg.inv(geo.to_photo)
    except np.linalg.LinAlgError:
        return np.ones((height, width), np.uint8)
    pts = cv2.perspectiveTransform(frame, to_small).reshape(-1, 2)
    mask = np.zeros((height, width), np.uint8)
    if np.isfinite(pts).all() and np.abs(pts).max() < 1e6:
        cv2.fillConvexPoly(mask, np.round(pts).astype(np.int32), 1)
    else:  # the frame's corners map beyond the horizon: keep everything
        mask[:] = 1
    return mask


def _patch(photo: Image, centre: tuple[float, float], size: int) -> Image:
    """An axis-aligned square of the photo around ``centre``, clamped into the frame."""
    h, w = photo.shape[:2]
    x0 = int(min(max(0, round(centre[0]) - size // 2), max(0, w - size)))
    y0 = int(min(max(0, round(centre[1]) - size // 2), max(0, h - size)))
    return photo[y0 : y0 + size, x0 : x0 + size]


def _gray(image: Image) -> Image:
    if image.ndim == 2:
        return image
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), np.uint8)


def _half_box(region: Region) -> tuple[int, int, int, int]:
    return region.to_pixels(HALF_W, HALF_H)


# --- Blur ------------------------------------------------------------------------------------


def _native_gray_crop(photo: Image, geo: _Geometry, region: Region) -> Image:
    """The region cut from the photo in grey, upright, at about the photo's resolution.

    Blur is a property of the photo, so it is measured before the canonical warp
    shrinks it away; the scale is capped at ``MAX_CROP_SCALE`` x canonical, where print
    is far sharper than any reader needs. Only the region's bounding box is converted
    to grey, so the cost does not grow with the photo.
    """
    x0, y0, x1, y1 = region.to_pixels(layout.CANONICAL_WIDTH, layout.CANONICAL_HEIGHT)
    s = min(MAX_CROP_SCALE, max(0.25, geo.width_px / layout.CANONICAL_WIDTH))
    out_w, out_h = max(8, round((x1 - x0) * s)), max(8, round((y1 - y0) * s))
    corners = np.array([[x0, y0, 1], [x1, y0, 1], [x1, y1, 1], [x0, y1, 1]], np.float64)
    mapped = corners @ geo.to_photo.T
    mapped = mapped[:, :2] / mapped[:, 2:]
    h, w = photo.shape[:2]
    bx0, by0 = (max(0, int(v) - 2) for v in mapped.min(axis=0))
    bx1, by1 = (min(lim, int(v) + 3) for v, lim in zip(mapped.max(axis=0), (w, h), strict=True))
    if bx1 - bx0 < 2 or by1 - by0 < 2:
        return np.zeros((out_h, out_w), np.uint8)
    sub = _gray(np.ascontiguousarray(photo[by0:by1, bx0:bx1]))
    to_card = np.array([[1 / s, 0, x0], [0, 1 / s, y0], [0, 0, 1]], np.float64)
    shift = np.array([[1, 0, -bx0], [0, 1, -by0], [0, 0, 1]], np.float64)
    crop = cv2.warpPerspective(
        sub, shift @ geo.to_photo @ to_card, (out_w, out_h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    return np.asarray(crop, np.uint8)


def _hist(image: Image) -> FloatImage:
    """Histogram of 8-bit values (cv2.calcHist: several times faster than bincount)."""
    return np.asarray(cv2.calcHist([image], [0], None, [256], [0, 256]), np.float32).ravel()


def _quantile(hist: FloatImage, q: float) -> int:
    """The q-quantile of 8-bit values from their histogram (cheaper than sorting)."""
    cum = np.cumsum(hist)
    return int(np.searchsorted(cum, q * float(cum[-1])))


def _edge_sigma(gray: Image) -> float | None:
    """Gaussian-equivalent edge spread of dark print on light paper, in pixels.

    A step of height C blurred by sigma has a steepest slope of C / (sigma sqrt(2 pi)),
    so sigma = C / (slope sqrt(2 pi)) with C the ink/paper contrast and slope the typical
    steepest gradient across strokes. Measured along four directions, the worst one
    wins, so motion blur (one direction smeared) counts too. ``None`` without print.
    """
    h, w = gray.shape
    if h < 8 or w < 8:
        return None
    # Flat-field by the local paper level (a max filter wider than strokes), so a shadow
    # edge across the field neither adds contrast nor steals slope.
    k = max(7, (min(h, w) // 3) | 1)
    paper = cv2.blur(cv2.dilate(gray, np.ones((k, k), np.uint8)), (k, k))
    norm = np.asarray(cv2.divide(gray, paper, scale=PAPER_LEVEL), np.uint8)
    hist = _hist(norm)
    lo, hi = _quantile(hist, 0.02), _quantile(hist, 0.98)
    contrast = float(hi - lo)
    ink = int(hist[: (lo + hi) // 2].sum())
    if contrast < 30.0 or ink < 40:
        return None  # no print here (blank, washed out or covered)
    # A stroke of width w yields ~2 steepest-slope pixels per crossing, about ink / w of
    # them along one direction; print strokes are >= 3 px, so take the top ink / 6.
    top = max(8, ink // 6)
    pairs = (
        (norm[:, 1:], norm[:, :-1], 1.0),
        (norm[1:, :], norm[:-1, :], 1.0),
        (norm[1:, 1:], norm[:-1, :-1], math.sqrt(2.0)),
        (norm[1:, :-1], norm[:-1, 1:], math.sqrt(2.0)),
    )
    worst = 0.0
    for a, b, step in pairs:
        from_top = np.cumsum(_hist(np.asarray(cv2.absdiff(a, b), np.uint8))[::-1])
        slope = (255 - int(np.searchsorted(from_top, top / 2))) / step  # median of the top
        worst = max(worst, contrast / (_SQRT_2PI * max(slope, 1.0)))
    return worst


# Printed lines used for blur, cut to where values usually have ink: enough strokes for
# a stable estimate, small enough crops to stay cheap on a 12 MP photo.
_FRONT_BLUR_LINES = (
    Region(0.330, 0.790, 0.880, 0.895),  # ID number
    Region(0.180, 0.080, 0.400, 0.190),  # name
    Region(0.180, 0.310, 0.450, 0.420),  # birth date
    Region(0.180, 0.425, 0.550, 0.530),  # first address line
)
_BACK_BLUR_LINES = (
    Region(0.380, 0.705, 0.620, 0.815),  # issuing authority
    Region(0.380, 0.815, 0.750, 0.925),  # validity
    Region(0.305, 0.215, 0.930, 0.375),  # second title line (large characters)
)


def _measure_blur(photo: Image, geo: _Geometry, side: Side) -> float:
    sigmas = []
    for region in _FRONT_BLUR_LINES if side is Side.PORTRAIT else _BACK_BLUR_LINES:
        sigma = _edge_sigma(_native_gray_crop(photo, geo, region))
        if sigma is not None:
            sigmas.append(sigma)
    # The median shrugs off a field lost to glare or a finger.
    return float(np.median(sigmas)) if sigmas else float("nan")


# --- Low resolution ----------------------------------------------------------------------


def _upscale_trace(photo: Image, centre: tuple[float, float]) -> tuple[float, float]:
    """Find the periodic trace that interpolating a small photo up leaves behind.

    Resampling by a factor f makes the local sharpness (second differences) vary with
    period f along both axes, whatever the content; real camera pixels do not. Returns
    ``(period, prominence)`` of the strongest such peak in a patch around ``centre``.
    """
    g = _gray(_patch(photo, centre, UPSCALE_PATCH)).astype(np.float32)
    if min(g.shape) < 64:
        return 1.0, 0.0
    best = (1.0, 0.0)
    for a in (g, g.T):
        profile = np.abs(a[:, 2:] - 2 * a[:, 1:-1] + a[:, :-2]).mean(axis=0)
        n = profile.size
        spec = np.abs(np.fft.rfft((profile - profile.mean()) * np.hanning(n)))
        freqs = np.fft.rfftfreq(n)
        # Periods 2-8 px (upscaling by 2-8 times), without JPEG's 8 px block harmonics.
        band = (freqs > 0.135) & (freqs < 0.495)
        for k in (2, 3):
            band &= np.abs(freqs - k / 8) > 1.5 / n
        level = float(np.median(spec[band])) + 1e-6
        idx = int(np.argmax(np.where(band, spec, 0.0)))
        if spec[idx] / level > best[1]:
            best = (1.0 / float(freqs[idx]), float(spec[idx]) / level)
    return best


# --- Recapture ---------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _spectral_band(rows: int, cols: int) -> npt.NDArray[np.bool_]:
    """Where (after fftshift) a screen grid's peaks may be.

    High frequencies only, minus the lines where JPEG's 8 px block grid puts its own.
    """
    fy = np.fft.fftshift(np.fft.fftfreq(rows))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(cols))[None, :]
    band: npt.NDArray[np.bool_] = np.sqrt(fx * fx + fy * fy) > RECAPTURE_MIN_FREQ
    for k in range(-4, 5):
        band &= (np.abs(fx - k / 8) > 1.5 / cols) & (np.abs(fy - k / 8) > 1.5 / rows)
    band.flags.writeable = False
    return band


def _spectral_peak(gray: Image) -> float:
    """Prominence of the sharpest isolated peak in the 2-D spectrum of ``gray``.

    Printed cards have broadband spectra; a screen's pixel grid (and the moire it makes
    with the camera's own grid) puts narrow peaks far from the centre. Returns peak /
    local level (the log-spectrum minus its 9x9 mean).
    """
    g = gray.astype(np.float32)
    g -= g.mean()
    rows, cols = g.shape
    g *= cv2.createHanningWindow((cols, rows), cv2.CV_32F)
    dft = cv2.dft(g, flags=cv2.DFT_COMPLEX_OUTPUT)
    logs = np.fft.fftshift(np.log(cv2.magnitude(dft[:, :, 0], dft[:, :, 1]) + 1e-3))
    resid = logs - cv2.blur(logs, (9, 9))
    band = _spectral_band(rows, cols)
    return float(np.exp(resid[band].max())) if band.any() else 0.0


_RECAPTURE_POINTS = ((0.3, 0.45), (0.7, 0.55), (0.5, 0.3), (0.5, 0.75))


def _measure_recapture(photo: Image, geo: _Geometry) -> float:
    """The second-weakest spectral peak of four patches spread over the card.

    A screen grid covers the whole card; print (a digit row, the guilloche) makes a
    sharp peak in one patch at most.
    """
    peaks = []
    for fx, fy in _RECAPTURE_POINTS:
        patch = _patch(photo, _to_photo(geo, fx, fy), RECAPTURE_PATCH)
        if min(patch.shape[:2]) < 32:
            return 0.0
        peaks.append(_spectral_peak(_gray(patch)))
    return sorted(peaks)[1]


# --- Glare -------------------------------------------------------------------------------


def _measure_glare(quarter_gray: Image, visible: Image) -> float:
    """Area share of the card under the largest specular blob.

    A highlight is a patch clearly brighter than the card's paper where everything, ink
    included, is washed out, lying inside the card. Uneven light also saturates paper
    but keeps the ink dark and runs out to the card's edge; a photocopy's paper is white
    all over, so nothing stands out above it.
    """
    g = quarter_gray
    h, w = g.shape
    paper = cv2.morphologyEx(g, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))  # ink closed away
    ink = (paper.astype(np.int16) - g.astype(np.int16)) > GLARE_INK_CONTRAST
    level = max(GLARE_MIN_LEVEL, float(np.median(g)) + GLARE_OVER_PAPER)
    candidates = np.asarray((paper >= level) & (visible > 0), np.uint8)
    contours, _ = cv2.findContours(candidates, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    # The card's edge, or the frame's where the card runs off it.
    inside = cv2.erode(visible, np.ones((5, 5), np.uint8), borderValue=0)
    best = 0.0
    for contour in contours:
        if cv2.contourArea(contour) < GLARE_MIN_BLOB * h * w:
            continue
        blob = np.zeros_like(candidates)
        cv2.drawContours(blob, [contour], -1, 1, -1)
        # The closing spreads brightness 3 px over dark neighbours (hair, the emblem):
        # judge the ink inside that rim.
        core = cv2.erode(blob, np.ones((7, 7), np.uint8))
        inner = core if core.any() else blob
        if float(ink[inner > 0].mean()) > GLARE_MAX_INK:
            continue
        pts = contour.reshape(-1, 2)
        if float((inside[pts[:, 1], pts[:, 0]] == 0).mean()) > GLARE_MAX_EDGE:
            continue
        best = max(best, float(np.count_nonzero(blob)) / (h * w))
    return best


# --- Occlusion ---------------------------------------------------------------------------

# Column spans where a key value always has ink, whatever its length (two name
# characters, the first address line, all 18 digits...), rows cut to the line's core.
# Tighter than vision.layout's search regions, which leave room for long values.
_FRONT_SPANS: dict[str, Region] = {
    "name": Region(0.188, 0.105, 0.245, 0.165),
    "birth_date": Region(0.188, 0.335, 0.300, 0.395),
    "address": Region(0.188, 0.450, 0.400, 0.505),
    "id_number": Region(0.330, 0.815, 0.880, 0.870),
}
_BACK_SPANS: dict[str, Region] = {
    "authority": Region(0.388, 0.730, 0.480, 0.790),
    "validity": Region(0.388, 0.840, 0.600, 0.900),
}


def _measure_occlusion(half_gray: Image, visible: Image, side: Side) -> float:
    """Largest share of a key value's span without ink, glare not counted.

    A finger or sticker over a field, or a field left blank, leaves columns of the span
    without ink; glare does too, but its columns are brighter than the paper. Columns
    outside the frame are incomplete_border's business.
    """
    g = half_gray
    washed_level = max(WASHED_MIN_LEVEL, float(np.median(g[::4, ::4])) + WASHED_OVER_PAPER)
    kernel = np.ones((1, 2 * GAP_BRIDGE + 1), np.uint8)
    worst = 0.0
    for region in (_FRONT_SPANS if side is Side.PORTRAIT else _BACK_SPANS).values():
        x0, y0, x1, y1 = _half_box(region)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        # Ink is relative to the paper around it (a max filter wider than a stroke, taken
        # with a margin), so shadows neither hide nor invent it.
        m = 3
        ox0, oy0 = max(0, x0 - m), max(0, y0 - m)
        around = g[oy0 : y1 + m, ox0 : x1 + m]
        paper = cv2.dilate(around, np.ones((7, 7), np.uint8)).astype(np.int16)
        ink = (paper - around.astype(np.int16)) > np.maximum(INK_MIN, paper // INK_RATIO)
        inside = ink[y0 - oy0 : y1 - oy0, x0 - ox0 : x1 - ox0]
        columns = np.asarray(inside.any(axis=0), np.uint8).reshape(1, -1)
        lost = np.asarray(cv2.dilate(columns, kernel), np.uint8)[0] == 0
        washed = np.median(g[y0:y1, x0:x1], axis=0) >= washed_level
        seen = visible[y0:y1, x0:x1].all(axis=0)
        inkless = np.asarray(lost & ~washed & seen, np.uint8).reshape(1, -1)
        # Only runs wider than half a character: blur or a faint stroke loses a column
        # or two, a finger or sticker hides whole characters.
        run = np.ones((1, MIN_COVERED_RUN), np.uint8)
        covered = cv2.morphologyEx(inkless, cv2.MORPH_OPEN, run)
        worst = max(worst, float(np.count_nonzero(covered)) / lost.size)
    return worst


# --- Photocopy -----------------------------------------------------------------------------


def _median8(values: Image) -> int:
    return _quantile(_hist(np.ascontiguousarray(values)), 0.5)


def _chroma(lab: Image, a0: int, b0: int) -> FloatImage:
    """Lab chroma relative to (a0, b0), the card's median colour: the light's cast."""
    a = lab[..., 1].astype(np.float32) - a0
    b = lab[..., 2].astype(np.float32) - b0
    return np.asarray(np.sqrt(a * a + b * b), np.float32).ravel()


def _measure_colourfulness(half: Image, quarter: Image, side: Side) -> float:
    """How much colour the card shows: a real card has a colour portrait or red emblem.

    The 99.5th chroma percentile over the card; on the front also the 99th over the
    blue-grey labels, since a portrait may be nearly grey. A photocopy has neither.
    """
    lab = np.asarray(cv2.cvtColor(quarter, cv2.COLOR_BGR2LAB), np.uint8)
    a0, b0 = _median8(lab[:, :, 1]), _median8(lab[:, :, 2])
    colour = float(np.percentile(_chroma(lab, a0, b0), 99.5))
    if side is Side.PORTRAIT:
        labels = []
        for region in layout.FRONT_LABELS.values():
            x0, y0, x1, y1 = _half_box(region)
            crop = np.asarray(cv2.cvtColor(half[y0:y1, x0:x1], cv2.COLOR_BGR2LAB), np.uint8)
            labels.append(_chroma(crop, a0, b0))
        colour = max(colour, float(np.percentile(np.concatenate(labels), 99.0)))
    return colour


# --- Incomplete border -------------------------------------------------------------------


def _measure_border(photo: Image, card: RectifiedCard, geo: _Geometry) -> float:
    """Share of the card's outline on or beyond the frame edge.

    Without a detected outline the whole photo was taken as the card: fine for a tight
    crop or scan (card-shaped), otherwise the outline was not found whole in the frame.
    """
    h, w = photo.shape[:2]
    if card.detection is None:
        aspect = max(w, h) / max(1, min(w, h))
        return 0.0 if abs(math.log(aspect / layout.CARD_ASPECT)) < TIGHT_CROP_TOLERANCE else 1.0
    margin = max(2.0, 0.004 * max(w, h))
    t = np.linspace(0.0, 1.0, 50, endpoint=False)[:, None]
    q = geo.quad
    pts = np.concatenate([q[i] + (q[(i + 1) % 4] - q[i]) * t for i in range(4)])
    out = (
        (pts[:, 0] <= margin) | (pts[:, 1] <= margin)
        | (pts[:, 0] >= w - 1 - margin) | (pts[:, 1] >= h - 1 - margin)
    )  # fmt: skip
    return float(out.mean())


# --- Entry point ---------------------------------------------------------------------------


def _as_bgr(image: Image) -> Image:
    if image.ndim == 2:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), np.uint8)
    if image.shape[2] == 4:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGRA2BGR), np.uint8)
    return image


def _downsize(image: Image, width: int, height: int) -> Image:
    # An exact 2:1 INTER_AREA is a fast path in OpenCV; 631 rows are cut to 630 for it.
    h, w = image.shape[:2]
    if w == 2 * width and h in (2 * height, 2 * height + 1):
        image = image[: 2 * height]
    return np.asarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), np.uint8)


def assess_quality(photo: Image, card: RectifiedCard) -> QualityReport:
    """All quality and fraud signals for one capture.

    ``photo`` is the original BGR photo, ``card`` what :func:`vision.card.rectify_card`
    made of it. Does not raise on odd inputs (tiny, blank, grey): what cannot be measured
    scores 0 with ``measured`` 0.0 - including blur, glare and occlusion when no card
    outline was found in a photo that is not card-shaped (incomplete_border fires then).
    """
    photo, card_image = _as_bgr(photo), _as_bgr(card.image)
    if min(photo.shape[:2]) < 2 or min(card_image.shape[:2]) < 4:
        return QualityReport(tuple(QualitySignal(c, 0, False, 0.0) for c in CODES))
    geo = _geometry(photo, card)
    half = _downsize(card_image, HALF_W, HALF_H)
    quarter = _downsize(half, HALF_W // 2, HALF_H // 2)
    visible_half = _visible(photo, geo, HALF_W, HALF_H)
    visible_quarter = np.asarray(visible_half[::2, ::2][: HALF_H // 2, : HALF_W // 2])

    recapture = _measure_recapture(photo, geo)
    upscale = 1.0
    if recapture < sum(RECAPTURE_RAMP) / 2:  # a screen grid leaves the same trace
        centre = geo.quad.mean(axis=0)
        period, prominence = _upscale_trace(photo, (float(centre[0]), float(centre[1])))
        upscale = period if prominence >= UPSCALE_PEAK else 1.0
    border = _measure_border(photo, card, geo)
    # No outline found and a photo that is not card-shaped: the "card" is the whole
    # scene, and what would be read off its printed fields means nothing.
    on_card = card.detection is not None or border == 0.0
    unknown = float("nan")
    # An upscaled photo is soft because it was small: blur counts in original pixels.
    blur = _measure_blur(photo, geo, card.side) / upscale if on_card else unknown
    glare = _measure_glare(_gray(quarter), visible_quarter) if on_card else unknown
    occlusion = _measure_occlusion(_gray(half), visible_half, card.side) if on_card else unknown
    signals = (
        _signal(BLUR, blur, BLUR_RAMP),
        _signal(GLARE, glare, GLARE_RAMP),
        _signal(LOW_RESOLUTION, geo.width_px / upscale, LOW_RES_RAMP),
        _signal(INCOMPLETE_BORDER, border, BORDER_RAMP),
        _signal(OCCLUSION, occlusion, OCCLUSION_RAMP),
        _signal(PHOTOCOPY, _measure_colourfulness(half, quarter, card.side), PHOTOCOPY_RAMP),
        _signal(RECAPTURE, recapture, RECAPTURE_RAMP),
    )
    return QualityReport(signals)
