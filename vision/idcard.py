"""Read a Chinese resident ID card from phone photos: fields, checks, warnings.

Fast path (per side): find + rectify the card (``vision.card``), locate the ink of each
value region of the known layout, and recognise only those crops. A front costs about
seven recogniser calls (~0.2 s CPU) instead of a detection pass plus ~14 recognitions.
When the fast path's result does not validate (ID checksum, birth date or sex against
the number, a field missing), the side is re-read with the detector on the rectified
card and a label-tolerant parser, and the better reading is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import cv2
import numpy as np
import numpy.typing as npt

from vision import idtext, layout
from vision.card import RectifiedCard, flip, rectify_card
from vision.idnumber import correct_id_number, validate_id_number, validate_validity
from vision.layout import Side
from vision.ocr import OcrEngine, get_engine
from vision.quality import QualityReport, assess_quality
from vision.timing import StageTimer

Image = npt.NDArray[np.uint8]

FRONT_FIELDS = ("name", "sex", "ethnicity", "birth_date", "address", "id_number")
BACK_FIELDS = ("authority", "valid_from", "valid_to")
ALL_FIELDS = FRONT_FIELDS + BACK_FIELDS


@dataclass(frozen=True, slots=True)
class FieldReading:
    """One field's value with the recogniser's confidence (0..1) and how it was read."""

    value: str | None
    confidence: float
    # "roi" (layout crop) | "detect" (detector fallback) | "corrected" (unique repair of
    # the number) | "number" (unreadable, taken from the validated number)
    source: str


@dataclass(frozen=True, slots=True)
class SideReading:
    """What one photo showed."""

    side: Side
    side_confidence: float
    rotation: int
    fields: Mapping[str, FieldReading]
    card: RectifiedCard
    quality: QualityReport
    path: str  # "fast" or "fallback"
    timings_ms: Mapping[str, float]

    @property
    def portrait(self) -> Image | None:
        """The ID photo cropped from the rectified front (None for the back)."""
        if self.side is not Side.PORTRAIT:
            return None
        x0, y0, x1, y1 = layout.PORTRAIT_PHOTO.to_pixels(
            self.card.image.shape[1], self.card.image.shape[0]
        )
        return np.ascontiguousarray(self.card.image[y0:y1, x0:x1])


@dataclass(frozen=True, slots=True)
class IdCardReading:
    """Merged reading of one card from one or two photos."""

    sides: tuple[SideReading, ...]
    fields: Mapping[str, FieldReading]
    checks: Mapping[str, bool]
    warnings: tuple[str, ...]
    errors: tuple[str, ...]
    corrections: tuple[Mapping[str, str | int], ...] = ()
    timings_ms: Mapping[str, float] = field(default_factory=dict)

    @property
    def front(self) -> SideReading | None:
        return next((s for s in self.sides if s.side is Side.PORTRAIT), None)

    @property
    def back(self) -> SideReading | None:
        return next((s for s in self.sides if s.side is Side.EMBLEM), None)

    def value(self, name: str) -> str | None:
        f = self.fields.get(name)
        return f.value if f else None


# --- locating ink inside a layout region ----------------------------------------------


def _ink_mask(gray: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Dark strokes against the *local* background (guilloche and glare stay out).

    The background is the grey closing of the region (strokes are thinner than the
    kernel), so a shadow or light gradient across the card does not turn a whole area
    into "ink" or wash a line out.
    """
    background = cv2.dilate(gray, np.ones((1, 31), np.uint8))
    background = cv2.dilate(background, np.ones((15, 1), np.uint8))
    background = cv2.blur(background, (15, 15))
    depth = background.astype(np.int16) - gray.astype(np.int16)
    contrast = float(np.percentile(depth, 99))
    return np.asarray(depth > max(28.0, 0.42 * contrast))


def _bands(profile: npt.NDArray[np.float64], min_value: float, gap: int) -> list[tuple[int, int]]:
    """Runs where ``profile > min_value``, merging runs separated by ``< gap``."""
    on = np.flatnonzero(profile > min_value)
    if on.size == 0:
        return []
    bands: list[tuple[int, int]] = []
    start = prev = int(on[0])
    for i in on[1:]:
        i = int(i)
        if i - prev > gap:
            bands.append((start, prev + 1))
            start = i
        prev = i
    bands.append((start, prev + 1))
    return bands


def find_text_lines(
    card: Image, region: layout.Region, *, max_lines: int = 1, min_height: int = 10
) -> list[tuple[int, int, int, int]]:
    """Bounding boxes ``(x0, y0, x1, y1)`` in card pixels of text lines in ``region``.

    Rows with ink form line bands; the ``max_lines`` bands with most ink are kept in
    top-to-bottom order, each trimmed horizontally to its ink.
    """
    h, w = card.shape[:2]
    x0, y0, x1, y1 = region.to_pixels(w, h)
    # Smoothing first: a screen's scan lines or a photocopy's toner grain would
    # otherwise put "ink" on every other row and merge all lines into one band.
    gray = np.asarray(
        cv2.GaussianBlur(cv2.cvtColor(card[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY), (0, 0), 1.2),
        dtype=np.uint8,
    )
    ink = _ink_mask(gray)
    rows = ink.sum(axis=1).astype(np.float64)
    floor = max(1.0, 0.03 * float(rows.max(initial=0.0)))
    # Gaps inside a line (between strokes of 三 or 室) are short; between lines long.
    bands = [b for b in _bands(rows, floor, 7) if b[1] - b[0] >= min_height]
    if not bands:
        return []
    masses = [float(rows[a:b].sum()) for a, b in bands]
    # Printed lines share one height; thinner bands are guilloche, dust or a neighbour's
    # descenders. A one-character last address line has little ink but full height.
    tallest = max(b - a for a, b in bands)
    candidates = [i for i, (a, b) in enumerate(bands) if b - a >= 0.6 * tallest]
    candidates.sort(key=lambda i: -masses[i])
    keep = sorted(candidates[:max_lines])
    boxes: list[tuple[int, int, int, int]] = []
    for k in keep:
        a, b = bands[k]
        cols = ink[a:b].sum(axis=0).astype(np.float64)
        col_bands = _bands(cols, 0.0, max(12, int(1.6 * (b - a))))
        if not col_bands:
            continue
        # Span every run with real ink: glare can wipe characters mid-line, and the
        # recogniser still reads faint strokes; only isolated specks are dropped.
        run_mass = [float(cols[c0:c1].sum()) for c0, c1 in col_bands]
        real = [cb for cb, m in zip(col_bands, run_mass, strict=True) if m >= 0.03 * max(run_mass)]
        best = (real[0][0], real[-1][1])
        if masses[k] < 0.02 * max(masses):
            continue
        boxes.append((x0 + best[0], y0 + a, x0 + best[1], y0 + b))
    return boxes


def _crop(card: Image, box: tuple[int, int, int, int]) -> Image:
    x0, y0, x1, y1 = box
    h, w = card.shape[:2]
    pad_y = max(4, round((y1 - y0) * 0.25))
    pad_x = max(6, round((y1 - y0) * 0.25))
    return np.ascontiguousarray(
        card[max(0, y0 - pad_y) : min(h, y1 + pad_y), max(0, x0 - pad_x) : min(w, x1 + pad_x)]
    )


# --- the two reading paths -------------------------------------------------------------


def _read_front_fast(card: Image, engine: OcrEngine) -> dict[str, FieldReading]:
    crops: list[Image] = []
    owners: list[str] = []
    for name in FRONT_FIELDS:
        max_lines = layout.ADDRESS_MAX_LINES if name == "address" else 1
        for box in find_text_lines(card, layout.FRONT_VALUES[name], max_lines=max_lines):
            crops.append(_crop(card, box))
            owners.append(name)
    texts = engine.recognize(crops)
    raw: dict[str, list[tuple[str, float]]] = {}
    for owner, result in zip(owners, texts, strict=True):
        raw.setdefault(owner, []).append(result)

    def one(name: str) -> tuple[str, float]:
        parts = raw.get(name, [])
        return "".join(t for t, _ in parts), min((s for _, s in parts), default=0.0)

    out: dict[str, FieldReading] = {}
    text, score = one("name")
    out["name"] = FieldReading(idtext.parse_name(text), score, "roi")
    text, score = one("sex")
    out["sex"] = FieldReading(idtext.parse_sex(text), score, "roi")
    text, score = one("ethnicity")
    out["ethnicity"] = FieldReading(idtext.parse_ethnicity(text), score, "roi")
    text, score = one("birth_date")
    birth = idtext.parse_birth_date(text)
    out["birth_date"] = FieldReading(birth.isoformat() if birth else None, score, "roi")
    parts = raw.get("address", [])
    out["address"] = FieldReading(
        idtext.parse_address([t for t, _ in parts]), min((s for _, s in parts), default=0.0), "roi"
    )
    text, score = one("id_number")
    out["id_number"] = FieldReading(idtext.parse_id_number(text), score, "roi")
    return out


def _read_back_fast(card: Image, engine: OcrEngine) -> dict[str, FieldReading]:
    boxes: dict[str, tuple[int, int, int, int]] = {}
    for name in ("authority", "validity"):
        found = find_text_lines(card, layout.BACK_VALUES[name])
        if found:
            boxes[name] = found[0]
    names = list(boxes)
    results = dict(
        zip(names, engine.recognize([_crop(card, boxes[n]) for n in names]), strict=True)
    )
    auth_text, auth_score = results.get("authority", ("", 0.0))
    authority = idtext.parse_authority(auth_text)
    if "authority" in boxes and authority and not authority.endswith("局"):
        # Every issuing authority is a 公安局 or 分局: a missing last character was
        # washed out (glare) and ink search stopped early. Re-read a wider crop once.
        x0, y0, x1, y1 = boxes["authority"]
        region_x1 = layout.BACK_VALUES["authority"].to_pixels(card.shape[1], card.shape[0])[2]
        wider = (x0, y0, min(region_x1, x1 + round(2.5 * (y1 - y0))), y1)
        text2, score2 = engine.recognize([_crop(card, wider)])[0]
        retry = idtext.parse_authority(text2)
        if retry and retry.endswith("局"):
            authority, auth_score = retry, score2
    val_text, val_score = results.get("validity", ("", 0.0))
    period = idtext.parse_validity(val_text)
    out = {"authority": FieldReading(authority, auth_score, "roi")}
    out.update(_period_fields(period, val_score, "roi"))
    return out


def _period_fields(
    period: idtext.ValidityPeriod | None, score: float, source: str
) -> dict[str, FieldReading]:
    if period is None:
        return {
            "valid_from": FieldReading(None, 0.0, source),
            "valid_to": FieldReading(None, 0.0, source),
        }
    to = period.valid_to
    return {
        "valid_from": FieldReading(period.valid_from.isoformat(), score, source),
        "valid_to": FieldReading(to if isinstance(to, str) else to.isoformat(), score, source),
    }


def _read_by_detection(card: Image, side: Side, engine: OcrEngine) -> dict[str, FieldReading]:
    h, w = card.shape[:2]
    lines = [
        idtext.PositionedText(t.text, t.score, t.x0 / w, t.y0 / h, t.x1 / w, t.y1 / h)
        for t in engine.read_lines(card)
    ]
    parsed = (
        idtext.parse_front_lines(lines) if side is Side.PORTRAIT else idtext.parse_back_lines(lines)
    )
    free = idtext.parse_free_text(lines)
    wanted = FRONT_FIELDS if side is Side.PORTRAIT else BACK_FIELDS
    out: dict[str, FieldReading] = {}
    for k in wanted:
        value, score = parsed.get(k, (None, 0.0))
        if not value:
            value, score = free.get(k, (None, 0.0))
        out[k] = FieldReading(value, score, "detect")
    return out


def front_problems(fields: Mapping[str, FieldReading]) -> list[str]:
    """Reasons a front reading is not self-consistent (empty list = consistent)."""
    problems = [f"missing.{n}" for n in FRONT_FIELDS if not fields.get(n, _EMPTY).value]
    number = fields.get("id_number", _EMPTY).value
    if number:
        birth = fields.get("birth_date", _EMPTY).value
        check = validate_id_number(
            number,
            printed_birth_date=date.fromisoformat(birth) if birth else None,
            printed_sex=fields.get("sex", _EMPTY).value,
        )
        problems.extend(check.errors)
    return problems


def back_problems(fields: Mapping[str, FieldReading]) -> list[str]:
    problems = [f"missing.{n}" for n in BACK_FIELDS if not fields.get(n, _EMPTY).value]
    authority = fields.get("authority", _EMPTY).value
    if authority and "公安" not in authority:
        problems.append("authority.implausible")
    return problems


_EMPTY = FieldReading(None, 0.0, "roi")


def _merge(
    primary: Mapping[str, FieldReading], secondary: Mapping[str, FieldReading]
) -> dict[str, FieldReading]:
    """Fill holes of ``primary`` from ``secondary``."""
    out = dict(primary)
    for k, v in secondary.items():
        if not out.get(k, _EMPTY).value and v.value:
            out[k] = v
    return out


def read_side(image: Image, *, engine: OcrEngine | None = None) -> SideReading:
    """Read one photo of one side of the card."""
    engine = engine or get_engine()
    timer = StageTimer()
    timings = timer.ms
    lap = timer.lap

    rect = rectify_card(image)
    lap("find_card")
    quality = assess_quality(image, rect)
    lap("quality")

    def fast(r: RectifiedCard) -> tuple[dict[str, FieldReading], list[str]]:
        if r.side is Side.PORTRAIT:
            f = _read_front_fast(r.image, engine)
            return f, front_problems(f)
        f = _read_back_fast(r.image, engine)
        return f, back_problems(f)

    fields, problems = fast(rect)
    lap("ocr_fast")
    path = "fast"
    if problems:
        # A wrong 180-degree vote leaves nothing readable in the number region.
        if rect.side is Side.PORTRAIT and fields["id_number"].value is None:
            flipped = flip(rect)
            f2, p2 = fast(flipped)
            if len(p2) < len(problems):
                rect, fields, problems = flipped, f2, p2
            lap("ocr_flip")
    if problems:
        detected = _read_by_detection(rect.image, rect.side, engine)
        d_problems = (
            front_problems(detected) if rect.side is Side.PORTRAIT else back_problems(detected)
        )
        if len(d_problems) < len(problems):
            fields, problems = _merge(detected, fields), d_problems
            path = "fallback"
        else:
            fields = _merge(fields, detected)
        lap("ocr_fallback")
    return SideReading(
        side=rect.side,
        side_confidence=rect.side_confidence,
        rotation=rect.rotation,
        fields=fields,
        card=rect,
        quality=quality,
        path=path,
        timings_ms=timings,
    )


def read_id_card(
    images: Sequence[Image],
    *,
    today: date | None = None,
    engine: OcrEngine | None = None,
    on_side: Callable[[SideReading], None] | None = None,
) -> IdCardReading:
    """Read one or two photos (front and/or back, any order) and validate the card."""
    today = today or date.today()
    sides = []
    for img in images:
        reading = read_side(img, engine=engine)
        sides.append(reading)
        if on_side:
            on_side(reading)
    return merge_sides(sides, today=today)


def merge_sides(sides: Sequence[SideReading], *, today: date) -> IdCardReading:
    """Combine side readings, validate across fields, and collect warnings."""
    fields: dict[str, FieldReading] = {}
    warnings: list[str] = []
    errors: list[str] = []
    seen = {s.side for s in sides}
    for s in sides:
        for k, v in s.fields.items():
            if v.value or k not in fields:
                fields[k] = v
        warnings.extend(w for w in s.quality.warnings if w not in warnings)
    if Side.PORTRAIT not in seen or Side.EMBLEM not in seen or len(sides) != len(seen):
        warnings.append("document.side_missing")
        # Also an error: a card whose front was never found (two photos both taken for
        # backs, say) would otherwise carry no error at all while its number is unread.
        errors.append("document.side_missing")

    checks: dict[str, bool] = {}
    number = fields.get("id_number", _EMPTY).value
    birth = fields.get("birth_date", _EMPTY).value
    birth_date = date.fromisoformat(birth) if birth else None
    corrections: list[dict[str, str | int]] = []
    if Side.PORTRAIT in seen:
        for n in FRONT_FIELDS:
            checks[f"{n}_read"] = bool(fields.get(n, _EMPTY).value)
        if number and not validate_id_number(number, today=today).checksum_ok:
            # Repair only when checksum + printed birth date + sex + region make it
            # unique, and never silently: the warning routes the order to review.
            fix = correct_id_number(
                number,
                printed_birth_date=birth_date,
                printed_sex=fields.get("sex", _EMPTY).value,
                today=today,
            )
            if fix is not None:
                corrections.append(
                    {
                        "field": "id_number",
                        "read": fix.original,
                        "corrected": fix.corrected,
                        "position": fix.position,
                        "method": fix.method,
                        "candidates_considered": fix.candidates_considered,
                    }
                )
                old = fields["id_number"]
                fields["id_number"] = FieldReading(fix.corrected, old.confidence, "corrected")
                number = fix.corrected
                warnings.append("document.number_corrected")
        if number and (not birth_date or not fields.get("sex", _EMPTY).value):
            # The number encodes birth date and sex. When the printed value is unreadable
            # (glare, a finger) and the number itself validates, report the encoded value,
            # marked as such: the cross-check of printed against encoded is then missing,
            # and the "_read" check stays false so the decision layer can see it.
            nc0 = validate_id_number(number, today=today)
            if nc0.checksum_ok and nc0.region_ok and nc0.birth_date_ok:
                if not birth_date and nc0.birth_date is not None:
                    birth_date = nc0.birth_date
                    fields["birth_date"] = FieldReading(birth_date.isoformat(), 0.0, "number")
                    warnings.append("document.field_from_number")
                if not fields.get("sex", _EMPTY).value and nc0.sex is not None:
                    fields["sex"] = FieldReading(nc0.sex, 0.0, "number")
                    if "document.field_from_number" not in warnings:
                        warnings.append("document.field_from_number")
        if number:
            nc = validate_id_number(
                number,
                printed_birth_date=birth_date,
                printed_sex=fields.get("sex", _EMPTY).value,
                today=today,
            )
            checks["id_number_format"] = nc.format_ok
            checks["id_number_checksum"] = nc.checksum_ok
            checks["id_number_region"] = nc.region_ok
            checks["id_number_birth_date"] = nc.birth_date_ok
            checks["birth_date_matches_number"] = "id_number.birth_mismatch" not in nc.errors
            checks["sex_matches_number"] = "id_number.sex_mismatch" not in nc.errors
            if not nc.valid:
                errors.append("document.number_invalid")
                errors.extend(e for e in nc.errors if e not in errors)
        else:
            errors.append("document.number_invalid")
    if Side.EMBLEM in seen:
        for n in BACK_FIELDS:
            checks[f"{n}_read"] = bool(fields.get(n, _EMPTY).value)
        vf, vt = fields.get("valid_from", _EMPTY).value, fields.get("valid_to", _EMPTY).value
        if vf and vt:
            vc = validate_validity(
                date.fromisoformat(vf),
                vt if vt == idtext.LONG_TERM else date.fromisoformat(vt),
                birth_date=birth_date,
                today=today,
            )
            checks["validity_consistent"] = not (
                {"validity.inconsistent", "validity.period_mismatch"} & set(vc.errors)
            )
            checks["not_expired"] = "validity.expired" not in vc.errors
            checks["already_valid"] = "validity.not_yet_valid" not in vc.errors
            if "validity.expired" in vc.errors:
                errors.append("document.expired")
            if not checks["validity_consistent"]:
                errors.append("document.fields_inconsistent")
            errors.extend(e for e in vc.errors if e not in errors)
    missing = [k for k, v in checks.items() if k.endswith("_read") and not v]
    if missing:
        errors.append("document.unreadable")
    timings: dict[str, float] = {}
    for s in sides:
        for stage, ms in s.timings_ms.items():
            timings[stage] = timings.get(stage, 0.0) + ms
    return IdCardReading(
        sides=tuple(sides),
        fields=fields,
        checks=checks,
        warnings=tuple(warnings),
        errors=tuple(errors),
        corrections=tuple(corrections),
        timings_ms=timings,
    )
