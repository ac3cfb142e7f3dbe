"""The handheld-selfie check on the committed synthetic selfies (fixtures/selfies)."""

from __future__ import annotations

import json
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from services.selfie_cli import check_files
from services.selfie_cli import check_selfie as check_selfie_command
from tests.conftest import FIXTURES
from vision.face import FaceBox
from vision.selfie import check_selfie

SELFIES = FIXTURES / "selfies"
# Gray-zone verdicts send a case to manual review; they are tolerated beside the
# expected reasons (they depend on the face calibration, not on this check's logic).
REVIEW_REASONS = {"face.uncertain", "selfie.card_uncertain"}


def _truths() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(SELFIES.glob("selfie*.json"))]


TRUTHS = _truths()
CASES = [pytest.param(t, id=t["selfie"].removesuffix(".jpg")) for t in TRUTHS]


@cache
def _result(name: str) -> dict[str, Any]:
    truth = next(t for t in TRUTHS if t["selfie"] == name)
    return check_files(SELFIES / truth["selfie"], SELFIES / truth["id_front"])


def test_sample_covers_every_case() -> None:
    from services.synth.selfie import CASES as ALL_CASES

    assert {t["case"] for t in TRUTHS} == set(ALL_CASES)


@pytest.mark.parametrize("truth", CASES)
def test_expected_reasons(truth: dict[str, Any]) -> None:
    result = _result(truth["selfie"])
    expected = set(truth["expected_reasons"])
    got = set(result["reasons"])
    assert expected <= got, result
    assert got - expected <= REVIEW_REASONS, result
    if truth["case"] == "genuine":
        assert result["passed"], result
        assert result["card_number"]["verdict"] == "match"
    else:
        assert not result["passed"]


@pytest.mark.parametrize("truth", CASES)
def test_geometry(truth: dict[str, Any]) -> None:
    result = _result(truth["selfie"])
    if truth["held_card_quad"] is None:
        assert result["held_card_quad"] is None
    else:
        assert result["held_card_quad"] is not None
        found = np.array(result["held_card_quad"])
        expected = np.array(truth["held_card_quad"])
        width = float(np.linalg.norm(expected[0] - expected[1]))
        # Same corner order (reading orientation) and within 5% of the card width.
        assert float(np.abs(found - expected).max()) < 0.05 * width
    box = result["live_face_box"]
    assert box is not None
    cx, cy = (box["left"] + box["right"]) / 2, (box["top"] + box["bottom"]) / 2
    # The applicant (or, with two people posing, one of the posing faces) was chosen.
    assert any(
        left <= cx <= right and top <= cy <= bottom
        for top, right, bottom, left in truth["face_boxes"]
    )
    expected_faces = 2 if truth["case"] == "two_faces" else 1
    assert result["faces_found"] == expected_faces


def _portrait() -> np.ndarray:
    from vision.idcard import read_side
    from vision.io import load_image

    truth = TRUTHS[0]
    portrait = read_side(load_image(SELFIES / truth["id_front"]).pixels).portrait
    assert portrait is not None
    return portrait


@pytest.mark.parametrize(
    "selfie",
    [
        pytest.param(np.full((1280, 960, 3), 255, np.uint8), id="white"),
        pytest.param(np.zeros((480, 640, 3), np.uint8), id="black"),
        pytest.param(
            np.random.default_rng(0).integers(0, 256, (640, 480, 3), dtype=np.uint8), id="noise"
        ),
    ],
)
def test_blank_selfie(selfie: np.ndarray) -> None:
    result = check_selfie(selfie, scanned_portrait=_portrait(), scanned_id_number=None)
    assert "face.not_found" in result.reasons
    assert "selfie.card_missing" in result.reasons
    assert not result.passed
    assert result.live_face_box is None
    assert result.held_card_quad is None
    assert result.faces_found == 0


def test_blank_scanned_portrait() -> None:
    from vision.io import load_image

    truth = next(t for t in TRUTHS if t["case"] == "genuine")
    selfie = load_image(SELFIES / truth["selfie"]).pixels
    result = check_selfie(
        selfie, scanned_portrait=np.full((416, 295, 3), 255, np.uint8), read_held_number=False
    )
    assert "face.portrait_not_found" in result.reasons
    assert result.face_match is None
    assert result.card_portrait_match is None
    assert isinstance(result.live_face_box, FaceBox)
    assert result.card_number.verdict == "not_checked"
    assert not result.passed


def test_cli_json() -> None:
    truth = next(t for t in TRUTHS if t["case"] == "genuine")
    runner = CliRunner()
    out = runner.invoke(
        check_selfie_command,
        [str(SELFIES / truth["selfie"]), "--id-front", str(SELFIES / truth["id_front"]), "--json"],
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["passed"] is True
    for key in ("face_match", "card_portrait_match", "card_number", "timings_ms"):
        assert data[key], key
    assert data["face_match"]["verdict"] == "match"


def test_cli_unreadable(tmp_path: Path) -> None:
    bad = tmp_path / "selfie.jpg"
    bad.write_bytes(b"not an image")
    truth = TRUTHS[0]
    out = CliRunner().invoke(
        check_selfie_command, [str(bad), "--id-front", str(SELFIES / truth["id_front"]), "--json"]
    )
    assert out.exit_code == 2
    data = json.loads(out.output)
    assert data["error"].startswith("image.")
    assert data["detail"]


def test_evaluate(tmp_path: Path) -> None:
    from services.synth.selfie import evaluate

    for truth in TRUTHS[:2]:
        stem = truth["selfie"].removesuffix(".jpg")
        for suffix in (".jpg", "_idfront.jpg", ".json"):
            shutil.copy(SELFIES / f"{stem}{suffix}", tmp_path)
    report = evaluate(tmp_path)
    assert report["total"] == 2
    assert set(report["cases"]) == {t["case"] for t in TRUTHS[:2]}


def test_generator_reproduces_sample(shared_data: Path) -> None:
    from services.synth.selfie import make_case, people

    faces = shared_data / "faces"
    truth = next(t for t in TRUTHS if t["case"] == "portrait_swapped")
    _, _, again = make_case(
        truth["seed"], truth["index"], truth["case"], people(faces, mit_only=True), faces
    )
    for key in ("live_photo", "portrait_photo", "held_card_quad", "scanned_identity"):
        assert again[key] == truth[key], key
