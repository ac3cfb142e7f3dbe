"""Turn a rendered card into a phone-like photo of it, with known corner positions.

Each capture kind models one way real uploads go wrong (tilt, blur, glare, a photocopy,
a photo of a screen...). Everything random comes from the ``random.Random`` passed in,
so a seed reproduces the same pixels.
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from services.synth.card import CORNER_RADIUS

Image8 = npt.NDArray[np.uint8]
FloatImage = npt.NDArray[np.float32]
Point = tuple[float, float]
Quad = tuple[Point, Point, Point, Point]
JSONScalar = str | int | float | bool | None
JSONValue = JSONScalar | list["JSONValue"] | dict[str, "JSONValue"]


class CaptureKind(StrEnum):
    """How the photo of the card was taken (one ground-truth condition each)."""

    CLEAN = "clean"
    PERSPECTIVE = "perspective"
    BLUR = "blur"
    JPEG = "jpeg"
    GLARE = "glare"
    UNEVEN_LIGHT = "uneven_light"
    LOW_RESOLUTION = "low_resolution"
    ROT90 = "rot90"
    ROT180 = "rot180"
    ROT270 = "rot270"
    PHOTOCOPY = "photocopy"
    RECAPTURE = "recapture"
    CUT_OFF = "cut_off"
    COMBO = "combo"


# The quality.* reason codes a reader should raise for each kind (architecture.md).
EXPECTED_WARNINGS: dict[CaptureKind, tuple[str, ...]] = {
    CaptureKind.CLEAN: (),
    CaptureKind.PERSPECTIVE: (),
    CaptureKind.BLUR: ("quality.blur",),
    CaptureKind.JPEG: (),
    CaptureKind.GLARE: ("quality.glare",),
    CaptureKind.UNEVEN_LIGHT: (),
    CaptureKind.LOW_RESOLUTION: ("quality.low_resolution",),
    CaptureKind.ROT90: (),
    CaptureKind.ROT180: (),
    CaptureKind.ROT270: (),
    CaptureKind.PHOTOCOPY: ("quality.photocopy",),
    CaptureKind.RECAPTURE: ("quality.recapture",),
    CaptureKind.CUT_OFF: ("quality.incomplete_border",),
    CaptureKind.COMBO: ("quality.glare",),
}

FRAME_SIZES: tuple[tuple[int, int], ...] = ((1600, 1200), (1200, 1600), (1280, 960), (960, 1280))


@dataclass(frozen=True, slots=True, eq=False)
class Capture:
    """A photo (BGR uint8), where the card's corners are in it, and how it was made.

    ``quad`` lists the card's top-left, top-right, bottom-right and bottom-left corners in
    its reading orientation, in pixel coordinates; for ``cut_off`` some lie outside.
    """

    image: Image8
    quad: Quad
    kind: CaptureKind
    jpeg_quality: int
    params: dict[str, JSONValue] = field(default_factory=dict)
    jpeg: bytes = b""  # ``image`` as encoded at ``jpeg_quality``: saved as is when possible


def _np_rng(rng: random.Random) -> np.random.Generator:
    return np.random.default_rng(rng.getrandbits(64))


def _as_quad(points: npt.NDArray[np.float64]) -> Quad:
    p = [(round(float(x), 2), round(float(y), 2)) for x, y in points]
    return (p[0], p[1], p[2], p[3])


def _corners(width: float, height: float) -> npt.NDArray[np.float64]:
    return np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64)


def _transform(
    matrix: npt.NDArray[np.float64], points: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    result = cv2.perspectiveTransform(points.reshape(-1, 1, 2).astype(np.float64), matrix)
    return np.asarray(result, np.float64).reshape(-1, 2)


def encode_jpeg(image: Image8, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


def _jpeg_capture(
    image: Image8, quad: Quad, kind: CaptureKind, quality: int, params: dict[str, JSONValue]
) -> Capture:
    """The capture as a phone would store it: the pixels carry the JPEG artefacts."""
    data = encode_jpeg(image, quality)
    decoded = np.asarray(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), np.uint8)
    return Capture(decoded, quad, kind, quality, params, data)


@cache
def card_alpha(width: int, height: int) -> FloatImage:
    """1 inside the card's rounded-corner outline, 0 outside."""
    radius = round(CORNER_RADIUS * width / 1000)
    mask = np.zeros((height, width), np.uint8)
    cv2.rectangle(mask, (radius, 0), (width - 1 - radius, height - 1), 255, -1)
    cv2.rectangle(mask, (0, radius), (width - 1, height - 1 - radius), 255, -1)
    for cx, cy in (
        (radius, radius),
        (width - 1 - radius, radius),
        (width - 1 - radius, height - 1 - radius),
        (radius, height - 1 - radius),
    ):
        cv2.circle(mask, (cx, cy), radius, 255, -1, cv2.LINE_AA)
    return mask.astype(np.float32) / 255.0


# --- Scenes ---------------------------------------------------------------------------


def _smooth_noise(gen: np.random.Generator, width: int, height: int, cell: int) -> FloatImage:
    """Low-frequency noise in about [-1, 1]: random values on a coarse grid, upscaled."""
    small = gen.standard_normal((max(2, height // cell), max(2, width // cell)), dtype=np.float32)
    return np.asarray(cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC), np.float32)


def _surface(gen: np.random.Generator, width: int, height: int) -> tuple[FloatImage, str]:
    """A table or desk top: wood grain, a plain desk, or fabric."""
    style = str(gen.choice(["wood", "desk", "fabric"]))
    if style == "wood":
        colour = np.array(
            [gen.uniform(50, 90), gen.uniform(95, 140), gen.uniform(140, 190)], np.float32
        )
        ys = np.arange(height, dtype=np.float32)[:, None]
        warp = _smooth_noise(gen, width, height, 160) * 25
        grain = np.sin((ys + warp) * gen.uniform(0.05, 0.12)) * 0.5 + 0.5
        fine = _smooth_noise(gen, width, height, 12) * 0.03
        shade = (0.8 + 0.25 * grain + fine)[..., None]
        image = colour * shade
        if gen.random() < 0.5:
            image = np.ascontiguousarray(np.transpose(image, (1, 0, 2)))
            image = np.asarray(cv2.resize(image, (width, height)), np.float32)
    elif style == "desk":
        grey = gen.uniform(40, 220)
        tint = gen.uniform(-15, 15, size=3).astype(np.float32)
        base = np.full((height, width, 3), grey, np.float32) + tint
        image = base + (_smooth_noise(gen, width, height, 200) * 10)[..., None]
    else:
        colour = gen.uniform(40, 200, size=3).astype(np.float32)
        xs = np.arange(width, dtype=np.float32)[None, :]
        ys = np.arange(height, dtype=np.float32)[:, None]
        period = gen.uniform(4, 9)
        weave = 0.9 + 0.06 * np.sin(xs * 2 * math.pi / period) * np.sin(ys * 2 * math.pi / period)
        image = (
            colour
            * weave[..., None]
            * (1 + 0.05 * _smooth_noise(gen, width, height, 120))[..., None]
        )
    return image.astype(np.float32), style


def _random_text(gen: np.random.Generator) -> str:
    words = [
        "INVOICE",
        "No.",
        "TOTAL",
        "Receipt",
        "Order",
        "Qty",
        "Date",
        "PAID",
        "Ref",
        "Tel",
        "Delivery",
        "Item",
        "SN",
        "Batch",
        "Model",
        "USB-C",
        "Price",
        "VAT",
    ]
    parts = [str(gen.choice(words)) for _ in range(int(gen.integers(1, 4)))]
    digits = "".join(gen.choice(list(string.digits), size=int(gen.integers(2, 9))))
    return " ".join([*parts, digits])


def _clutter(gen: np.random.Generator, image: Image8) -> int:
    """Draw papers with printed text, pens, coins and cables on the table; returns a count."""
    height, width = image.shape[:2]
    count = int(gen.integers(4, 12))
    for _ in range(count):
        what = gen.random()
        colour = tuple(float(c) for c in gen.uniform(0, 255, size=3))
        x, y = int(gen.integers(0, width)), int(gen.integers(0, height))
        if what < 0.3:  # a sheet of paper with a few printed lines
            w, h = (
                int(gen.integers(width // 6, width // 2)),
                int(gen.integers(height // 6, height // 2)),
            )
            angle = float(gen.uniform(-30, 30))
            box = cv2.boxPoints(((x, y), (w, h), angle)).astype(np.int32)
            paper = float(gen.uniform(215, 250))
            cv2.fillConvexPoly(image, box, (paper, paper, paper - gen.uniform(0, 12)), cv2.LINE_AA)
            for line in range(int(gen.integers(2, 7))):
                org = (x - w // 3, y - h // 3 + line * int(gen.integers(22, 40)))
                cv2.putText(
                    image,
                    _random_text(gen),
                    org,
                    cv2.FONT_HERSHEY_SIMPLEX,
                    float(gen.uniform(0.5, 1.1)),
                    (40, 40, 40),
                    int(gen.integers(1, 3)),
                    cv2.LINE_AA,
                )
        elif what < 0.5:  # a pen or cable
            end = (int(gen.integers(0, width)), int(gen.integers(0, height)))
            cv2.line(image, (x, y), end, colour, int(gen.integers(3, 18)), cv2.LINE_AA)
        elif what < 0.65:  # a coin or mug
            cv2.circle(image, (x, y), int(gen.integers(20, 120)), colour, -1, cv2.LINE_AA)
        elif what < 0.8:  # a box, phone or book
            w, h = int(gen.integers(40, width // 3)), int(gen.integers(40, height // 3))
            box = cv2.boxPoints(((x, y), (w, h), float(gen.uniform(0, 180)))).astype(np.int32)
            cv2.fillConvexPoly(image, box, colour, cv2.LINE_AA)
        else:  # loose printed text straight on the surface (a label, a receipt)
            cv2.putText(
                image,
                _random_text(gen),
                (x, y),
                cv2.FONT_HERSHEY_DUPLEX,
                float(gen.uniform(0.8, 2.0)),
                colour,
                int(gen.integers(1, 4)),
                cv2.LINE_AA,
            )
    return count


def _scene(
    gen: np.random.Generator, width: int, height: int
) -> tuple[FloatImage, dict[str, JSONValue]]:
    # Textures are smooth: make them at half size (cheaper) and upscale.
    surface, style = _surface(gen, (width + 1) // 2, (height + 1) // 2)
    half = np.clip(surface, 0, 255).astype(np.uint8)
    image = np.asarray(
        cv2.resize(half, (width, height), interpolation=cv2.INTER_LINEAR), np.uint8
    )  # cv2 draws text on 8-bit images only
    count = _clutter(gen, image)
    return image.astype(np.float32), {"background": style, "clutter_items": count}


# --- Geometry -------------------------------------------------------------------------


def _rotation(tilt: float, azimuth: float, roll: float) -> npt.NDArray[np.float64]:
    """Roll in the card plane, then tilt about an in-plane axis at ``azimuth``."""
    cr, sr = math.cos(roll), math.sin(roll)
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]], np.float64)
    axis = np.array([math.cos(azimuth), math.sin(azimuth), 0.0])
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    tilt_m = np.eye(3) + math.sin(tilt) * k + (1 - math.cos(tilt)) * (k @ k)
    return np.asarray(tilt_m @ rz, np.float64)


def _area(quad: npt.NDArray[np.float64]) -> float:
    return float(abs(cv2.contourArea(quad.astype(np.float32))))


def place_quad(
    rng: random.Random,
    frame: tuple[int, int],
    surface: tuple[int, int],
    *,
    area: tuple[float, float] = (0.25, 0.9),
    max_tilt_deg: float = 30.0,
    max_roll_deg: float = 15.0,
    margin: float = 0.02,
) -> tuple[npt.NDArray[np.float64], dict[str, JSONValue]]:
    """Corners of a ``surface`` (w, h) seen by a pinhole camera, placed inside ``frame``."""
    fw, fh = frame
    sw, sh = surface
    tilt = math.radians(rng.uniform(0, max_tilt_deg))
    azimuth = rng.uniform(0, 2 * math.pi)
    roll = math.radians(rng.uniform(-max_roll_deg, max_roll_deg))
    distance = rng.uniform(1.3, 2.2) * sw
    corners3d = np.array(
        [[-sw / 2, -sh / 2, 0], [sw / 2, -sh / 2, 0], [sw / 2, sh / 2, 0], [-sw / 2, sh / 2, 0]]
    )
    cam = corners3d @ _rotation(tilt, azimuth, roll).T + np.array([0, 0, distance])
    projected = distance * cam[:, :2] / cam[:, 2:3]
    wanted = rng.uniform(*area) * fw * fh
    scale = math.sqrt(wanted / _area(projected))
    span = projected.max(axis=0) - projected.min(axis=0)
    # Shrink until it fits with a margin (a 90% card cannot be tilted and still fit).
    room = np.array([fw, fh]) * (1 - 2 * margin)
    scale = min(scale, float((room / span).min()))
    quad = projected * scale
    quad -= quad.min(axis=0)
    span = quad.max(axis=0)
    offset = np.array(
        [
            fw * margin + rng.uniform(0, max(0.0, room[0] - span[0])),
            fh * margin + rng.uniform(0, max(0.0, room[1] - span[1])),
        ]
    )
    quad += offset
    params: dict[str, JSONValue] = {
        "tilt_deg": round(math.degrees(tilt), 2),
        "tilt_azimuth_deg": round(math.degrees(azimuth), 2),
        "roll_deg": round(math.degrees(roll), 2),
        "area_fraction": round(_area(quad) / (fw * fh), 4),
    }
    return quad, params


def _composite(
    frame: FloatImage,
    surface: Image8,
    alpha: FloatImage,
    quad: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Warp ``surface`` onto ``frame`` at ``quad`` (in place); returns the homography."""
    height, width = frame.shape[:2]
    sh, sw = surface.shape[:2]
    matrix = np.asarray(
        cv2.getPerspectiveTransform(_corners(sw, sh).astype(np.float32), quad.astype(np.float32)),
        np.float64,
    )
    # Work only inside the quad's bounding box (plus room for the shadow): the frame
    # outside it is untouched, and the float maths there dominated the run time.
    blur = max(2.0, width * 0.006)
    pad = math.ceil(width * 0.01 + 3 * blur)
    x0, y0 = (max(0, math.floor(v) - pad) for v in quad.min(axis=0))
    x1 = min(width, math.ceil(quad[:, 0].max()) + pad)
    y1 = min(height, math.ceil(quad[:, 1].max()) + pad)
    if x1 <= x0 or y1 <= y0:
        return matrix
    size = (x1 - x0, y1 - y0)
    local = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64) @ matrix
    warped = cv2.warpPerspective(surface, local, size, flags=cv2.INTER_LINEAR)
    cover = np.asarray(cv2.warpPerspective(alpha, local, size, flags=cv2.INTER_LINEAR), np.float32)
    roi = frame[y0:y1, x0:x1]
    # A soft drop shadow (the card lies on the table, lit from above-left), blurred at
    # quarter size because it is smooth anyway.
    quarter = cv2.resize(cover, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    offset = np.array([[1, 0, width * 0.001], [0, 1, height * 0.0015]], np.float32)
    moved = cv2.warpAffine(quarter, offset, (quarter.shape[1], quarter.shape[0]))
    soft = cv2.GaussianBlur(moved, (0, 0), sigmaX=blur / 4)
    shade = np.asarray(cv2.resize(soft, size, interpolation=cv2.INTER_LINEAR), np.float32)
    keep = (1 - 0.35 * shade * (1 - cover)) * (1 - cover)
    cv2.multiply(roi, _three(keep), dst=roi)
    cv2.add(roi, cv2.multiply(warped, _three(cover), dtype=cv2.CV_32F), dst=roi)
    return matrix


# --- Photometric effects ----------------------------------------------------------------


def _three(channel: npt.NDArray[np.floating[Any]]) -> FloatImage:
    """A single-channel float map repeated for B, G and R (OpenCV arithmetic needs it)."""
    plane = np.asarray(channel, np.float32)
    return np.asarray(cv2.merge((plane, plane, plane)), np.float32)


def _scale(frame: FloatImage, gain: npt.NDArray[np.floating[Any]]) -> None:
    """``frame *= gain`` per pixel, in place; OpenCV is ~10x faster than numpy broadcasting."""
    cv2.multiply(frame, _three(gain), dst=frame)


def _light_gradient(frame: FloatImage, rng: random.Random, strength: float) -> dict[str, JSONValue]:
    """Multiply by a linear brightness ramp in a random direction."""
    height, width = frame.shape[:2]
    angle = rng.uniform(0, 2 * math.pi)
    xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
    ys = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    ramp = (xs * math.cos(angle) + ys * math.sin(angle)) * 2  # about -1..1
    gain = 1.0 + strength * ramp * 0.5 - strength * 0.15
    _scale(frame, gain)
    return {"light_strength": round(strength, 3), "light_angle_deg": round(math.degrees(angle), 1)}


def _shadow(frame: FloatImage, rng: random.Random) -> dict[str, JSONValue]:
    """A soft shadow (a hand or phone) cast across part of the frame."""
    height, width = frame.shape[:2]
    gen = _np_rng(rng)
    # Drawn and blurred at 1/8 size (a wide blur is costly at full size), then upscaled.
    small = np.zeros(((height + 7) // 8, (width + 7) // 8), np.float32)
    centre = (int(gen.integers(0, width)) // 8, int(gen.integers(0, height)) // 8)
    axes = (
        int(gen.integers(width // 4, width // 2)) // 8,
        int(gen.integers(height // 5, height // 2)) // 8,
    )
    cv2.ellipse(small, centre, axes, float(gen.uniform(0, 180)), 0, 360, 1.0, -1)
    soft = cv2.GaussianBlur(small, (0, 0), sigmaX=width * 0.05 / 8)
    mask = np.asarray(cv2.resize(soft, (width, height), interpolation=cv2.INTER_LINEAR), np.float32)
    depth = rng.uniform(0.35, 0.6)
    _scale(frame, 1 - depth * mask)
    return {"shadow_depth": round(depth, 3)}


def _glare(
    frame: FloatImage,
    rng: random.Random,
    card_to_frame: npt.NDArray[np.float64],
    card_size: tuple[int, int],
    strength: tuple[float, float] = (0.9, 1.0),
) -> dict[str, JSONValue]:
    """A specular spot on the card, placed in card coordinates so it can cross text."""
    height, width = frame.shape[:2]
    cw, ch = card_size
    cx, cy = rng.uniform(0.1, 0.9) * cw, rng.uniform(0.15, 0.85) * ch
    radius = rng.uniform(0.06, 0.14) * cw
    aspect = rng.uniform(0.5, 1.0)
    centre = _transform(card_to_frame, np.array([[cx, cy], [cx + radius, cy]]))
    r_frame = float(np.linalg.norm(centre[1] - centre[0]))
    xs = np.arange(width, dtype=np.float32)[None, :] - np.float32(centre[0][0])
    ys = (np.arange(height, dtype=np.float32)[:, None] - np.float32(centre[0][1])) / np.float32(
        aspect
    )
    spot = np.exp(-(xs * xs + ys * ys) / np.float32(2 * (r_frame * 0.6) ** 2))
    level = rng.uniform(*strength)
    # Flat, clipped core like a real specular highlight, with a soft halo.
    spot = np.clip(spot * 1.8, 0, 1) * level
    # Screen blend towards white: bright where the spot is, never past 255.
    lift = cv2.multiply(cv2.subtract(np.full_like(frame, 255.0), frame), _three(spot))
    cv2.add(frame, lift, dst=frame)
    return {
        "glare_centre_card": [round(cx / cw, 3), round(cy / ch, 3)],
        "glare_radius_card": round(radius / cw, 3),
        "glare_strength": round(level, 3),
    }


def _blur(
    frame: FloatImage, rng: random.Random, sigma: float, *, allow_motion: bool
) -> dict[str, JSONValue]:
    if allow_motion and rng.random() < 0.4:
        length = max(3, round(sigma * 3.5))
        angle = rng.uniform(0, 180)
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0
        rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
        kernel = np.asarray(cv2.warpAffine(kernel, rot, (length, length)), np.float32)
        kernel /= kernel.sum()
        frame[:] = cv2.filter2D(frame, -1, kernel)
        return {"blur": "motion", "blur_length_px": length, "blur_angle_deg": round(angle, 1)}
    frame[:] = cv2.GaussianBlur(frame, (0, 0), sigmaX=sigma)
    return {"blur": "gaussian", "blur_sigma": round(sigma, 3)}


def _sensor_noise(image: Image8, rng: random.Random, sigma: float) -> FloatImage:
    """Luma noise plus weaker chroma noise, as phone sensors produce."""
    height, width = image.shape[:2]
    # OpenCV's generator is several times faster than numpy's for frame-sized noise;
    # seeding it from ``rng`` keeps the result reproducible.
    cv2.setRNGSeed(rng.getrandbits(31))
    luma = np.empty((height, width), np.float32)
    cv2.randn(luma, np.zeros(1), np.full(1, sigma))
    # Chroma noise is blotchier than luma noise: draw it at half size.
    chroma = np.empty(((height + 1) // 2, (width + 1) // 2, 3), np.float32)
    cv2.randn(chroma, np.zeros(3), np.full(3, sigma * 0.5))
    noisy = image.astype(np.float32)
    cv2.add(noisy, _three(luma), dst=noisy)
    noisy += cv2.resize(chroma, (width, height), interpolation=cv2.INTER_LINEAR)
    return noisy


def _to_uint8(frame: FloatImage) -> Image8:
    # Rounds and saturates in one pass (cheaper than numpy's clip + astype).
    return np.asarray(cv2.convertScaleAbs(np.maximum(frame, 0)), np.uint8)


# --- Kinds ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Shot:
    """Work in progress: a float frame, the card-to-frame homography and the params."""

    frame: FloatImage
    homography: npt.NDArray[np.float64]
    card_size: tuple[int, int]
    params: dict[str, JSONValue]

    @property
    def quad(self) -> npt.NDArray[np.float64]:
        return _transform(self.homography, _corners(*self.card_size))


def _photograph(
    rng: random.Random,
    card: Image8,
    *,
    frame_size: tuple[int, int] | None = None,
    area: tuple[float, float] = (0.25, 0.9),
    max_tilt_deg: float = 30.0,
    quad: npt.NDArray[np.float64] | None = None,
) -> _Shot:
    """The card lying on a cluttered table, photographed with tilt and gentle light."""
    fw, fh = frame_size or rng.choice(FRAME_SIZES)
    ch, cw = card.shape[:2]
    frame, params = _scene(_np_rng(rng), fw, fh)
    if quad is None:
        quad, placement = place_quad(rng, (fw, fh), (cw, ch), area=area, max_tilt_deg=max_tilt_deg)
        params.update(placement)
    params["frame_size"] = [fw, fh]
    homography = _composite(frame, card, card_alpha(cw, ch), quad)
    params.update(_light_gradient(frame, rng, rng.uniform(0.05, 0.25)))
    return _Shot(frame, homography, (cw, ch), params)


def _finish(shot: _Shot, rng: random.Random, *, noise: tuple[float, float] = (1.5, 3.5)) -> Image8:
    """A slight lens softness, then sensor noise, as 8 bits."""
    softness = rng.uniform(0.3, 0.6)
    sigma = rng.uniform(*noise)
    soft = cv2.GaussianBlur(_to_uint8(shot.frame), (0, 0), sigmaX=softness)
    shot.params.update({"lens_sigma": round(softness, 3), "noise_sigma": round(sigma, 2)})
    return _to_uint8(_sensor_noise(np.asarray(soft, np.uint8), rng, sigma))


def _rotate(
    image: Image8, quad: npt.NDArray[np.float64], quarter_turns: int
) -> tuple[Image8, npt.NDArray[np.float64]]:
    """Rotate the whole photo clockwise by 90 degrees x ``quarter_turns``; move the quad."""
    height, width = image.shape[:2]
    x, y = quad[:, 0], quad[:, 1]
    # cv2.rotate maps pixel centres: clockwise, (x, y) -> (height - 1 - y, x).
    if quarter_turns == 1:
        code, moved = cv2.ROTATE_90_CLOCKWISE, [height - 1 - y, x]
    elif quarter_turns == 2:
        code, moved = cv2.ROTATE_180, [width - 1 - x, height - 1 - y]
    else:
        code, moved = cv2.ROTATE_90_COUNTERCLOCKWISE, [y, width - 1 - x]
    return np.asarray(cv2.rotate(image, code), np.uint8), np.stack(moved, axis=1)


def _photocopy_sheet(
    card: Image8, rng: random.Random
) -> tuple[Image8, npt.NDArray[np.float64], dict[str, JSONValue]]:
    """A grey, contrasty, speckled copy of the card on a white A4-like sheet."""
    gen = _np_rng(rng)
    ch, cw = card.shape[:2]
    gray = cv2.cvtColor(card, cv2.COLOR_BGR2GRAY).astype(np.float32)
    low, high = rng.uniform(50, 90), rng.uniform(175, 210)
    gamma = rng.uniform(0.8, 1.3)
    copy = np.clip((gray - low) / (high - low), 0, 1) ** gamma * 255
    # The copier sees the card edge as a thin grey outline.
    outline = np.zeros((ch, cw), np.uint8)
    cv2.rectangle(outline, (1, 1), (cw - 2, ch - 2), 255, 3)
    copy = np.where(outline > 0, np.minimum(copy, rng.uniform(90, 150)), copy)
    copy = np.where(card_alpha(cw, ch) > 0.5, copy, 255)
    sheet_w = round(cw * rng.uniform(1.25, 1.45))
    sheet_h = round(sheet_w * rng.choice([1 / math.sqrt(2), math.sqrt(2)]))
    sheet = np.full((sheet_h, sheet_w), rng.uniform(238, 250), np.float32)
    scale = rng.uniform(0.75, 0.95) * min(sheet_w / cw, sheet_h / ch)
    small = cv2.resize(copy, (round(cw * scale), round(ch * scale)), interpolation=cv2.INTER_AREA)
    ox = round(rng.uniform(0.05, 0.95) * (sheet_w - small.shape[1]))
    oy = round(rng.uniform(0.05, 0.95) * (sheet_h - small.shape[0]))
    sheet[oy : oy + small.shape[0], ox : ox + small.shape[1]] = np.minimum(
        sheet[oy : oy + small.shape[0], ox : ox + small.shape[1]], small
    )
    # Toner: dark specks, a faint streak, grainy fill.
    seeds = np.asarray(gen.random(sheet.shape) < rng.uniform(0.0005, 0.002), np.uint8)
    specks = cv2.dilate(seeds, np.ones((2, 2), np.uint8))
    sheet = np.where(specks > 0, gen.uniform(40, 120), sheet)
    streak_x = int(gen.integers(0, sheet_w))
    sheet[:, streak_x : streak_x + int(gen.integers(2, 6))] *= float(gen.uniform(0.85, 0.95))
    sheet += gen.standard_normal(sheet.shape, dtype=np.float32) * 6
    sheet_bgr = np.asarray(
        cv2.cvtColor(np.clip(sheet, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR), np.uint8
    )
    card_in_sheet = np.array(
        [
            [ox, oy],
            [ox + small.shape[1], oy],
            [ox + small.shape[1], oy + small.shape[0]],
            [ox, oy + small.shape[0]],
        ],
        np.float64,
    )
    params: dict[str, JSONValue] = {
        "copy_levels": [round(low, 1), round(high, 1)],
        "copy_gamma": round(gamma, 3),
        "sheet_size": [sheet_w, sheet_h],
    }
    return sheet_bgr, card_in_sheet, params


def _screen(
    card: Image8, rng: random.Random
) -> tuple[Image8, npt.NDArray[np.float64], dict[str, JSONValue]]:
    """The card shown full-screen on a phone or monitor: subpixel grid, bezel, colour cast."""
    ch, cw = card.shape[:2]
    # Screen resolution in screen pixels; each becomes a 3x3 block of RGB stripes.
    screen_w = rng.choice([540, 600, 720])
    screen_h = round(screen_w * rng.uniform(0.62, 0.75))
    content = np.full((screen_h, screen_w, 3), rng.uniform(10, 40), np.float32)
    scale = rng.uniform(0.8, 0.95) * min(screen_w / cw, screen_h / ch)
    small = cv2.resize(card, (round(cw * scale), round(ch * scale)), interpolation=cv2.INTER_AREA)
    ox, oy = (screen_w - small.shape[1]) // 2, (screen_h - small.shape[0]) // 2
    content[oy : oy + small.shape[0], ox : ox + small.shape[1]] = small
    sub = 3
    big = np.repeat(np.repeat(content, sub, axis=0), sub, axis=1)
    # Each screen pixel: R, G, B stripes (left to right) and a darker gap row; mean 1.
    grid = np.full((sub, sub, 3), 0.35, np.float32)
    for channel in range(3):  # BGR order: B in the right column, R in the left
        grid[:, 2 - channel, channel] = 1.0
    grid[sub - 1, :, :] *= 0.5
    grid /= grid.mean(axis=(0, 1), keepdims=True)
    big *= np.tile(grid, (screen_h, screen_w, 1))
    # Camera-sensor/pixel-grid interference: wavy low-contrast bands (moire).
    ys, xs = np.mgrid[0 : big.shape[0], 0 : big.shape[1]].astype(np.float32)
    angle, period = rng.uniform(0, math.pi), rng.uniform(7, 16)
    wobble = np.sin(ys / rng.uniform(80, 200)) * rng.uniform(3, 8)
    phase = (xs * math.cos(angle) + ys * math.sin(angle) + wobble) * (2 * math.pi / period)
    moire_depth = rng.uniform(0.06, 0.12)
    _scale(big, 1 + moire_depth * np.sin(phase))
    cast = np.array(
        [rng.uniform(1.0, 1.15), rng.uniform(0.95, 1.05), rng.uniform(0.85, 1.0)], np.float32
    )
    big = np.clip(big * cast * rng.uniform(0.9, 1.1) + rng.uniform(0, 25), 0, 255)
    bezel = round(screen_w * sub * rng.uniform(0.03, 0.07))
    device = np.full(
        (screen_h * sub + 2 * bezel, screen_w * sub + 2 * bezel, 3), rng.uniform(8, 30), np.float32
    )
    device[bezel:-bezel, bezel:-bezel] = big
    card_in_device = (
        np.array(
            [
                [ox, oy],
                [ox + small.shape[1], oy],
                [ox + small.shape[1], oy + small.shape[0]],
                [ox, oy + small.shape[0]],
            ],
            np.float64,
        )
        * sub
        + bezel
    )
    params: dict[str, JSONValue] = {
        "screen_pixels": [screen_w, screen_h],
        "colour_cast_bgr": [round(float(c), 3) for c in cast],
        "bezel_px": bezel,
        "moire_period_px": round(period, 2),
        "moire_depth": round(moire_depth, 3),
    }
    return device.astype(np.uint8), card_in_device, params


def _photograph_sheet(
    rng: random.Random,
    sheet: Image8,
    card_in_sheet: npt.NDArray[np.float64],
    card_size: tuple[int, int],
    *,
    area: tuple[float, float],
    rounded: bool,
) -> _Shot:
    """Photograph a larger object (a copy, a screen) that carries the card image."""
    fw, fh = rng.choice(FRAME_SIZES)
    frame, params = _scene(_np_rng(rng), fw, fh)
    sh, sw = sheet.shape[:2]
    quad, placement = place_quad(rng, (fw, fh), (sw, sh), area=area, max_tilt_deg=20.0)
    params.update(placement)
    params["frame_size"] = [fw, fh]
    alpha = card_alpha(sw, sh) if rounded else np.ones((sh, sw), np.float32)
    sheet_to_frame = _composite(frame, sheet, alpha, quad)
    card_to_sheet = cv2.getPerspectiveTransform(
        _corners(*card_size).astype(np.float32), card_in_sheet.astype(np.float32)
    )
    params.update(_light_gradient(frame, rng, rng.uniform(0.05, 0.2)))
    return _Shot(frame, sheet_to_frame @ card_to_sheet, card_size, params)


def _cut_off(
    rng: random.Random, frame_size: tuple[int, int], card_size: tuple[int, int]
) -> tuple[npt.NDArray[np.float64], dict[str, JSONValue]]:
    """A placement with 10-30% of the card's area outside the frame on one side."""
    fw, fh = frame_size
    quad, params = place_quad(
        rng, frame_size, card_size, area=(0.3, 0.6), max_tilt_deg=20.0, margin=0.05
    )
    side = rng.choice(["left", "right", "top", "bottom"])
    direction = {"left": (-1, 0), "right": (1, 0), "top": (0, -1), "bottom": (0, 1)}[side]
    target = rng.uniform(0.10, 0.30)
    frame_poly = _corners(fw, fh).astype(np.float32)
    total = _area(quad)

    def outside(shift: float) -> float:
        moved = (quad + np.array(direction) * shift).astype(np.float32)
        inside, _ = cv2.intersectConvexConvex(moved, frame_poly)
        return 1 - float(inside) / total

    low, high = 0.0, float(max(fw, fh))
    for _ in range(40):  # bisection: the cut-off fraction grows with the shift
        mid = (low + high) / 2
        low, high = (mid, high) if outside(mid) < target else (low, mid)
    shift = (low + high) / 2
    params.update({"cut_side": side, "cut_fraction": round(outside(shift), 4)})
    return quad + np.array(direction) * shift, params


def capture(card: Image8, kind: CaptureKind, rng: random.Random) -> Capture:
    """Photograph ``card`` (a canonical BGR side) the way ``kind`` says."""
    ch, cw = card.shape[:2]
    if kind is CaptureKind.CLEAN:
        return _jpeg_capture(card, _as_quad(_corners(cw, ch)), kind, 95, {})
    quality = rng.randint(85, 92)
    if kind is CaptureKind.PHOTOCOPY:
        sheet, where, sheet_params = _photocopy_sheet(card, rng)
        shot = _photograph_sheet(rng, sheet, where, (cw, ch), area=(0.45, 0.85), rounded=False)
        shot.params.update(sheet_params)
    elif kind is CaptureKind.RECAPTURE:
        device, where, screen_params = _screen(card, rng)
        shot = _photograph_sheet(rng, device, where, (cw, ch), area=(0.45, 0.85), rounded=True)
        shot.params.update(screen_params)
    elif kind is CaptureKind.CUT_OFF:
        frame_size = rng.choice(FRAME_SIZES)
        quad, cut_params = _cut_off(rng, frame_size, (cw, ch))
        shot = _photograph(rng, card, frame_size=frame_size, quad=quad)
        shot.params.update(cut_params)
    elif kind is CaptureKind.LOW_RESOLUTION:
        # Place at full size, then take the whole photo at the scale where the card is
        # only ~250-350 px wide and upscale it back, as a distant or cheap camera would.
        frame_size = rng.choice(FRAME_SIZES)
        quad, place_params = place_quad(rng, frame_size, (cw, ch), area=(0.25, 0.6))
        card_width = (
            float(np.linalg.norm(quad[1] - quad[0]) + np.linalg.norm(quad[2] - quad[3])) / 2
        )
        target = rng.uniform(250, 350)
        factor = target / card_width
        small_size = (round(frame_size[0] * factor), round(frame_size[1] * factor))
        shot = _photograph(rng, card, frame_size=small_size, quad=quad * factor)
        shot.params.update(place_params)
        shot.params.update({"card_width_px": round(target, 1), "capture_size": list(small_size)})
        image = _finish(shot, rng, noise=(1.0, 2.0))
        image = np.asarray(cv2.resize(image, frame_size, interpolation=cv2.INTER_CUBIC), np.uint8)
        back_up = np.diag([frame_size[0] / small_size[0], frame_size[1] / small_size[1], 1.0])
        shot.params["frame_size"] = list(frame_size)
        quad_full = _transform(back_up @ shot.homography, _corners(cw, ch))
        shot.params["jpeg_quality"] = quality
        return _jpeg_capture(image, _as_quad(quad_full), kind, quality, shot.params)
    else:
        shot = _photograph(rng, card)
    if kind is CaptureKind.UNEVEN_LIGHT:
        shot.params.update(_light_gradient(shot.frame, rng, rng.uniform(0.5, 0.8)))
        shot.params.update(_shadow(shot.frame, rng))
    if kind is CaptureKind.GLARE:
        shot.params.update(_glare(shot.frame, rng, shot.homography, (cw, ch)))
    if kind is CaptureKind.COMBO:
        shot.params.update(_glare(shot.frame, rng, shot.homography, (cw, ch), strength=(0.8, 0.95)))
    image = _finish(shot, rng)
    if kind is CaptureKind.BLUR:
        as_float = image.astype(np.float32)
        shot.params.update(_blur(as_float, rng, rng.uniform(1.0, 2.0), allow_motion=True))
        image = _to_uint8(as_float)
    elif kind is CaptureKind.COMBO:
        as_float = image.astype(np.float32)
        shot.params.update(_blur(as_float, rng, 0.8, allow_motion=False))
        image = _to_uint8(as_float)
    if kind is CaptureKind.JPEG:
        quality = rng.randint(50, 60)
    elif kind is CaptureKind.COMBO:
        quality = 70
    quad = shot.quad
    turns = {CaptureKind.ROT90: 1, CaptureKind.ROT180: 2, CaptureKind.ROT270: 3}.get(kind, 0)
    if turns:
        image, quad = _rotate(image, quad, turns)
        shot.params["rotation_cw_deg"] = 90 * turns
    shot.params["jpeg_quality"] = quality
    return _jpeg_capture(image, _as_quad(quad), kind, quality, shot.params)
