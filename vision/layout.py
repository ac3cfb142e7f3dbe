"""Geometry of the second-generation Chinese resident ID card (GB 19522 style layout).

All regions are fractions of the canonical card (85.6 x 54 mm), so that the card
generator (``services.synth``) and the reader (``vision.idcard``) share one source of
truth about where each printed field sits. Coordinates are ``(x0, y0, x1, y1)`` with
the origin at the top-left corner of the card in its upright reading orientation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

CARD_WIDTH_MM = 85.6
CARD_HEIGHT_MM = 54.0
CARD_ASPECT = CARD_WIDTH_MM / CARD_HEIGHT_MM  # ~1.585

# Canonical rectified size in pixels (about 11.7 px/mm, ~300 dpi).
CANONICAL_WIDTH = 1000
CANONICAL_HEIGHT = round(CANONICAL_WIDTH / CARD_ASPECT)  # 631


class Side(StrEnum):
    """Which face of the card an image shows."""

    PORTRAIT = "portrait"  # front: name, sex, ethnicity, birth, address, number, photo
    EMBLEM = "emblem"  # back: national emblem, issuing authority, validity period


@dataclass(frozen=True, slots=True)
class Region:
    """A rectangle in card fractions, ``(x0, y0, x1, y1)``, origin top-left."""

    x0: float
    y0: float
    x1: float
    y1: float

    def to_pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """Return integer pixel bounds ``(x0, y0, x1, y1)`` clipped to the image."""
        return (
            max(0, round(self.x0 * width)),
            max(0, round(self.y0 * height)),
            min(width, round(self.x1 * width)),
            min(height, round(self.y1 * height)),
        )


# --- Portrait side -------------------------------------------------------------------
# Labels are printed in a blue-grey ink at the left; values in black to their right.
FRONT_LABELS: dict[str, Region] = {
    "name": Region(0.060, 0.095, 0.170, 0.175),
    "sex": Region(0.060, 0.210, 0.170, 0.290),
    "ethnicity": Region(0.300, 0.210, 0.410, 0.290),
    "birth_date": Region(0.060, 0.325, 0.170, 0.405),
    "address": Region(0.060, 0.440, 0.170, 0.520),
    "id_number": Region(0.060, 0.800, 0.300, 0.885),
}
# Where values are printed (generous: the reader searches for ink inside them).
FRONT_VALUES: dict[str, Region] = {
    "name": Region(0.180, 0.080, 0.600, 0.190),
    "sex": Region(0.180, 0.195, 0.290, 0.305),
    "ethnicity": Region(0.420, 0.195, 0.600, 0.305),
    "birth_date": Region(0.180, 0.310, 0.600, 0.420),
    # Up to three lines of address.
    "address": Region(0.180, 0.425, 0.618, 0.745),
    "id_number": Region(0.320, 0.785, 0.950, 0.900),
}
PORTRAIT_PHOTO = Region(0.630, 0.100, 0.925, 0.760)
ADDRESS_MAX_LINES = 3

# --- Emblem side ---------------------------------------------------------------------
EMBLEM = Region(0.060, 0.070, 0.230, 0.390)
BACK_TITLE = Region(0.300, 0.100, 0.930, 0.380)
BACK_LABELS: dict[str, Region] = {
    "authority": Region(0.200, 0.720, 0.370, 0.800),
    "validity": Region(0.200, 0.830, 0.370, 0.910),
}
BACK_VALUES: dict[str, Region] = {
    "authority": Region(0.380, 0.705, 0.950, 0.815),
    "validity": Region(0.380, 0.815, 0.950, 0.925),
}

FRONT_LABEL_TEXT: dict[str, str] = {
    "name": "姓名",
    "sex": "性别",
    "ethnicity": "民族",
    "birth_date": "出生",
    "address": "住址",
    "id_number": "公民身份号码",
}
BACK_LABEL_TEXT: dict[str, str] = {
    "authority": "签发机关",
    "validity": "有效期限",
}
BACK_TITLE_LINES = ("中华人民共和国", "居民身份证")
