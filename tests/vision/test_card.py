"""Card finding, rectification and side/orientation on committed photos (no OCR)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from tests.conftest import idcard_captures
from vision.card import classify_side, find_card, rectify_card, warp
from vision.io import load_image
from vision.layout import CANONICAL_HEIGHT, CANONICAL_WIDTH, Side

CAPTURES = idcard_captures()
PHOTOS = [
    pytest.param(gt, side, id=f"{gt['name']}-{side}")
    for gt in CAPTURES
    for side in ("front", "back")
]


def _corner_error(found: np.ndarray, truth: np.ndarray) -> float:
    """Largest corner distance relative to the card width (same corner order)."""
    width = float(np.linalg.norm(truth[0] - truth[1]))
    return float(np.abs(found - truth).max()) / width


@pytest.mark.parametrize(("gt", "side"), PHOTOS)
def test_side_and_orientation(gt: dict[str, Any], side: str) -> None:
    image = load_image(gt[f"{side}_path"]).pixels
    rect = rectify_card(image)
    assert rect.side is (Side.PORTRAIT if side == "front" else Side.EMBLEM)
    assert rect.image.shape == (CANONICAL_HEIGHT, CANONICAL_WIDTH, 3)
    if gt["kind"] in ("clean", "cut_off"):
        return
    assert rect.detection is not None
    truth = np.array(gt[side]["quad"], dtype=np.float32)
    # Corners come back in reading order (TL, TR, BR, BL), so 90/180/270 are undone.
    assert _corner_error(rect.detection.quad, truth) < 0.03


def test_cut_off_card_touches_border() -> None:
    cut = [gt for gt in CAPTURES if gt["kind"] == "cut_off"]
    assert cut, "the committed sample must contain a cut-off capture"
    for gt in cut:
        for side in ("front", "back"):
            det = find_card(load_image(gt[f"{side}_path"]).pixels)
            assert det is None or det.touches_border


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((480, 640, 3), np.uint8),
        np.full((480, 640, 3), 255, np.uint8),
        np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8),
        np.zeros((40, 40, 3), np.uint8),
    ],
    ids=["black", "white", "noise", "tiny"],
)
def test_no_card_in_featureless_images(image: np.ndarray) -> None:
    assert find_card(image) is None
    rect = rectify_card(image)  # falls back to the whole frame, never raises
    assert rect.image.shape == (CANONICAL_HEIGHT, CANONICAL_WIDTH, 3)


@pytest.mark.parametrize("lines", [0, 3, 8])
def test_card_shaped_sheet_of_paper_is_not_a_card(lines: int) -> None:
    # A white sheet of exactly the card's shape: a receipt-like column of text or
    # none. Geometry alone would accept it; the printed layout must not.
    frame = np.full((1200, 1600, 3), (60, 90, 120), np.uint8)
    quad = np.array([[300, 250], [1300, 300], [1280, 930], [280, 880]], np.int32)
    cv2.fillConvexPoly(frame, quad, (245, 245, 245))
    for i in range(lines):
        y = 380 + 60 * i
        cv2.putText(frame, "TOTAL 12.50", (700, y), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 2)
    assert find_card(frame) is None


def test_classify_is_rotation_consistent() -> None:
    gt = (
        next(g for g in CAPTURES if g["kind"] == "clean")
        if any(g["kind"] == "clean" for g in CAPTURES)
        else CAPTURES[0]
    )
    image = load_image(gt["front_path"]).pixels
    rect = rectify_card(image)
    side, upside_down, _ = classify_side(rect.image)
    assert (side, upside_down) == (Side.PORTRAIT, False)
    side, upside_down, _ = classify_side(np.ascontiguousarray(rect.image[::-1, ::-1]))
    assert (side, upside_down) == (Side.PORTRAIT, True)


def test_warp_does_not_mutate_input() -> None:
    image = np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    before = image.copy()
    warp(image, np.array([[10, 10], [390, 20], [380, 290], [20, 280]], np.float32))
    assert np.array_equal(image, before)
