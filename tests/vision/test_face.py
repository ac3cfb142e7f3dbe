"""Face detection, encoding and calibrated comparison (vision.face)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import IDCARDS, SHARED_DATA
from vision.face import (
    Face,
    FaceBox,
    calibration,
    compare,
    detect_faces,
    encode_face,
    find_faces,
    largest_face,
)
from vision.io import load_image

pytestmark = pytest.mark.slow
PEOPLE = SHARED_DATA / "faces" / "people"


@cache
def _face(rel: str) -> Face:
    face = largest_face(load_image(PEOPLE / rel).pixels)
    assert face is not None, rel
    return face


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Yao_Ming/1.jpg", "Yao_Ming/2.jpg"),
        ("Hu_Jintao/1.jpg", "Hu_Jintao/2.jpg"),
        ("Barack_Obama/1.jpg", "Barack_Obama/2.jpg"),
    ],
)
def test_same_person_is_not_rejected(shared_data: Path, a: str, b: str) -> None:
    m = compare(_face(a).encoding, _face(b).encoding)
    assert m.verdict in ("match", "gray"), m


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Yao_Ming/1.jpg", "Hu_Jintao/1.jpg"),
        ("Zhang_Ziyi/1.jpg", "Lucy_Liu/1.jpg"),
        ("Barack_Obama/1.jpg", "Joe_Biden/1.jpg"),
    ],
)
def test_different_people_are_no_match(shared_data: Path, a: str, b: str) -> None:
    m = compare(_face(a).encoding, _face(b).encoding)
    assert m.verdict == "no_match", m
    assert m.score < m.thresholds.no_match


@pytest.mark.shared_data
def test_face_and_box_shape(shared_data: Path) -> None:
    face = _face("Yao_Ming/1.jpg")
    assert face.encoding.shape == (128,)
    assert face.encoding.dtype == np.float64
    assert face.box.width > 40
    assert face.box.area == face.box.width * face.box.height


@pytest.mark.shared_data
def test_12mp_boxes_are_in_full_resolution_coordinates(shared_data: Path) -> None:
    photo = load_image(PEOPLE / "Barack_Obama" / "1.jpg").pixels
    h, w = photo.shape[:2]
    k = 3.5  # 910x1137 -> 3185x3980, 12.7 MP
    big = cv2.resize(photo, (round(w * k), round(h * k)), interpolation=cv2.INTER_LINEAR)
    small_box = detect_faces(photo)[0]
    big_box = detect_faces(big)[0]
    sx, sy = big.shape[1] / w, big.shape[0] / h
    expected = np.array(
        [small_box.top * sy, small_box.right * sx, small_box.bottom * sy, small_box.left * sx]
    )
    got = np.array([big_box.top, big_box.right, big_box.bottom, big_box.left])
    # The two detections run at different scales, so boxes differ by about one step of
    # HOG's scale pyramid (~10%); a coordinate-space bug would be off by the 3.5x factor.
    assert np.abs(got - expected).max() < 0.15 * big_box.width
    assert big_box.width > 500
    # The encoding from the big image matches the one from the original.
    m = compare(encode_face(big, big_box), encode_face(photo, small_box))
    assert m.verdict == "match", m


def test_blank_image_has_no_face() -> None:
    blank = np.full((480, 640, 3), 200, dtype=np.uint8)
    assert detect_faces(blank) == ()
    assert find_faces(blank) == ()
    assert largest_face(blank) is None


def test_card_back_has_no_face() -> None:
    back = load_image(IDCARDS / "card0000_rot90_back.jpg").pixels
    assert largest_face(back) is None


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((10, 10, 3), dtype=np.uint8),  # tiny
        np.zeros((100, 100, 3), dtype=np.float32),  # not uint8
        np.zeros((100, 100), dtype=np.uint8),  # not BGR
        np.zeros((100, 100, 4), dtype=np.uint8),  # BGRA
    ],
)
def test_bad_images_raise_value_error(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"expected|too small"):
        detect_faces(image)


def test_bad_box_raises_value_error() -> None:
    img = np.zeros((100, 100, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="empty face box"):
        encode_face(img, FaceBox(top=10, right=10, bottom=10, left=10))


def test_compare_is_symmetric_and_bounded() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        a, b = rng.normal(0, 0.1, 128), rng.normal(0, 0.1, 128)
        ab, ba = compare(a, b), compare(b, a)
        assert ab == ba
        assert 0.0 <= ab.score <= 1.0
    same = compare(a, a)
    assert same.distance == 0.0
    assert same.verdict == "match"


def test_uses_and_unknown_use() -> None:
    a = np.zeros(128)
    for use in ("default", "selfie_vs_portrait", "portrait_vs_portrait"):
        t = compare(a, a, use=use).thresholds
        assert 0.0 < t.no_match <= t.match < 1.0
    with pytest.raises(ValueError, match="unknown"):
        compare(a, a, use="no_such_use")


def test_bad_embedding_raises() -> None:
    with pytest.raises(ValueError, match="embedding"):
        compare(np.zeros(127), np.zeros(128))
    with pytest.raises(ValueError, match="embedding"):
        compare(np.full(128, np.nan), np.zeros(128))


def test_calibration_is_package_data() -> None:
    cal = calibration()
    assert cal.projection.shape[0] == 128
    assert "created" in cal.info


# --- CLI (services/faces_cli.py; registered as `simgate match-face` by services/cli.py) ---


def test_cli_unreadable_image_exits_2(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from services.faces_cli import match_face

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    res = CliRunner().invoke(match_face, [str(bad), str(blank), "--json"])
    assert res.exit_code == 2
    assert json.loads(res.output)["error"].startswith("image.")
    res = CliRunner().invoke(match_face, [str(blank), str(blank), "--json"])
    assert res.exit_code == 0
    out = json.loads(res.output)
    assert out["verdict"] is None
    assert out["error"] == "face.not_found"
    assert (out["faces_a"], out["faces_b"]) == (0, 0)


@pytest.mark.shared_data
def test_cli_pairs_in_order(shared_data: Path, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from services.faces_cli import match_face

    same = (PEOPLE / "Yao_Ming" / "1.jpg", PEOPLE / "Yao_Ming" / "2.jpg")
    diff = (PEOPLE / "Yao_Ming" / "1.jpg", PEOPLE / "Hu_Jintao" / "1.jpg")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("".join(f"{a}\t{b}\n" for a, b in (same, diff)), encoding="utf-8")
    res = CliRunner().invoke(match_face, ["--pairs", str(pairs)])
    assert res.exit_code == 0
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert [r["inputs"] for r in rows] == [[str(p) for p in same], [str(p) for p in diff]]
    assert rows[0]["verdict"] in ("match", "gray")
    assert rows[1]["verdict"] == "no_match"
    assert set(rows[1]["thresholds"]) == {"use", "match", "no_match", "space"}
