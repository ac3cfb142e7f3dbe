"""Reading whole cards from the committed captures with the real OCR models (slow)."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pytest

from tests.conftest import idcard_captures
from vision.idcard import ALL_FIELDS, read_id_card
from vision.io import load_image

pytestmark = pytest.mark.slow

FIELDS = ALL_FIELDS
# Kinds whose every field must be read exactly. Glare, low resolution and cut-off
# destroy some characters by design: for those the reader must still validate what it
# read and flag the capture (see test_degraded_captures_are_flagged).
EXACT_KINDS = {
    "clean",
    "perspective",
    "blur",
    "jpeg",
    "uneven_light",
    "rot90",
    "rot180",
    "rot270",
    "photocopy",
    "recapture",
    "combo",
}
TODAY = date(2026, 11, 29)
CAPTURES = idcard_captures()


def _read(gt: dict[str, Any], order: str = "front-back") -> Any:
    paths = [gt["front_path"], gt["back_path"]]
    if order == "back-front":
        paths.reverse()
    return read_id_card([load_image(p).pixels for p in paths], today=TODAY)


@pytest.mark.parametrize(
    "gt", [g for g in CAPTURES if g["kind"] in EXACT_KINDS], ids=lambda g: g["name"]
)
def test_every_field_exact(gt: dict[str, Any]) -> None:
    reading = _read(gt)
    expected = {f: str(gt["identity"][f]) for f in FIELDS}
    assert {f: reading.value(f) for f in FIELDS} == expected
    assert reading.checks["id_number_checksum"]
    assert reading.checks["birth_date_matches_number"]
    assert reading.checks["sex_matches_number"]
    assert "document.side_missing" not in reading.warnings
    assert reading.front is not None
    assert reading.front.portrait is not None


def test_order_of_sides_does_not_matter() -> None:
    gt = next(g for g in CAPTURES if g["kind"] in EXACT_KINDS)
    a, b = _read(gt), _read(gt, "back-front")
    assert {f: a.value(f) for f in FIELDS} == {f: b.value(f) for f in FIELDS}


@pytest.mark.parametrize(
    "gt", [g for g in CAPTURES if g["kind"] not in EXACT_KINDS], ids=lambda g: g["name"]
)
def test_degraded_captures_are_flagged(gt: dict[str, Any]) -> None:
    reading = _read(gt)
    # Whatever was lost, nothing unvalidated passes silently: either the number is
    # right, or the card is reported invalid/unreadable.
    number_right = reading.value("id_number") == gt["identity"]["id_number"]
    assert number_right or reading.errors
    for code in gt["expected_warnings"]:
        assert code in reading.warnings, f"{gt['name']}: expected {code}, got {reading.warnings}"


def test_one_side_only_warns_side_missing() -> None:
    gt = next(g for g in CAPTURES if g["kind"] in EXACT_KINDS)
    reading = read_id_card([load_image(gt["front_path"]).pixels], today=TODAY)
    assert "document.side_missing" in reading.warnings
    assert "document.side_missing" in reading.errors
    assert reading.value("id_number") == gt["identity"]["id_number"]
    assert reading.back is None


def test_two_fronts_warn_side_missing() -> None:
    gt = next(g for g in CAPTURES if g["kind"] in EXACT_KINDS)
    front = load_image(gt["front_path"]).pixels
    reading = read_id_card([front, front], today=TODAY)
    assert "document.side_missing" in reading.warnings
    assert "document.side_missing" in reading.errors


def test_expired_card_is_an_error() -> None:
    gt = next(
        g for g in CAPTURES if g["kind"] in EXACT_KINDS and g["identity"]["valid_to"] != "long-term"
    )
    after = date.fromisoformat(gt["identity"]["valid_to"]).replace(
        year=date.fromisoformat(gt["identity"]["valid_to"]).year + 1
    )
    reading = read_id_card(
        [load_image(gt["front_path"]).pixels, load_image(gt["back_path"]).pixels], today=after
    )
    assert "document.expired" in reading.errors
    assert reading.checks["not_expired"] is False


def test_blank_image_reads_nothing_without_crashing() -> None:
    reading = read_id_card([np.full((600, 900, 3), 255, np.uint8)], today=TODAY)
    assert all(value is None for value in (reading.value(f) for f in FIELDS))
    assert "document.unreadable" in reading.errors
    assert "document.side_missing" in reading.warnings
