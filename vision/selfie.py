"""The handheld-selfie check (R5): is the face in the selfie the face on the scanned card,
and is the card held up in the selfie the card that was scanned?

Steps:

1. Faces in the whole selfie (HOG, :mod:`vision.face`).
2. The held card: :func:`vision.card.find_card` on the whole selfie, then on the parts of
   it away from the largest face (a selfie's strongest quadrilateral is often the
   person's torso or the photo's own frame, not the small tilted card). A candidate is
   accepted only when, rectified, it shows the portrait side: a face in the layout's
   portrait area or a checksum-valid ID number.
3. Live faces = faces whose centre lies outside the held card; the largest is the
   applicant. Another live face at least :data:`COMPARABLE_WIDTH` as wide means a
   second person is posing: ``face.multiple``.
4. Three comparisons: live face vs scanned portrait (``selfie_vs_portrait``), held-card
   portrait vs scanned portrait (``portrait_vs_portrait``: the same printed photo, so a
   different card shows up even when it belongs to the same person), and the held
   card's ID number, where legible, vs the scanned one.

Reason codes: ``face.not_found``, ``face.multiple``, ``face.mismatch``,
``face.uncertain`` (gray zone: manual review), ``face.portrait_not_found`` (no face in
the scanned portrait), ``selfie.card_missing``, ``selfie.card_mismatch``,
``selfie.card_uncertain`` (held portrait in the gray zone and no legible number).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from vision import face, layout
from vision.card import CardDetection, classify_side, find_card, warp
from vision.face import Face, FaceBox
from vision.idcard import find_text_lines
from vision.idnumber import validate_id_number
from vision.idtext import parse_id_number
from vision.layout import Side
from vision.ocr import OcrEngine, get_engine
from vision.timing import StageTimer

Image = npt.NDArray[np.uint8]
Point = tuple[float, float]

# A second live face at least this wide relative to the largest one is a second person
# posing, not a passer-by in the background.
COMPARABLE_WIDTH = 0.6
MAX_POSING = 3  # faces encoded at most (each costs ~20 ms)
# The held card is at most this share of the selfie; a larger quad is the torso, a
# door or the photo's frame.
MAX_CARD_FRACTION = 0.5
# The portrait area is upscaled so that its face is well above HOG's 80 px window.
PORTRAIT_SCALE = 1.5
# Raw dlib distance cut-offs, used only while no face calibration file is installed.
_RAW_MATCH, _RAW_NO_MATCH = 0.5, 0.6


@dataclass(frozen=True, slots=True)
class MatchCheck:
    """One face comparison: calibrated score 0..1, raw dlib distance and the verdict."""

    verdict: str  # "match" | "gray" | "no_match"
    score: float
    distance: float
    use: str  # the threshold set applied


@dataclass(frozen=True, slots=True)
class NumberCheck:
    """The held card's ID number against the scanned one."""

    # "match" | "no_match" | "unreadable" (no checksum-valid number read) |
    # "not_checked" (no card, no scanned number, or reading switched off)
    verdict: str
    held: str | None  # as read (checksum-valid only)
    expected: str | None


@dataclass(frozen=True, slots=True)
class SelfieCheck:
    """Outcome of the handheld-selfie check; ``passed`` when no reason was raised."""

    face_match: MatchCheck | None  # live face vs scanned portrait
    card_portrait_match: MatchCheck | None  # held card's portrait vs scanned portrait
    card_number: NumberCheck
    live_face_box: FaceBox | None
    held_card_quad: tuple[Point, Point, Point, Point] | None  # TL, TR, BR, BL (reading)
    faces_found: int  # live faces, i.e. outside the held card
    reasons: tuple[str, ...]
    timings_ms: Mapping[str, float]
    # The applicant's live-face embedding: evidence, and what the national lookup may
    # compare with its own photo (no second encoding needed).
    live_face_encoding: face.Embedding | None = None
    # The scanned card's portrait embedding: the reference of later checks (door check,
    # video activation) without decoding the card again.
    scanned_portrait_encoding: face.Embedding | None = None

    @property
    def passed(self) -> bool:
        return not self.reasons


@dataclass(frozen=True, slots=True)
class _HeldCard:
    quad: npt.NDArray[np.float32]
    image: Image  # canonical, upright
    portrait: Face | None
    number: str | None


def _compare(a: face.Embedding, b: face.Embedding, use: str) -> MatchCheck:
    try:
        m = face.compare(a, b, use=use)
    except ValueError:
        # The calibration may not define this use: the default thresholds apply.
        try:
            m = face.compare(a, b, use="default")
        except (OSError, ValueError):
            return _raw_compare(a, b)
        use = "default"
    except OSError:
        return _raw_compare(a, b)
    return MatchCheck(m.verdict, m.score, m.distance, use)


def _raw_compare(a: face.Embedding, b: face.Embedding) -> MatchCheck:
    distance = float(np.linalg.norm(a - b))
    verdict = (
        "match" if distance < _RAW_MATCH else "no_match" if distance >= _RAW_NO_MATCH else "gray"
    )
    return MatchCheck(verdict, max(0.0, 1.0 - distance), distance, "raw_distance")


def _portrait_face(card: Image) -> Face | None:
    x0, y0, x1, y1 = layout.PORTRAIT_PHOTO.to_pixels(card.shape[1], card.shape[0])
    crop = np.ascontiguousarray(card[y0:y1, x0:x1])
    crop = np.asarray(
        cv2.resize(crop, None, fx=PORTRAIT_SCALE, fy=PORTRAIT_SCALE, interpolation=cv2.INTER_CUBIC),
        np.uint8,
    )
    return face.largest_face(crop)


def _read_number(card: Image, engine: OcrEngine) -> str | None:
    """The checksum-valid ID number printed on a rectified front, or None."""
    boxes = find_text_lines(card, layout.FRONT_VALUES["id_number"])
    if not boxes:
        return None
    x0, y0, x1, y1 = boxes[0]
    pad = max(4, round(0.25 * (y1 - y0)))
    h, w = card.shape[:2]
    crop = np.ascontiguousarray(
        card[max(0, y0 - pad) : min(h, y1 + pad), max(0, x0 - pad) : min(w, x1 + pad)]
    )
    text, _ = engine.recognize([crop])[0]
    number = parse_id_number(text)
    if number is None:
        return None
    check = validate_id_number(number)
    return check.number if check.format_ok and check.checksum_ok else None


def _inside(quad: npt.NDArray[np.float32], point: Point) -> bool:
    contour = quad.reshape(-1, 1, 2).astype(np.float32)
    return cv2.pointPolygonTest(contour, point, False) >= 0


def _centre(box: FaceBox) -> Point:
    return ((box.left + box.right) / 2, (box.top + box.bottom) / 2)


def _search_regions(
    shape: tuple[int, ...], faces: tuple[FaceBox, ...]
) -> Iterator[tuple[int, int, int, int]]:
    """The whole frame, then the parts away from the largest face (x0, y0, x1, y1)."""
    h, w = shape[:2]
    yield 0, 0, w, h
    if not faces:
        return
    top = faces[0]
    # Below the chin (the usual place of the hand), then either side of the head.
    yield 0, min(h - 1, top.bottom), w, h
    yield 0, 0, max(1, top.left), h
    yield min(w - 1, top.right), 0, w, h


def _examine(
    selfie: Image, detection: CardDetection, offset: Point, engine: OcrEngine | None
) -> _HeldCard | None:
    """Rectify a candidate; keep it when it shows the portrait side of an ID card."""
    quad = detection.quad + np.array(offset, np.float32)
    card = warp(selfie, quad)
    side, upside_down, _ = classify_side(card)
    if side is not Side.PORTRAIT:
        return None
    if upside_down:
        card = np.ascontiguousarray(card[::-1, ::-1])
        quad = np.roll(quad, 2, axis=0)
    portrait = _portrait_face(card)
    if portrait is None:
        # The side vote can be wrong on a small, blurred card: try the other way up.
        flipped = np.ascontiguousarray(card[::-1, ::-1])
        portrait = _portrait_face(flipped)
        if portrait is not None:
            card, quad = flipped, np.roll(quad, 2, axis=0)
    number = _read_number(card, engine) if engine is not None else None
    if portrait is None and number is None:
        return None
    return _HeldCard(quad=quad, image=card, portrait=portrait, number=number)


def _find_held_card(
    selfie: Image, faces: tuple[FaceBox, ...], engine: OcrEngine | None
) -> _HeldCard | None:
    frame_area = float(selfie.shape[0] * selfie.shape[1])
    tried: list[npt.NDArray[np.float32]] = []
    for x0, y0, x1, y1 in _search_regions(selfie.shape, faces):
        if min(x1 - x0, y1 - y0) < 64:
            continue
        region = np.ascontiguousarray(selfie[y0:y1, x0:x1])
        detection = find_card(region)
        if detection is None:
            continue
        quad = detection.quad + np.array((x0, y0), np.float32)
        if abs(cv2.contourArea(quad)) > MAX_CARD_FRACTION * frame_area:
            continue
        # The same quad found from another region needs no second look.
        if any(float(np.abs(np.sort(quad, axis=0) - np.sort(q, axis=0)).max()) < 8 for q in tried):
            continue
        tried.append(quad)
        held = _examine(selfie, detection, (float(x0), float(y0)), engine)
        if held is not None:
            return held
    return None


def check_selfie(
    selfie: Image,
    *,
    scanned_portrait: Image,
    scanned_id_number: str | None = None,
    read_held_number: bool = True,
    engine: OcrEngine | None = None,
) -> SelfieCheck:
    """Check a handheld selfie against the scanned card.

    :param selfie: the photo of the applicant holding the card's portrait side (BGR).
    :param scanned_portrait: the portrait area of the scanned front (BGR), e.g.
        :attr:`vision.idcard.SideReading.portrait`.
    :param scanned_id_number: the number read from the scanned front, if any.
    :param read_held_number: also OCR the held card's number (about 30-60 ms).
    """
    timer = StageTimer()
    timings = timer.ms
    lap = timer.lap

    reasons: list[str] = []
    scanned = face.largest_face(scanned_portrait)
    lap("scanned_portrait")
    boxes = face.detect_faces(selfie)
    lap("detect_faces")
    ocr = (engine or get_engine()) if read_held_number else None
    held = _find_held_card(selfie, boxes, ocr)
    lap("find_card")

    live = [b for b in boxes if held is None or not _inside(held.quad, _centre(b))]
    if held is not None and not live:
        # Only the printed portrait was found: the detector stops at the first scale
        # with a hit, so look again with the card painted out (it then upsamples).
        masked = selfie.copy()
        mean = tuple(float(v) for v in cv2.mean(selfie)[:3])
        cv2.fillConvexPoly(masked, held.quad.round().astype(np.int32), mean)
        live = [b for b in face.detect_faces(masked) if not _inside(held.quad, _centre(b))]
        lap("detect_faces")
    live_box = live[0] if live else None
    # Faces of comparable size: any of them may be the applicant's.
    posing = [b for b in live if b.width >= COMPARABLE_WIDTH * live[0].width][:MAX_POSING]
    if live_box is None:
        reasons.append("face.not_found")
    elif len(posing) > 1:
        reasons.append("face.multiple")
    if scanned is None:
        reasons.append("face.portrait_not_found")

    face_match: MatchCheck | None = None
    live_encoding: face.Embedding | None = None
    if live_box is not None and scanned is not None:
        # With two people posing, the applicant is the one who resembles the card most
        # (face.multiple is raised either way).
        for box in posing:
            encoding = face.encode_face(selfie, box)
            m = _compare(encoding, scanned.encoding, "selfie_vs_portrait")
            if face_match is None or m.score > face_match.score:
                face_match, live_box, live_encoding = m, box, encoding
        assert face_match is not None
        if face_match.verdict == "no_match":
            reasons.append("face.mismatch")
        elif face_match.verdict == "gray":
            reasons.append("face.uncertain")
    lap("live_face")

    card_match: MatchCheck | None = None
    number = NumberCheck("not_checked", None, scanned_id_number)
    if held is None:
        reasons.append("selfie.card_missing")
    else:
        if held.portrait is not None and scanned is not None:
            card_match = _compare(held.portrait.encoding, scanned.encoding, "portrait_vs_portrait")
        if read_held_number and scanned_id_number:
            expected = scanned_id_number.strip().upper()
            if held.number is None:
                number = NumberCheck("unreadable", None, expected)
            else:
                verdict = "match" if held.number == expected else "no_match"
                number = NumberCheck(verdict, held.number, expected)
        portrait_verdict = card_match.verdict if card_match else None
        if portrait_verdict == "no_match" or number.verdict == "no_match":
            reasons.append("selfie.card_mismatch")
        elif portrait_verdict != "match" and number.verdict != "match":
            # Neither the printed photo nor the number confirms it is the scanned card.
            reasons.append("selfie.card_uncertain")
    lap("compare")

    quad: tuple[Point, Point, Point, Point] | None = None
    if held is not None:
        p = [(round(float(x), 1), round(float(y), 1)) for x, y in held.quad]
        quad = (p[0], p[1], p[2], p[3])
    return SelfieCheck(
        face_match=face_match,
        card_portrait_match=card_match,
        card_number=number,
        live_face_box=live_box,
        held_card_quad=quad,
        faces_found=len(live),
        reasons=tuple(reasons),
        timings_ms={k: round(v, 1) for k, v in timings.items()},
        live_face_encoding=live_encoding,
        scanned_portrait_encoding=None if scanned is None else scanned.encoding,
    )
