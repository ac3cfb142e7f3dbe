"""The synthetic card generator: valid fictitious identities, faithful layout, exact quads.

No OCR here; tests that need the shared face photos skip with a message where absent.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from stdnum.cn import ric

from services.synth import fonts
from services.synth.capture import EXPECTED_WARNINGS, CaptureKind, capture
from services.synth.card import render_back, render_front
from services.synth.dataset import MANIFEST_NAME, generate_dataset, kinds_for_card
from services.synth.identity import (
    ETHNICITIES,
    ID_WEIGHTS,
    LONG_TERM,
    REFERENCE_DATE,
    SyntheticIdentity,
    add_years,
    age_on,
    generate_identity,
    id_check_character,
    validity_years,
)
from services.synth.portrait import MIT_PHOTOS, default_faces_dir, shared_data_dir
from services.synth.regions import county_by_code
from vision.layout import (
    CANONICAL_HEIGHT,
    CANONICAL_WIDTH,
    FRONT_VALUES,
    PORTRAIT_PHOTO,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures" / "idcards"
W, H = CANONICAL_WIDTH, CANONICAL_HEIGHT
Image8 = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def _fonts() -> None:
    try:
        fonts.cjk(20)
        fonts.mono(20)
    except fonts.FontNotFoundError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def faces_dir() -> Path:
    faces = default_faces_dir()
    if not (faces / "people").is_dir():
        pytest.skip(f"../shared/data/faces not found: {faces} (set SIMGATE_SHARED_DATA)")
    return faces


def _portrait() -> Image8:
    """A stand-in photo (no shared data needed): a dark head-and-shoulders blob on white."""
    photo = np.full((417, 295, 3), 255, np.uint8)
    cv2.ellipse(photo, (147, 170), (70, 95), 0, 0, 360, (60, 80, 110), -1)
    cv2.ellipse(photo, (147, 420), (140, 110), 0, 0, 360, (40, 40, 40), -1)
    return photo


@pytest.fixture(scope="module")
def identity() -> SyntheticIdentity:
    return generate_identity(random.Random(11))


@pytest.fixture(scope="module")
def front(_fonts: None, identity: SyntheticIdentity) -> Image8:
    return render_front(identity, _portrait(), random.Random(1))


@pytest.fixture(scope="module")
def back(_fonts: None, identity: SyntheticIdentity) -> Image8:
    return render_back(identity, random.Random(2))


# --- Identities --------------------------------------------------------------------------


def test_check_character_matches_the_standard_example() -> None:
    # The worked example of GB 11643-1999.
    assert id_check_character("11010519491231002") == "X"
    assert len(ID_WEIGHTS) == 17


def test_same_seed_gives_the_same_identity() -> None:
    assert generate_identity(random.Random(5)) == generate_identity(random.Random(5))
    assert generate_identity(random.Random(5)) != generate_identity(random.Random(6))


def test_identities_are_internally_consistent() -> None:
    people = [generate_identity(random.Random(seed)) for seed in range(400)]
    for person in people:
        number = person.id_number
        assert len(number) == 18
        assert number[-1] == id_check_character(number[:17])
        assert ric.is_valid(number), number  # also checks the region existed at birth
        assert number[6:14] == person.birth_date.strftime("%Y%m%d")
        assert (int(number[16]) % 2 == 1) == (person.sex == "男")
        county = county_by_code(number[:6])
        assert county is not None, number
        assert person.address.startswith(county.address_prefix)
        assert 12 <= len(person.address) <= 40
        assert person.ethnicity in ETHNICITIES
        assert person.authority.endswith(("公安局", "分局"))
        years = validity_years(age_on(person.birth_date, person.valid_from))
        if years is None:
            assert person.valid_to == LONG_TERM
        else:
            assert person.valid_to == add_years(person.valid_from, years)
        assert dt.date(2004, 1, 1) <= person.valid_from < REFERENCE_DATE
    assert len(ETHNICITIES) == len(set(ETHNICITIES)) == 56
    expired = sum(person.is_expired() for person in people)
    assert 0.01 * len(people) <= expired <= 0.12 * len(people)
    han = sum(person.ethnicity == "汉" for person in people)
    assert 0.6 * len(people) <= han <= 0.8 * len(people)


def test_validity_text_is_printed_like_a_real_card() -> None:
    person = generate_identity(random.Random(3))
    text = person.validity_text
    assert text.startswith(person.valid_from.strftime("%Y.%m.%d") + "-")
    assert text.endswith("长期") == (person.valid_to == LONG_TERM)
    assert person.to_json()["birth_date"] == person.birth_date.isoformat()


# --- Cards -----------------------------------------------------------------------------


def test_render_is_deterministic(identity: SyntheticIdentity, front: Image8) -> None:
    assert front.shape == (H, W, 3)
    assert front.dtype == np.uint8
    again = render_front(identity, _portrait(), random.Random(1))
    assert again.tobytes() == front.tobytes()
    other = render_front(identity, _portrait(), random.Random(99))
    assert other.tobytes() != front.tobytes()
    assert (
        render_back(identity, random.Random(2)).tobytes()
        == render_back(identity, random.Random(2)).tobytes()
    )


def test_value_ink_stays_inside_the_value_regions(front: Image8) -> None:
    # Near-black pixels are value ink (labels are blue-grey, the photo is excluded).
    dark = cv2.cvtColor(front, cv2.COLOR_BGR2GRAY) < 60
    x0, y0, x1, y1 = PORTRAIT_PHOTO.to_pixels(W, H)
    dark[y0:y1, x0:x1] = False
    allowed = np.zeros_like(dark)
    for region in FRONT_VALUES.values():
        rx0, ry0, rx1, ry1 = region.to_pixels(W, H)
        allowed[ry0:ry1, rx0:rx1] = True
    assert dark.sum() > 2000
    assert not (dark & ~allowed).any()
    for name, region in FRONT_VALUES.items():
        rx0, ry0, rx1, ry1 = region.to_pixels(W, H)
        assert dark[ry0:ry1, rx0:rx1].sum() > 50, f"no ink in {name}"


def test_back_carries_the_emblem_and_the_title(back: Image8) -> None:
    b, g, r = (back[..., i].astype(int) for i in range(3))
    red = (r > 150) & (g < 80) & (b < 80)
    assert red[: H // 2, : W // 4].sum() > 1000  # the emblem stand-in, top left
    dark = cv2.cvtColor(back, cv2.COLOR_BGR2GRAY) < 80
    assert dark[int(0.1 * H) : int(0.38 * H), int(0.3 * W) :].sum() > 3000  # the title


# --- Captures --------------------------------------------------------------------------


def _local_contrast(image: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    small = cv2.resize(image, (250, 158), interpolation=cv2.INTER_AREA)
    high = small - cv2.GaussianBlur(small, (0, 0), 6)
    return np.asarray(cv2.GaussianBlur(high, (0, 0), 1.0), np.float32)


def _agreement(photo: Image8, quad: npt.NDArray[np.float64], card: Image8) -> float:
    """Correlation between the card and the photo rectified through ``quad``, in-frame only."""
    target = np.array([[0, 0], [W, 0], [W, H], [0, H]], np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    rectified = cv2.warpPerspective(photo, matrix, (W, H))
    inside = cv2.warpPerspective(np.ones(photo.shape[:2], np.float32), matrix, (W, H))
    a = _local_contrast(cv2.cvtColor(rectified, cv2.COLOR_BGR2GRAY).astype(np.float32))
    b = _local_contrast(cv2.cvtColor(card, cv2.COLOR_BGR2GRAY).astype(np.float32))
    mask = cv2.resize(inside, (250, 158), interpolation=cv2.INTER_AREA) > 0.99
    mask = cv2.erode(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    a, b = a[mask], b[mask]
    return float(((a - a.mean()) * (b - b.mean())).mean() / (a.std() * b.std() + 1e-6))


@pytest.mark.parametrize("kind", list(CaptureKind))
def test_every_kind_photographs_the_card_where_its_quad_says(
    kind: CaptureKind, front: Image8, back: Image8
) -> None:
    for side, card in (("front", front), ("back", back)):
        shot = capture(card, kind, random.Random(f"{kind}-{side}"))
        assert shot.image.dtype == np.uint8
        assert shot.image.ndim == 3
        assert shot.image.shape[2] == 3
        assert shot.kind is kind
        assert 50 <= shot.jpeg_quality <= 95
        quad = np.array(shot.quad, np.float64)
        assert quad.shape == (4, 2)
        height, width = shot.image.shape[:2]
        inside = (
            (quad[:, 0] >= -1) & (quad[:, 0] <= width) & (quad[:, 1] >= -1) & (quad[:, 1] <= height)
        )
        if kind is CaptureKind.CUT_OFF:
            assert not inside.all()
            assert 0.09 <= float(shot.params["cut_fraction"]) <= 0.31  # type: ignore[arg-type]
        else:
            assert inside.all(), (kind, quad)
        # Clockwise in image coordinates: TL, TR, BR, BL in reading order.
        assert cv2.contourArea(quad.astype(np.float32), oriented=True) > 0
        score = _agreement(shot.image, quad, card)
        assert score > 0.5, (kind, side, score)
        # A quad 8% of the card width off must agree clearly less.
        shifted = quad + (quad[1] - quad[0]) * 0.08
        assert _agreement(shot.image, shifted, card) < score - 0.15, (kind, side)


@pytest.mark.parametrize(
    "kind", [CaptureKind.PERSPECTIVE, CaptureKind.RECAPTURE, CaptureKind.LOW_RESOLUTION]
)
def test_captures_are_deterministic(kind: CaptureKind, front: Image8) -> None:
    first = capture(front, kind, random.Random(42))
    second = capture(front, kind, random.Random(42))
    assert first.image.tobytes() == second.image.tobytes()
    assert first.quad == second.quad
    assert first.params == second.params
    assert capture(front, kind, random.Random(43)).image.tobytes() != first.image.tobytes()


def test_rotated_kinds_turn_the_frame(front: Image8) -> None:
    for kind in (CaptureKind.ROT90, CaptureKind.ROT270):
        shot = capture(front, kind, random.Random(7))
        quad = np.array(shot.quad)
        top_edge = quad[1] - quad[0]
        # The card's top edge now runs mostly vertically.
        assert abs(top_edge[1]) > abs(top_edge[0])


def test_a_few_cards_cover_every_kind() -> None:
    kinds = list(CaptureKind)
    covered = {kind for i in range(8) for kind in kinds_for_card(7, i, kinds, 2)}
    assert covered == set(kinds)
    assert kinds_for_card(7, 3, kinds, 2) == kinds_for_card(7, 3, kinds, 2)
    assert kinds_for_card(7, 3, kinds, None) == tuple(kinds)


# --- Data sets (need the shared face photos) ---------------------------------------------


@pytest.mark.shared_data
def test_dataset_is_reproducible_and_complete(faces_dir: Path, tmp_path: Path) -> None:
    kinds = [CaptureKind.CLEAN, CaptureKind.GLARE]
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        paths = generate_dataset(out, count=2, seed=3, kinds=kinds, faces_dir=faces_dir, workers=1)
        runs.append(out)
        assert [p.name for p in paths] == [
            "card0000_clean.json",
            "card0000_glare.json",
            "card0001_clean.json",
            "card0001_glare.json",
        ]
    first, second = runs
    for path in sorted(first.iterdir()):
        assert path.read_bytes() == (second / path.name).read_bytes(), path.name
    lines = (first / MANIFEST_NAME).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    truth = json.loads(lines[1])
    assert truth["kind"] == "glare"
    assert truth["expected_warnings"] == ["quality.glare"]
    assert truth["portrait_source"].startswith("faces/people/")
    assert (shared_data_dir() / truth["portrait_source"]).is_file()
    for side in ("front", "back"):
        image = cv2.imread(str(first / truth[side]["path"]))
        assert image is not None
        assert [image.shape[1], image.shape[0]] == truth[side]["size"]


# --- Committed sample ------------------------------------------------------------------


def _fixture_truths() -> list[tuple[Path, dict[str, object]]]:
    return [
        (path, json.loads(path.read_text(encoding="utf-8")))
        for path in sorted(FIXTURES.glob("card*.json"))
    ]


def test_committed_fixtures_parse_and_reference_existing_files() -> None:
    truths = _fixture_truths()
    assert truths, f"no fixtures in {FIXTURES}"
    manifest = (FIXTURES / MANIFEST_NAME).read_text(encoding="utf-8").splitlines()
    assert len(manifest) == len(truths)
    mit_sources = {f"faces/{path}" for path in MIT_PHOTOS}
    kinds = set()
    total = 0
    for path, truth in truths:
        kind = CaptureKind(str(truth["kind"]))
        kinds.add(kind)
        assert truth["expected_warnings"] == list(EXPECTED_WARNINGS[kind])
        assert truth["portrait_source"] in mit_sources
        number = truth["identity"]["id_number"]  # type: ignore[index]
        assert ric.is_valid(number), path.name
        for side in ("front", "back"):
            entry = truth[side]
            image_path = FIXTURES / entry["path"]  # type: ignore[index]
            assert image_path.is_file(), image_path
            total += image_path.stat().st_size
            assert len(entry["quad"]) == 4  # type: ignore[index]
    assert kinds == set(CaptureKind)
    assert total < 4.5 * 1024 * 1024
