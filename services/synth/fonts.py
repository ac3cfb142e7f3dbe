"""System fonts used to print synthetic cards (Noto Sans CJK, DejaVu Sans Mono)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PIL import ImageFont

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
# Index of "Noto Sans CJK SC" inside the .ttc collections (JP, KR, SC, TC, HK, ...).
_NOTO_SC_INDEX = 2


class FontNotFoundError(RuntimeError):
    """A font the card generator needs is not installed."""


@cache
def _find(file_name: str, package: str) -> Path:
    for root in FONT_DIRS:
        if root.is_dir():
            for path in sorted(root.rglob(file_name)):
                return path
    raise FontNotFoundError(
        f"font {file_name} not found under {', '.join(map(str, FONT_DIRS))}; "
        f"install it with: sudo apt-get install {package}"
    )


@cache
def cjk(size: int, *, bold: bool = False) -> ImageFont.FreeTypeFont:
    """Noto Sans CJK SC, a Hei (sans) face like the one printed on real cards."""
    name = "NotoSansCJK-Bold.ttc" if bold else "NotoSansCJK-Regular.ttc"
    return ImageFont.truetype(str(_find(name, "fonts-noto-cjk")), size, index=_NOTO_SC_INDEX)


@cache
def mono(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans Mono Bold: a stand-in for the OCR-B digits of the ID number."""
    return ImageFont.truetype(str(_find("DejaVuSansMono-Bold.ttf", "fonts-dejavu-core")), size)
