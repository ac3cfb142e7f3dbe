"""Render the two sides of a synthetic card at the canonical size, as BGR uint8 arrays.

Every printed field sits where ``vision.layout`` says it does: the generator and the
reader share that one source of truth, so a layout change moves both.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from services.synth import fonts
from services.synth.identity import SyntheticIdentity
from vision.layout import (
    ADDRESS_MAX_LINES,
    BACK_LABEL_TEXT,
    BACK_LABELS,
    BACK_TITLE,
    BACK_TITLE_LINES,
    BACK_VALUES,
    CANONICAL_HEIGHT,
    CANONICAL_WIDTH,
    CARD_WIDTH_MM,
    EMBLEM,
    FRONT_LABEL_TEXT,
    FRONT_LABELS,
    FRONT_VALUES,
    PORTRAIT_PHOTO,
    Region,
)

W, H = CANONICAL_WIDTH, CANONICAL_HEIGHT
# ID-1 cards have 3.18 mm corner radii; captures cut them out of the background.
CORNER_RADIUS = round(3.18 / CARD_WIDTH_MM * W)

RGB = tuple[int, int, int]
LABEL_INK: RGB = (90, 110, 140)
VALUE_INK: RGB = (22, 22, 26)
TITLE_INK: RGB = (40, 40, 45)
LABEL_SIZE = 28
VALUE_SIZE = 34
NAME_SIZE = 36
NUMBER_SIZE = 42
NUMBER_PITCH = 32  # OCR-B digits on real cards are widely spaced
# Ideographs and digits have their ink centre ~0.36 em above the baseline.
INK_CENTRE_EM = 0.36
MAX_JITTER_X = 0.005 * W
MAX_JITTER_Y = 0.005 * H

Image8 = npt.NDArray[np.uint8]


def _bounds(region: Region) -> tuple[int, int, int, int]:
    return region.to_pixels(W, H)


def _baseline(centre_y: float, size: int) -> float:
    return centre_y + INK_CENTRE_EM * size


def _jitter(rng: random.Random) -> tuple[float, float]:
    """A small print offset: right of the region's left edge, up or down."""
    return rng.uniform(0, MAX_JITTER_X), rng.uniform(-MAX_JITTER_Y, MAX_JITTER_Y)


def _background(rng: random.Random, top: RGB, bottom: RGB, line: RGB) -> Image8:
    """A pale gradient with a low-contrast guilloche of thin sine waves (RGB)."""
    gen = np.random.default_rng(rng.getrandbits(64))
    t = (np.linspace(0, 1, H)[:, None] * 0.7 + np.linspace(0, 1, W)[None, :] * 0.3)[..., None]
    base = np.array(top, np.float32) * (1 - t) + np.array(bottom, np.float32) * t
    strokes = np.zeros((H, W), np.uint8)
    xs = np.arange(-10, W + 10, 4, dtype=np.float64)
    for _family in range(3):
        amplitude = gen.uniform(10, 40)
        wavelength = gen.uniform(120, 380)
        spacing = gen.uniform(9, 16)
        drift = gen.uniform(-0.25, 0.25)
        phase_step = gen.uniform(0.05, 0.3)
        for k, y0 in enumerate(np.arange(-60, H + 60, spacing)):
            ys = (
                y0 + drift * xs + amplitude * np.sin(2 * math.pi * xs / wavelength + k * phase_step)
            )
            points = np.stack([xs, ys], axis=1).round().astype(np.int32)
            cv2.polylines(strokes, [points], False, 255, 1, cv2.LINE_AA)
    # A faint rosette off-centre, as the printed security pattern has.
    cx, cy = gen.uniform(0.3, 0.7) * W, gen.uniform(0.3, 0.7) * H
    for k in range(24):
        angle = 2 * math.pi * k / 24
        radius = gen.uniform(150, 230)
        centre = (
            round(cx + 0.5 * radius * math.cos(angle)),
            round(cy + 0.5 * radius * math.sin(angle)),
        )
        cv2.circle(strokes, centre, round(radius * 0.5), 255, 1, cv2.LINE_AA)
    alpha = strokes.astype(np.float32)[..., None] / 255.0 * 0.22
    image = base * (1 - alpha) + np.array(line, np.float32) * alpha
    # Paper-like grain.
    image += gen.normal(0, 1.2, size=(H, W, 1)).astype(np.float32)
    return np.asarray(np.clip(image, 0, 255), np.uint8)


def _draw_justified(
    draw: ImageDraw.ImageDraw,
    text: str,
    font: ImageFont.FreeTypeFont,
    x0: float,
    x1: float,
    centre_y: float,
    ink: RGB,
) -> None:
    """Spread the characters over ``x0..x1`` (labels and titles are letter-spaced)."""
    widths = [font.getlength(ch) for ch in text]
    gap = max(0.0, (x1 - x0 - sum(widths)) / max(1, len(text) - 1))
    x = x0
    baseline = _baseline(centre_y, int(font.size))
    for ch, width in zip(text, widths, strict=True):
        draw.text((x, baseline), ch, font=font, fill=ink, anchor="ls")
        x += width + gap


def _draw_labels(
    draw: ImageDraw.ImageDraw, regions: dict[str, Region], texts: dict[str, str]
) -> None:
    font = fonts.cjk(LABEL_SIZE)
    for key, region in regions.items():
        x0, y0, x1, y1 = _bounds(region)
        _draw_justified(draw, texts[key], font, x0, x1, (y0 + y1) / 2, LABEL_INK)


def _draw_value(
    draw: ImageDraw.ImageDraw,
    region: Region,
    text: str,
    font: ImageFont.FreeTypeFont,
    rng: random.Random,
) -> None:
    x0, y0, _x1, y1 = _bounds(region)
    dx, dy = _jitter(rng)
    draw.text(
        (x0 + dx, _baseline((y0 + y1) / 2 + dy, int(font.size))),
        text,
        font=font,
        fill=VALUE_INK,
        anchor="ls",
    )


def _draw_runs(
    draw: ImageDraw.ImageDraw,
    runs: Sequence[tuple[str, RGB]],
    font: ImageFont.FreeTypeFont,
    x: float,
    centre_y: float,
    gap: float,
) -> None:
    baseline = _baseline(centre_y, int(font.size))
    for text, ink in runs:
        draw.text((x, baseline), text, font=font, fill=ink, anchor="ls")
        x += font.getlength(text) + gap


def wrap_text(text: str, font: ImageFont.FreeTypeFont, max_width: float) -> list[str]:
    """Break ``text`` into lines no wider than ``max_width`` (Chinese wraps anywhere)."""
    lines: list[str] = []
    current = ""
    for ch in text:
        if current and font.getlength(current + ch) > max_width:
            lines.append(current)
            current = ch
        else:
            current += ch
    if current:
        lines.append(current)
    return lines


def _draw_address(draw: ImageDraw.ImageDraw, address: str, rng: random.Random) -> None:
    x0, y0, x1, y1 = _bounds(FRONT_VALUES["address"])
    dx, dy = _jitter(rng)
    width = x1 - x0 - MAX_JITTER_X - 4
    size = VALUE_SIZE
    lines = wrap_text(address, fonts.cjk(size), width)
    # Shrink rather than overflow: the layout has room for three lines only.
    while len(lines) > ADDRESS_MAX_LINES:
        size -= 1
        lines = wrap_text(address, fonts.cjk(size), width)
    font = fonts.cjk(size)
    line_height = (y1 - y0) / ADDRESS_MAX_LINES
    for i, line in enumerate(lines):
        centre = y0 + (i + 0.5) * line_height + dy
        draw.text((x0 + dx, _baseline(centre, size)), line, font=font, fill=VALUE_INK, anchor="ls")


def _draw_birth_date(
    draw: ImageDraw.ImageDraw, identity: SyntheticIdentity, rng: random.Random
) -> None:
    # Digits in black, 年/月/日 in the label ink, as on real cards.
    x0, y0, _x1, y1 = _bounds(FRONT_VALUES["birth_date"])
    dx, dy = _jitter(rng)
    birth = identity.birth_date
    runs = [
        (str(birth.year), VALUE_INK),
        ("年", LABEL_INK),
        (str(birth.month), VALUE_INK),
        ("月", LABEL_INK),
        (str(birth.day), VALUE_INK),
        ("日", LABEL_INK),
    ]
    _draw_runs(draw, runs, fonts.cjk(VALUE_SIZE), x0 + dx, (y0 + y1) / 2 + dy, gap=VALUE_SIZE * 0.3)


def _draw_id_number(draw: ImageDraw.ImageDraw, number: str, rng: random.Random) -> None:
    x0, y0, _x1, y1 = _bounds(FRONT_VALUES["id_number"])
    dx, dy = _jitter(rng)
    font = fonts.mono(NUMBER_SIZE)
    baseline = _baseline((y0 + y1) / 2 + dy, NUMBER_SIZE)
    for i, ch in enumerate(number):
        draw.text(
            (x0 + dx + i * NUMBER_PITCH, baseline), ch, font=font, fill=VALUE_INK, anchor="ls"
        )


def _fit_photo(photo: Image8, width: int, height: int) -> Image8:
    """Centre-crop ``photo`` to the target aspect, then resize."""
    ph, pw = photo.shape[:2]
    target = width / height
    if pw / ph > target:
        new_w = round(ph * target)
        photo = photo[:, (pw - new_w) // 2 : (pw - new_w) // 2 + new_w]
    else:
        new_h = round(pw / target)
        photo = photo[(ph - new_h) // 2 : (ph - new_h) // 2 + new_h]
    interpolation = cv2.INTER_AREA if photo.shape[1] > width else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(photo, (width, height), interpolation=interpolation), np.uint8)


def _print_photo(card_rgb: Image8, portrait_bgr: Image8) -> None:
    """Multiply the portrait onto the card: its white backdrop lets the pattern through."""
    x0, y0, x1, y1 = _bounds(PORTRAIT_PHOTO)
    photo = _fit_photo(portrait_bgr, x1 - x0, y1 - y0)[..., ::-1].astype(np.float32)
    area = card_rgb[y0:y1, x0:x1].astype(np.float32)
    card_rgb[y0:y1, x0:x1] = np.clip(area * photo / 255.0, 0, 255).astype(np.uint8)


def render_front(identity: SyntheticIdentity, portrait_bgr: Image8, rng: random.Random) -> Image8:
    """The portrait side at ``CANONICAL_WIDTH`` x ``CANONICAL_HEIGHT``, BGR uint8."""
    card = _background(rng, top=(242, 241, 232), bottom=(226, 234, 240), line=(120, 150, 175))
    _print_photo(card, portrait_bgr)
    image = Image.fromarray(card)
    draw = ImageDraw.Draw(image)
    _draw_labels(draw, FRONT_LABELS, FRONT_LABEL_TEXT)
    _draw_value(draw, FRONT_VALUES["name"], identity.name, fonts.cjk(NAME_SIZE), rng)
    _draw_value(draw, FRONT_VALUES["sex"], identity.sex, fonts.cjk(VALUE_SIZE), rng)
    _draw_value(draw, FRONT_VALUES["ethnicity"], identity.ethnicity, fonts.cjk(VALUE_SIZE), rng)
    _draw_birth_date(draw, identity, rng)
    _draw_address(draw, identity.address, rng)
    _draw_id_number(draw, identity.id_number, rng)
    return np.ascontiguousarray(np.asarray(image, np.uint8)[..., ::-1])


def _star(
    cx: float, cy: float, radius: float, rotation: float = -math.pi / 2
) -> list[tuple[float, float]]:
    points = []
    for k in range(10):
        r = radius if k % 2 == 0 else radius * 0.382
        angle = rotation + k * math.pi / 5
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    return points


def _emblem(width: int, height: int) -> Image.Image:
    """A red-and-gold national-emblem stand-in (not a reproduction), RGBA."""
    scale = 4  # draw large, then downsample for smooth edges
    size = min(width, height) * scale
    image = Image.new("RGBA", (width * scale, height * scale), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    cx, cy = width * scale / 2, height * scale / 2
    red, gold = (200, 30, 35, 255), (240, 190, 50, 255)
    outer = size * 0.49
    draw.ellipse((cx - outer, cy - outer, cx + outer, cy + outer), fill=gold)
    inner = outer * 0.86
    draw.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=red)
    # Wheat-ear ring: short gold dashes just inside the rim.
    for k in range(36):
        angle = 2 * math.pi * k / 36
        r0, r1 = inner * 0.80, inner * 0.95
        draw.line(
            (
                cx + r0 * math.cos(angle),
                cy + r0 * math.sin(angle),
                cx + r1 * math.cos(angle + 0.08),
                cy + r1 * math.sin(angle + 0.08),
            ),
            fill=gold,
            width=scale * 2,
        )
    # One large star and four small ones in an arc, above a gate outline.
    big_y = cy - inner * 0.38
    draw.polygon(_star(cx, big_y, inner * 0.22), fill=gold)
    for k, angle in enumerate((-0.95, -0.35, 0.35, 0.95)):
        sx = cx + inner * 0.45 * math.sin(angle)
        sy = big_y - inner * 0.05 + inner * 0.25 * (1 - math.cos(angle))
        draw.polygon(_star(sx, sy, inner * 0.08, -math.pi / 2 + (k - 1.5) * 0.3), fill=gold)
    gate_top, gate_bottom = cy + inner * 0.05, cy + inner * 0.5
    draw.polygon(
        [
            (cx - inner * 0.55, gate_top + inner * 0.1),
            (cx + inner * 0.55, gate_top + inner * 0.1),
            (cx + inner * 0.4, gate_top),
            (cx - inner * 0.4, gate_top),
        ],
        fill=gold,
    )
    draw.rectangle(
        (cx - inner * 0.45, gate_top + inner * 0.1, cx + inner * 0.45, gate_bottom), fill=gold
    )
    for k in range(5):
        door_x = cx + (k - 2) * inner * 0.17
        draw.rectangle(
            (door_x - inner * 0.045, gate_top + inner * 0.22, door_x + inner * 0.045, gate_bottom),
            fill=red,
        )
    draw.rectangle(
        (cx - inner * 0.6, gate_bottom, cx + inner * 0.6, gate_bottom + inner * 0.08), fill=gold
    )
    return image.resize((width, height), Image.Resampling.LANCZOS)


def render_back(identity: SyntheticIdentity, rng: random.Random) -> Image8:
    """The emblem side at ``CANONICAL_WIDTH`` x ``CANONICAL_HEIGHT``, BGR uint8."""
    card = _background(rng, top=(238, 240, 236), bottom=(244, 238, 226), line=(150, 140, 170))
    image = Image.fromarray(card)
    ex0, ey0, ex1, ey1 = _bounds(EMBLEM)
    emblem = _emblem(ex1 - ex0, ey1 - ey0)
    image.paste(emblem, (ex0, ey0), emblem)
    draw = ImageDraw.Draw(image)
    tx0, ty0, tx1, ty1 = _bounds(BACK_TITLE)
    title_h = ty1 - ty0
    _draw_justified(
        draw, BACK_TITLE_LINES[0], fonts.cjk(44), tx0, tx1, ty0 + 0.24 * title_h, TITLE_INK
    )
    _draw_justified(
        draw,
        BACK_TITLE_LINES[1],
        fonts.cjk(80, bold=True),
        tx0,
        tx1,
        ty0 + 0.70 * title_h,
        TITLE_INK,
    )
    _draw_labels(draw, BACK_LABELS, BACK_LABEL_TEXT)
    _draw_value(draw, BACK_VALUES["authority"], identity.authority, fonts.cjk(VALUE_SIZE), rng)
    _draw_value(draw, BACK_VALUES["validity"], identity.validity_text, fonts.cjk(VALUE_SIZE), rng)
    return np.ascontiguousarray(np.asarray(image, np.uint8)[..., ::-1])
