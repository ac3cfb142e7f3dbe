"""Citizen ID number (GB 11643-1999) and validity-period checks: pure text, no pixels.

Layout of the 18 characters::

    110101 19900307 123 4
    region birth    seq check

* region: a GB/T 2260 county code, checked against python-stdnum's table
  (``stdnum/cn/loc.dat``: current and historical codes with the years they were in
  use, plus province-level, Hong Kong, Macau and Taiwan codes);
* birth date ``YYYYMMDD``;
* sequence: odd for men (男), even for women (女);
* check character: ``(12 - sum(d_i * w_i) mod 11) mod 11``, 10 written ``X``.

Every problem is reported as a stable code in ``errors`` (the ``id_number.*`` and
``validity.*`` families); callers map them to ``document.number_invalid`` etc.

The check character is an excellent *detector* and a poor *corrector* (measured: up
to 11-16 % of unique single-edit "repairs" are wrong). :func:`correct_id_number`
therefore only proposes a repair as evidence; see its docstring.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

Sex = Literal["男", "女"]
CorrectionMethod = Literal["substitution", "window", "deletion"]

WEIGHTS: Final[tuple[int, ...]] = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# Indexed by (weighted sum mod 11): equals (12 - s) mod 11 with 10 written X.
_CHECK_CHARS: Final = "10X98765432"

ID_LENGTH: Final = 18
MIN_BIRTH_YEAR: Final = 1900
LONG_TERM: Final = "long-term"
_LONG_TERM_SPELLINGS: Final = frozenset({LONG_TERM, "长期"})

_FORMAT_RE: Final = re.compile(r"[0-9]{17}[0-9X]")
_DIGITS: Final = "0123456789"


def check_character(first17: str) -> str:
    """Return the GB 11643-1999 check character (``"0"``-``"9"`` or ``"X"``).

    :param first17: exactly 17 ASCII digits.
    :raises ValueError: for anything else.
    """
    if len(first17) != 17 or not (first17.isascii() and first17.isdigit()):
        raise ValueError(f"expected 17 ASCII digits, got {first17!r}")
    total = sum(int(digit) * weight for digit, weight in zip(first17, WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def normalize_id_number(number: str) -> str:
    """NFKC-fold (full-width digits from OCR), drop all whitespace, upper-case ``x``."""
    folded = unicodedata.normalize("NFKC", number)
    return "".join(folded.split()).replace("x", "X")


@dataclass(frozen=True, slots=True)
class IdNumberCheck:
    """Result of :func:`validate_id_number`.

    :ivar number: the normalised input.
    :ivar format_ok: 18 characters, 17 ASCII digits then a digit or ``X``.
    :ivar checksum_ok: the check character matches.
    :ivar region_code: the first six characters when they are digits, else ``None``.
    :ivar region_name: e.g. ``"北京市东城区"``; ``None`` when the code is unknown.
    :ivar region_ok: the code is in the table and was in use in or after the birth year.
    :ivar birth_date: the encoded date when it is a real calendar date, else ``None``.
    :ivar birth_date_ok: a real date, not before 1900, not after ``today``.
    :ivar sex: from the sequence parity (odd 男, even 女); ``None`` if unreadable.
    :ivar errors: stable codes, empty when everything passed: ``id_number.format``,
        ``id_number.checksum``, ``id_number.region``, ``id_number.birth_date``,
        ``id_number.birth_mismatch``, ``id_number.sex_mismatch``.
    """

    number: str
    format_ok: bool
    checksum_ok: bool
    region_code: str | None
    region_name: str | None
    region_ok: bool
    birth_date: date | None
    birth_date_ok: bool
    sex: Sex | None
    errors: tuple[str, ...]

    @property
    def valid(self) -> bool:
        """``True`` when no check failed (printed-field cross-checks included)."""
        return not self.errors


@dataclass(frozen=True, slots=True)
class IdNumberCorrection:
    """A unique repair proposed by :func:`correct_id_number`. Evidence, not a fact.

    :ivar original: the normalised read (``position`` indexes into it).
    :ivar corrected: the only candidate that passed every check.
    :ivar position: the substituted or deleted index, or the window's start offset.
    :ivar method: ``"substitution"`` (one character replaced), ``"window"`` (an 18-character
        slice of a longer read; ``position`` is its start) or ``"deletion"`` (one
        character removed from inside a 19-character read).
    :ivar candidates_considered: distinct candidate numbers that were checked.
    """

    original: str
    corrected: str
    position: int
    method: CorrectionMethod
    candidates_considered: int


@dataclass(frozen=True, slots=True)
class ValidityCheck:
    """Result of :func:`validate_validity`.

    :ivar valid_from: first day of validity, as given.
    :ivar valid_to: last day of validity; ``None`` when long-term or missing.
    :ivar long_term: the card says 长期 (long-term).
    :ivar age_at_issue: completed years on ``valid_from``; ``None`` if unknown.
    :ivar expected_years: the period GB rules give that age (5, 10, 20), ``None`` for
        long-term or when the age is unknown.
    :ivar errors: stable codes, empty when valid: ``validity.missing``,
        ``validity.inconsistent``, ``validity.not_yet_valid``, ``validity.expired``,
        ``validity.period_mismatch``.
    """

    valid_from: date | None
    valid_to: date | None
    long_term: bool
    age_at_issue: int | None
    expected_years: int | None
    errors: tuple[str, ...]

    @property
    def valid(self) -> bool:
        """``True`` when no check failed."""
        return not self.errors


def validate_id_number(
    number: str,
    *,
    printed_birth_date: date | None = None,
    printed_sex: str | None = None,
    today: date | None = None,
) -> IdNumberCheck:
    """Check an ID number, and cross-check it with the fields printed on the card.

    :param number: the number as read; normalised with :func:`normalize_id_number`.
    :param printed_birth_date: the 出生 field; must equal the encoded date when given.
    :param printed_sex: the 性别 field (``"男"``/``"女"``); anything else given here
        counts as a mismatch.
    :param today: reference date for "not in the future"; defaults to ``date.today()``.
    :return: the per-part results and the list of failed checks; never raises.
    """
    today = today if today is not None else date.today()
    normalized = normalize_id_number(number)
    if not _FORMAT_RE.fullmatch(normalized):
        return IdNumberCheck(
            number=normalized,
            format_ok=False,
            checksum_ok=False,
            region_code=None,
            region_name=None,
            region_ok=False,
            birth_date=None,
            birth_date_ok=False,
            sex=None,
            errors=("id_number.format",),
        )

    errors: list[str] = []
    checksum_ok = check_character(normalized[:17]) == normalized[17]
    if not checksum_ok:
        errors.append("id_number.checksum")

    birth = _parse_date(normalized[6:14])
    birth_ok = birth is not None and MIN_BIRTH_YEAR <= birth.year and birth <= today
    region_code = normalized[:6]
    region = _lookup_region(region_code)
    region_name = region.name_for(birth.year if birth else None) if region else None
    region_ok = region is not None and region.in_use_since(
        birth.year if birth else None, until=today.year
    )
    if not region_ok:
        errors.append("id_number.region")
    if not birth_ok:
        errors.append("id_number.birth_date")
    if printed_birth_date is not None and birth != printed_birth_date:
        errors.append("id_number.birth_mismatch")

    sex: Sex = "男" if int(normalized[16]) % 2 == 1 else "女"
    if printed_sex is not None and printed_sex.strip() != sex:
        errors.append("id_number.sex_mismatch")

    return IdNumberCheck(
        number=normalized,
        format_ok=True,
        checksum_ok=checksum_ok,
        region_code=region_code,
        region_name=region_name,
        region_ok=region_ok,
        birth_date=birth,
        birth_date_ok=birth_ok,
        sex=sex,
        errors=tuple(errors),
    )


def correct_id_number(
    read: str,
    *,
    printed_birth_date: date | None,
    printed_sex: str | None,
    today: date | None = None,
) -> IdNumberCorrection | None:
    """Propose the single-edit repair of a misread ID number, if exactly one exists.

    Candidates:

    * 18-character read: every single-character substitution (digits anywhere, ``X``
      only in the last place). Only with ``printed_birth_date``: without it, 11-16 % of
      unique repairs were measured wrong, so ``None`` is returned.
    * 19 characters: every single deletion, i.e. the two 18-character windows (a
      neighbouring character merged into the box) and a character inserted
      mid-number. Deletions are included even though they are not windows because
      they can only make the result *more* often ambiguous: with windows alone, 17 %
      of unique repairs of randomly inserted digits were wrong in a simulation.
    * 20+ characters: every contiguous 18-character window (merged neighbouring text).

    A candidate survives when :func:`validate_id_number` passes it with the printed
    fields (checksum, known region, real birth date equal to the printed one, sex equal
    to the printed one). A correction is returned only when exactly one distinct
    candidate survives.

    **The result is evidence, never silent.** A caller that uses ``corrected`` must
    record that the number was repaired (method, position, original) and flag the
    verification for review or re-capture; prefer re-reading the ID crop differently.

    :param read: the OCR output; normalised with :func:`normalize_id_number`.
    :param printed_birth_date: the 出生 field, or ``None`` if it was not read.
    :param printed_sex: the 性别 field, or ``None`` if it was not read.
    :param today: reference date; defaults to ``date.today()``.
    :return: the unique repair, or ``None`` when the read already validates, when no
        or several candidates survive, or when substitution is not allowed.
    """
    today = today if today is not None else date.today()
    original = normalize_id_number(read)

    def passes(candidate: str) -> bool:
        return validate_id_number(
            candidate,
            printed_birth_date=printed_birth_date,
            printed_sex=printed_sex,
            today=today,
        ).valid

    if passes(original):
        return None

    candidates = _candidates(original, allow_substitution=printed_birth_date is not None)
    survivors = [candidate for candidate in candidates if passes(candidate)]
    if len(survivors) != 1:
        return None
    method, position = candidates[survivors[0]]
    return IdNumberCorrection(
        original=original,
        corrected=survivors[0],
        position=position,
        method=method,
        candidates_considered=len(candidates),
    )


def _candidates(read: str, *, allow_substitution: bool) -> dict[str, tuple[CorrectionMethod, int]]:
    """Distinct candidate numbers -> (method, position) for :func:`correct_id_number`."""
    found: dict[str, tuple[CorrectionMethod, int]] = {}
    if len(read) == ID_LENGTH and allow_substitution:
        for pos, current in enumerate(read):
            alphabet = _DIGITS + "X" if pos == ID_LENGTH - 1 else _DIGITS
            for char in alphabet:
                if char != current:
                    found.setdefault(read[:pos] + char + read[pos + 1 :], ("substitution", pos))
    elif len(read) == ID_LENGTH + 1:
        # The two windows are the deletions at either end; a mid-number deletion that
        # also validates makes the read ambiguous instead of letting a window win.
        found[read[1:]] = ("window", 1)
        found.setdefault(read[:-1], ("window", 0))
        for pos in range(1, ID_LENGTH):
            found.setdefault(read[:pos] + read[pos + 1 :], ("deletion", pos))
    elif len(read) > ID_LENGTH:
        for start in range(len(read) - ID_LENGTH + 1):
            found.setdefault(read[start : start + ID_LENGTH], ("window", start))
    return found


# Period by age at issue, Resident Identity Card Law art. 5: (max age, years).
_PERIODS: Final[tuple[tuple[int, int], ...]] = ((15, 5), (25, 10), (45, 20))


def validate_validity(
    valid_from: date | None,
    valid_to: date | str | None,
    *,
    birth_date: date | None,
    today: date,
) -> ValidityCheck:
    """Check the 有效期限 field on the emblem side.

    GB rules by age at issue (completed years on ``valid_from``): under 16, 5 years;
    16-25, 10 years; 26-45, 20 years; 46 and over, long-term. The end date must fall
    on the same month and day as the start (29 February may end on 28 February or
    1 March). A card is valid through ``valid_to`` itself.

    :param valid_from: first day of validity, ``None`` if unread.
    :param valid_to: last day, ``"long-term"``/``"长期"``, or ``None`` if unread.
    :param birth_date: from a validated ID number; without it the period length is
        not checked.
    :param today: reference date (required: expiry must not depend on the clock of
        whoever calls).
    :raises ValueError: when ``valid_to`` is a string other than the long-term ones.
    """
    long_term = False
    end: date | None = None
    if isinstance(valid_to, str):
        if valid_to.strip() not in _LONG_TERM_SPELLINGS:
            raise ValueError(f"valid_to must be a date or {LONG_TERM!r}, got {valid_to!r}")
        long_term = True
    else:
        end = valid_to

    errors: list[str] = []
    if valid_from is None or (end is None and not long_term):
        errors.append("validity.missing")
    if valid_from is not None and (
        (end is not None and end <= valid_from)
        or (birth_date is not None and valid_from < birth_date)
    ):
        errors.append("validity.inconsistent")
    if valid_from is not None and valid_from > today:
        errors.append("validity.not_yet_valid")
    if end is not None and end < today:
        errors.append("validity.expired")

    age = _age_on(birth_date, valid_from) if birth_date and valid_from else None
    expected: int | None = None
    if age is not None and valid_from is not None and age >= 0:
        expected = next((years for max_age, years in _PERIODS if age <= max_age), None)
        if expected is None:
            period_ok = long_term
        else:
            period_ok = end is not None and end in _anniversaries(valid_from, expected)
        if not period_ok and (long_term or end is not None):
            errors.append("validity.period_mismatch")

    return ValidityCheck(
        valid_from=valid_from,
        valid_to=end,
        long_term=long_term,
        age_at_issue=age,
        expected_years=expected,
        errors=tuple(errors),
    )


def _parse_date(yyyymmdd: str) -> date | None:
    try:
        return date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return None


def _age_on(birth: date, day: date) -> int:
    """Completed years of age on ``day`` (a 29 February birthday counts on 1 March)."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _anniversaries(start: date, years: int) -> frozenset[date]:
    """Dates ``years`` after ``start``; both neighbours when ``start`` is 29 February."""
    try:
        return frozenset({start.replace(year=start.year + years)})
    except ValueError:
        return frozenset({date(start.year + years, 2, 28), date(start.year + years, 3, 1)})


# --- Region table (python-stdnum) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _RegionName:
    name: str
    first_year: int | None  # None: in use before the table's history starts
    last_year: int | None  # None: still in use


@dataclass(frozen=True, slots=True)
class _Region:
    province: str
    names: tuple[_RegionName, ...]
    province_level: bool  # xx0000: the "county" is the province itself

    def in_use_since(self, birth_year: int | None, *, until: int) -> bool:
        """Was the code in use at some point between ``birth_year`` and ``until``?

        A number is assigned at or after birth (before 1999, often at 16), so a code
        created after the birth year is fine, and one retired before it is not.
        python-stdnum's own check (code in use *in* the birth year) would reject
        people registered after their county was renamed.
        """
        return any(
            (n.last_year is None or birth_year is None or n.last_year >= birth_year)
            and (n.first_year is None or n.first_year <= until)
            for n in self.names
        )

    def name_for(self, year: int | None) -> str:
        """Name in use in ``year`` (else the latest one), prefixed with the province."""
        chosen = self.names[-1]
        for n in self.names:
            if year is not None and (n.first_year or year) <= year <= (n.last_year or year):
                chosen = n
                break
        return chosen.name if self.province_level else self.province + chosen.name


_YEARS_RE: Final = re.compile(r"^\[(\d*)-(\d*)\](.*)$")


@functools.lru_cache(maxsize=8192)  # bounded: codes come from untrusted input
def _lookup_region(code: str) -> _Region | None:
    """Look up a 6-digit code in stdnum's ``cn/loc`` database (parsed once, lazily)."""
    from stdnum import numdb  # lazy: the table is ~7,000 lines

    parts = numdb.get("cn/loc").info(code)
    if len(parts) != 2 or len(parts[0][0]) != 2 or len(parts[1][0]) != 4:
        return None
    province = parts[0][1].get("province")
    county = parts[1][1].get("county")
    if not province or not county:
        return None
    names: list[_RegionName] = []
    for entry in county.split(","):
        match = _YEARS_RE.match(entry)
        if match:
            first, last, name = match.groups()
            names.append(
                _RegionName(name, int(first) if first else None, int(last) if last else None)
            )
        else:
            names.append(_RegionName(entry, None, None))
    return _Region(province=province, names=tuple(names), province_level=code.endswith("0000"))
