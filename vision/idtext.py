"""Pure text parsing of ID-card fields: OCR strings in, normalised values out.

No pixels and no OCR engine here, so every rule is testable with plain strings (the
PassportEye split between ``mrz/image.py`` and ``mrz/text.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache

from vision import layout

# The 56 officially recognised ethnic groups, as printed on the card (without 族).
ETHNICITIES: tuple[str, ...] = (
    "汉", "蒙古", "回", "藏", "维吾尔", "苗", "彝", "壮", "布依", "朝鲜", "满", "侗", "瑶",
    "白", "土家", "哈尼", "哈萨克", "傣", "黎", "傈僳", "佤", "畲", "高山", "拉祜", "水",
    "东乡", "纳西", "景颇", "柯尔克孜", "土", "达斡尔", "仫佬", "羌", "布朗", "撒拉",
    "毛南", "仡佬", "锡伯", "阿昌", "普米", "塔吉克", "怒", "乌孜别克", "俄罗斯", "鄂温克",
    "德昂", "保安", "裕固", "京", "塔塔尔", "独龙", "鄂伦春", "赫哲", "门巴", "珞巴", "基诺",
)  # fmt: skip

LONG_TERM = "long-term"

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff"
_CJK_RE = re.compile(f"[{_CJK}]")
# Characters that zhconv would "simplify" although they are valid simplified-Chinese
# name and place characters (乾 would become 干).
_PROTECTED = frozenset("乾著瞭鍾藉徵")
# OCR confusions inside the digit-only ID number.
_DIGIT_FIXES = str.maketrans(
    {"O": "0", "o": "0", "D": "0", "Q": "0", "I": "1", "l": "1", "|": "1", "i": "1",
     "Z": "2", "z": "2", "S": "5", "s": "5", "B": "8", "G": "6", "x": "X", "×": "X",
     "ｘ": "X", "Ｘ": "X"}
)  # fmt: skip


_DATE_FIXES = str.maketrans("OoIl", "0011")


@cache
def _to_simplified(ch: str) -> str:
    import zhconv

    out = zhconv.convert(ch, "zh-cn")
    return out if len(out) == 1 else ch


def simplify(text: str) -> str:
    """Traditional -> simplified, per character, keeping protected characters.

    PP-OCR reads a lone 汉 as 漢 on a quarter of cards (measurements 2); a card printed
    in mainland China only uses simplified characters.
    """
    return "".join(
        ch if ch in _PROTECTED or not _CJK_RE.match(ch) else _to_simplified(ch) for ch in text
    )


def strip_label(text: str, label: str) -> str:
    """Drop a field label (and any partial OCR of it) merged into the value box."""
    t = "".join(text.split()) if _CJK_RE.search(text) else text.strip()
    if t.startswith(label):
        return t[len(label) :].strip(" :：")
    # A clipped crop keeps only the label's tail ("发机关..." for 签发机关).
    for k in range(1, len(label) - 1):
        if t.startswith(label[k:]) and len(t) > len(label) - k + 1:
            return t[len(label) - k :].strip(" :：")
    # The detector sometimes merges only the label's last character ("名沈秀").
    if len(label) >= 2 and t.startswith(label[-1]) and len(t) > 2:
        return t[1:].strip(" :：")
    return t


def parse_name(text: str) -> str | None:
    """CJK characters (and the middle dot of transliterated minority names)."""
    t = simplify(strip_label(text, "姓名"))
    t = t.replace("•", "·").replace(".", "·").replace("・", "·")
    name = "".join(ch for ch in t if _CJK_RE.match(ch) or ch == "·").strip("·")
    return name if 1 <= len(name) <= 20 else None


def parse_sex(text: str) -> str | None:
    t = strip_label(text, "性别")
    has_m, has_f = "男" in t, "女" in t
    if has_m == has_f:
        return None
    return "男" if has_m else "女"


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def parse_ethnicity(text: str) -> str | None:
    """Map to the closed list of 56 ethnicities (exact, then edit distance 1)."""
    t = simplify(strip_label(text, "民族"))
    t = "".join(ch for ch in t if _CJK_RE.match(ch))
    if t.endswith("族") and len(t) > 1:
        t = t[:-1]
    if not t:
        return None
    if t in ETHNICITIES:
        return t
    # One leading character from the neighbouring label (族 read as 东) leaks into a
    # slightly misaligned crop: the rest is then an exact ethnicity.
    if len(t) >= 2 and t[1:] in ETHNICITIES:
        return t[1:]
    close = [e for e in ETHNICITIES if _edit_distance(t, e) <= 1 and len(e) > 1]
    return close[0] if len(close) == 1 else None


_DATE_RE = re.compile(r"(\d{4})\D{0,3}?(\d{1,2})\D{0,3}?(\d{1,2})")


def parse_birth_date(text: str) -> date | None:
    """``1990年3月7日`` (any separators) -> date."""
    t = strip_label(text, "出生").translate(_DIGIT_FIXES)
    m = _DATE_RE.search(t)
    if not m:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def parse_address(lines: Sequence[str]) -> str | None:
    """Join the address lines; keep CJK, digits, Latin letters and a few symbols."""
    parts = []
    for i, line in enumerate(lines):
        t = strip_label(line, "住址") if i == 0 else line.strip()
        parts.append(simplify(t).replace(" ", ""))
    # A label split into single-character boxes survives strip_label; no address
    # starts with 住 or 址.
    addr = "".join(parts).lstrip("住址止:：")
    addr = re.sub(f"[^{_CJK}0-9A-Za-z\\-—()（）#·]", "", addr)
    return addr or None


def parse_id_number(text: str) -> str | None:
    """The 18-character number: 17 digits and a digit or X, OCR confusions repaired."""
    t = strip_label(text, "公民身份号码").replace(" ", "").translate(_DIGIT_FIXES).upper()
    m = re.search(r"\d{17}[\dX]", t)
    if m and len(re.sub(r"[^\dX]", "", t)) == 18:
        return m.group(0)
    digits = re.sub(r"[^\dX]", "", t)
    return digits if digits else None


def parse_authority(text: str) -> str | None:
    t = simplify(strip_label(text, "签发机关")).replace(" ", "").replace("签发机关", "")
    t = "".join(ch for ch in t if _CJK_RE.match(ch) or ch.isalnum())
    return t if len(t) >= 2 else None


_VALIDITY_RE = re.compile(
    r"(\d{4})[.\-/·,，]?(\d{2})[.\-/·,，]?(\d{2})\s*[-—–~至_一]+\s*(?:(\d{4})[.\-/·,，]?(\d{2})[.\-/·,，]?(\d{2})|(长期|長期))"
)


@dataclass(frozen=True, slots=True)
class ValidityPeriod:
    valid_from: date
    valid_to: date | str  # a date or LONG_TERM


def parse_validity(text: str) -> ValidityPeriod | None:
    """``2015.03.01-2035.03.01`` or ``2015.03.01-长期``."""
    t = strip_label(text, "有效期限").replace(" ", "")
    t = t.translate(_DATE_FIXES)
    m = _VALIDITY_RE.search(t)
    if not m:
        return None
    try:
        start = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if m.group(7):
            return ValidityPeriod(start, LONG_TERM)
        end = date(int(m.group(4)), int(m.group(5)), int(m.group(6)))
    except ValueError:
        return None
    return ValidityPeriod(start, end)


@dataclass(frozen=True, slots=True)
class PositionedText:
    """A recognised line with its box centre/extent in card fractions."""

    text: str
    score: float
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def cy(self) -> float:
        return (self.y0 + self.y1) / 2


def _lines_in(
    lines: Sequence[PositionedText], region: layout.Region, *, min_overlap: float = 0.5
) -> list[PositionedText]:
    out = []
    for line in lines:
        h = max(line.y1 - line.y0, 1e-6)
        overlap_y = max(0.0, min(line.y1, region.y1) - max(line.y0, region.y0)) / h
        overlap_x = min(line.x1, region.x1) - max(line.x0, region.x0)
        if overlap_y >= min_overlap and overlap_x > 0:
            out.append(line)
    return sorted(out, key=lambda t: (round(t.cy, 2), t.x0))


def parse_front_lines(lines: Sequence[PositionedText]) -> dict[str, tuple[str | None, float]]:
    """Label-tolerant parse of detected lines of an upright front (the fallback path).

    Uses the layout regions loosely (values may carry merged labels); the ID number is
    searched in every line because it is self-validating.
    """
    out: dict[str, tuple[str | None, float]] = {}

    def region(name: str) -> layout.Region:
        r = layout.FRONT_VALUES[name]
        label = layout.FRONT_LABELS[name]
        return layout.Region(label.x0, r.y0, r.x1, r.y1)

    def joined(name: str) -> tuple[str, float]:
        found = _lines_in(lines, region(name))
        if not found:
            return "", 0.0
        return "".join(t.text for t in found), min(t.score for t in found)

    text, score = joined("name")
    out["name"] = (parse_name(text), score)
    sex_eth = _lines_in(lines, layout.Region(0.05, 0.19, 0.62, 0.31))
    sex_text = "".join(t.text for t in sex_eth if t.x0 < 0.30)
    eth_text = "".join(t.text for t in sex_eth if t.x0 >= 0.28)
    sex_score = min((t.score for t in sex_eth), default=0.0)
    out["sex"] = (parse_sex(sex_text) or parse_sex("".join(t.text for t in sex_eth)), sex_score)
    eth_value = parse_ethnicity(eth_text.split("民族")[-1]) if eth_text else None
    if eth_value is None and "民族" in "".join(t.text for t in sex_eth):
        eth_value = parse_ethnicity("".join(t.text for t in sex_eth).split("民族")[-1])
    out["ethnicity"] = (eth_value, sex_score)
    text, score = joined("birth_date")
    birth = parse_birth_date(text)
    out["birth_date"] = (birth.isoformat() if birth else None, score)
    addr_lines = [
        t
        for t in _lines_in(lines, region("address"))
        if t.x1 > layout.FRONT_VALUES["address"].x0 + 0.02 and t.text.strip() not in _ADDRESS_LABELS
    ]
    out["address"] = (
        parse_address([t.text for t in addr_lines]),
        min((t.score for t in addr_lines), default=0.0),
    )
    number: tuple[str | None, float] = (None, 0.0)
    for line in sorted(lines, key=lambda t: -t.cy):
        candidate = parse_id_number(line.text)
        if candidate and len(candidate) == 18:
            number = (candidate, line.score)
            break
    out["id_number"] = number
    return out


def parse_back_lines(lines: Sequence[PositionedText]) -> dict[str, tuple[str | None, float]]:
    """Label-tolerant parse of detected lines of an upright back (the fallback path)."""
    out: dict[str, tuple[str | None, float]] = {}
    auth = [
        t
        for t in _lines_in(lines, layout.Region(0.15, 0.69, 0.96, 0.815))
        if "有效" not in t.text and "期限" not in t.text and not _VALIDITY_RE.search(t.text)
    ]
    auth.sort(key=lambda t: t.x0)  # one printed line: left to right
    out["authority"] = (
        parse_authority("".join(t.text for t in auth)),
        min((t.score for t in auth), default=0.0),
    )
    period: ValidityPeriod | None = None
    score = 0.0
    for line in lines:
        period = parse_validity(line.text)
        if period:
            score = line.score
            break
    out["valid_from"] = (period.valid_from.isoformat() if period else None, score)
    if period is None:
        out["valid_to"] = (None, 0.0)
    else:
        to = period.valid_to
        out["valid_to"] = (to if isinstance(to, str) else to.isoformat(), score)
    return out


def reading_order(lines: Sequence[PositionedText]) -> list[PositionedText]:
    """Sort lines into rows (by vertical overlap), then left to right."""
    rows: list[list[PositionedText]] = []
    for line in sorted(lines, key=lambda t: t.cy):
        if rows:
            last = rows[-1]
            ref = last[0]
            height = max(ref.y1 - ref.y0, line.y1 - line.y0, 1e-6)
            if abs(line.cy - ref.cy) < 0.5 * height:
                last.append(line)
                continue
        rows.append([line])
    return [t for row in rows for t in sorted(row, key=lambda t: t.x0)]


_ADDRESS_LABELS = frozenset({"住", "址", "住址"})
_FRONT_LABELS = ("姓名", "性别", "民族", "出生", "住址", "公民身份号码")


def parse_free_text(lines: Sequence[PositionedText]) -> dict[str, tuple[str | None, float]]:
    """Layout-free parse: anchor on the printed labels in reading order.

    Works on lines from any coordinate system (a whole photo included), so it is the
    parser of the naive baseline and the last resort of the reader.
    """
    ordered = reading_order(lines)
    text = "".join(t.text.replace(" ", "") for t in ordered)
    text = simplify(text)
    score = min((t.score for t in ordered), default=0.0)
    out: dict[str, tuple[str | None, float]] = {}

    def between(start: str, ends: Sequence[str]) -> str:
        i = text.find(start)
        if i < 0:
            return ""
        rest = text[i + len(start) :]
        cut = min((rest.find(e) for e in ends if rest.find(e) >= 0), default=len(rest))
        return rest[:cut]

    if any(label in text for label in _FRONT_LABELS) or re.search(r"\d{17}[\dXx]", text):
        out["name"] = (parse_name(between("姓名", ("性别", "民族", "出生"))), score)
        sex_eth = between("性别", ("出生", "住址"))
        out["sex"] = (parse_sex(sex_eth.split("民族")[0]), score)
        out["ethnicity"] = (parse_ethnicity(between("民族", ("出生", "住址"))), score)
        birth = parse_birth_date(between("出生", ("住址", "公民")))
        out["birth_date"] = (birth.isoformat() if birth else None, score)
        out["address"] = (parse_address([between("住址", ("公民身份", "身份号码"))]), score)
        number = None
        for line in ordered:
            candidate = parse_id_number(line.text)
            if candidate and len(candidate) == 18:
                number = candidate
        out["id_number"] = (number, score)
    if "签发机关" in text or "有效期限" in text or _VALIDITY_RE.search(text):
        out["authority"] = (parse_authority(between("签发机关", ("有效期限",))), score)
        period = parse_validity(between("有效期限", ()) or text)
        out["valid_from"] = (period.valid_from.isoformat() if period else None, score)
        to = period.valid_to if period else None
        out["valid_to"] = (
            (to if isinstance(to, str) else to.isoformat()) if to is not None else None,
            score,
        )
    return out
