"""Tests for vision.idnumber. Every ID number here is synthetic (check char computed)."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import pytest
from stdnum.cn import ric

from vision.idnumber import (
    WEIGHTS,
    IdNumberCheck,
    check_character,
    correct_id_number,
    normalize_id_number,
    validate_id_number,
    validate_validity,
)

TODAY = date(2025, 6, 1)
BIRTH = date(1990, 3, 7)


def make_id(region: str = "110105", birth: str = "19900307", seq: str = "123") -> str:
    first17 = region + birth + seq
    return first17 + check_character(first17)


def id_with_check(char: str, region: str = "110105", birth: str = "19900307") -> str:
    """A synthetic number whose check character is ``char``."""
    for seq in range(1000):
        number = make_id(region, birth, f"{seq:03d}")
        if number[-1] == char:
            return number
    raise AssertionError(char)


GOOD = make_id()  # 110105199003071239: 北京市朝阳区, 1990-03-07, male
GOOD_X = id_with_check("X")


def test_weights_are_gb11643() -> None:
    assert WEIGHTS == tuple(2 ** (17 - i) % 11 for i in range(17))


@pytest.mark.parametrize(
    ("first17", "expected"),
    [
        pytest.param("0" * 17, "1", id="all-zeros"),
        pytest.param(GOOD[:17], GOOD[17], id="synthetic"),
        pytest.param(id_with_check("0")[:17], "0", id="check-0"),
        pytest.param(id_with_check("1")[:17], "1", id="check-1"),
        pytest.param(GOOD_X[:17], "X", id="check-X"),
        pytest.param("1" * 17, "0", id="all-ones"),  # sum of weights 100 = 1 mod 11
    ],
)
def test_check_character(first17: str, expected: str) -> None:
    assert check_character(first17) == expected


@pytest.mark.parametrize(
    "first17",
    [
        pytest.param("", id="empty"),
        pytest.param("1" * 16, id="short"),
        pytest.param("1" * 18, id="long"),
        pytest.param("1" * 16 + "X", id="x"),
        pytest.param("１" * 17, id="full-width"),
        pytest.param("²" * 17, id="superscript"),
    ],
)
def test_check_character_rejects_malformed(first17: str) -> None:
    with pytest.raises(ValueError, match="17 ASCII digits"):
        check_character(first17)


def test_check_character_agrees_with_stdnum() -> None:
    rng = random.Random(11643)
    for _ in range(500):
        first17 = "".join(rng.choice("0123456789") for _ in range(17))
        assert check_character(first17) == ric.calc_check_digit(first17 + "0")


def _flip_check(number: str) -> str:
    return number[:17] + ("0" if number[17] != "0" else "1")


@pytest.mark.parametrize(
    ("number", "kwargs", "errors"),
    [
        pytest.param("", {}, ("id_number.format",), id="empty"),
        pytest.param("   ", {}, ("id_number.format",), id="blank"),
        pytest.param(GOOD[:17], {}, ("id_number.format",), id="17-chars"),
        pytest.param(GOOD + "1", {}, ("id_number.format",), id="19-chars"),
        pytest.param("11010519900307ABCD", {}, ("id_number.format",), id="letters"),
        pytest.param("11010X199003071239", {}, ("id_number.format",), id="x-in-region"),
        pytest.param(GOOD_X[:16] + "X" + "1", {}, ("id_number.format",), id="x-not-last"),
        pytest.param(GOOD[:6] + "O" + GOOD[7:], {}, ("id_number.format",), id="letter-o"),
        pytest.param(GOOD, {}, (), id="valid"),
        pytest.param(GOOD_X, {}, (), id="valid-check-X"),
        pytest.param(GOOD_X.lower(), {}, (), id="lowercase-x"),
        pytest.param(f" {GOOD[:6]} {GOOD[6:14]}\t{GOOD[14:]}\n", {}, (), id="spaces"),
        pytest.param(
            GOOD.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
            {},
            (),
            id="fullwidth",
        ),
        pytest.param(id_with_check("0"), {}, (), id="check-0"),
        pytest.param(id_with_check("1"), {}, (), id="check-1"),
        pytest.param(_flip_check(GOOD), {}, ("id_number.checksum",), id="bad-check"),
        pytest.param(
            "0" * 17 + "1",
            {},
            ("id_number.region", "id_number.birth_date"),
            id="all-zeros-first17",
        ),
        pytest.param(make_id(birth="19920229"), {}, (), id="feb29-leap"),
        pytest.param(make_id(birth="19910229"), {}, ("id_number.birth_date",), id="feb29-not-leap"),
        pytest.param(make_id(birth="20000229"), {}, (), id="feb29-2000"),
        pytest.param(make_id(birth="19901301"), {}, ("id_number.birth_date",), id="month-13"),
        pytest.param(make_id(birth="19900300"), {}, ("id_number.birth_date",), id="day-0"),
        pytest.param(make_id(birth="18991231"), {}, ("id_number.birth_date",), id="1899"),
        pytest.param(make_id(birth="19000101"), {}, (), id="1900-01-01"),
        pytest.param(make_id(birth="20250601"), {}, (), id="born-today"),
        pytest.param(make_id(birth="20250602"), {}, ("id_number.birth_date",), id="born-tomorrow"),
        pytest.param(make_id(region="999999"), {}, ("id_number.region",), id="region-unknown"),
        pytest.param(make_id(region="119900"), {}, ("id_number.region",), id="county-unknown"),
        # 崇文区 (110103) was merged away in 2010: nobody born later can carry it.
        pytest.param(make_id(region="110103", birth="19850101"), {}, (), id="region-retired-ok"),
        pytest.param(
            make_id(region="110103", birth="20150101"),
            {},
            ("id_number.region",),
            id="region-retired-before-birth",
        ),
        # 房山区 (110111) dates from 1986; someone born 1980 was numbered later.
        pytest.param(
            make_id(region="110111", birth="19800101"), {}, (), id="region-newer-than-birth"
        ),
        pytest.param(
            GOOD, {"printed_birth_date": BIRTH, "printed_sex": "男"}, (), id="printed-agree"
        ),
        pytest.param(
            GOOD,
            {"printed_birth_date": date(1990, 3, 8)},
            ("id_number.birth_mismatch",),
            id="printed-birth-mismatch",
        ),
        pytest.param(
            GOOD, {"printed_sex": "女"}, ("id_number.sex_mismatch",), id="printed-sex-mismatch"
        ),
        pytest.param(GOOD, {"printed_sex": " 男 "}, (), id="printed-sex-padded"),
        pytest.param(
            GOOD, {"printed_sex": "未知"}, ("id_number.sex_mismatch",), id="printed-sex-garbage"
        ),
        pytest.param(
            _flip_check(GOOD),
            {"printed_birth_date": date(1991, 3, 7), "printed_sex": "女"},
            ("id_number.checksum", "id_number.birth_mismatch", "id_number.sex_mismatch"),
            id="everything-wrong",
        ),
    ],
)
def test_validate_id_number(number: str, kwargs: dict[str, Any], errors: tuple[str, ...]) -> None:
    result = validate_id_number(number, today=TODAY, **kwargs)

    assert result.errors == errors
    assert result.valid is (not errors)


def test_validate_id_number_fields() -> None:
    assert validate_id_number(GOOD, today=TODAY) == IdNumberCheck(
        number=GOOD,
        format_ok=True,
        checksum_ok=True,
        region_code="110105",
        region_name="北京市朝阳区",
        region_ok=True,
        birth_date=BIRTH,
        birth_date_ok=True,
        sex="男",
        errors=(),
    )


@pytest.mark.parametrize(
    ("seq", "sex"),
    [("001", "男"), ("002", "女"), ("999", "男"), ("000", "女"), ("110", "女"), ("117", "男")],
)
def test_sex_from_sequence_parity(seq: str, sex: str) -> None:
    assert validate_id_number(make_id(seq=seq), today=TODAY).sex == sex


def test_region_name_follows_renames() -> None:
    # 440305 was 南头区办事处 1983-1989, then 南山区.
    early = validate_id_number(make_id(region="440305", birth="19850101"), today=TODAY)
    late = validate_id_number(make_id(region="440305", birth="19950101"), today=TODAY)

    assert (early.region_name, late.region_name) == ("广东省南头区办事处", "广东省南山区")


def test_today_defaults_to_the_clock() -> None:
    tomorrow = (date.today() + timedelta(days=1)).strftime("%Y%m%d")

    assert validate_id_number(make_id(birth=tomorrow)).errors == ("id_number.birth_date",)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [("", ""), (" 1 2\u30003x ", "123X"), ("１２Ｘ", "12X"), ("abc", "abc")],
)
def test_normalize_id_number(raw: str, normalized: str) -> None:
    assert normalize_id_number(raw) == normalized


# --- correct_id_number ----------------------------------------------------------------

PRINTED = {"printed_birth_date": BIRTH, "printed_sex": "男"}
NO_PRINTED: dict[str, Any] = {"printed_birth_date": None, "printed_sex": None}


def _sub(number: str, pos: int, char: str) -> str:
    return number[:pos] + char + number[pos + 1 :]


@pytest.mark.parametrize(
    ("read", "kwargs"),
    [
        pytest.param("", PRINTED, id="empty"),
        pytest.param("abc", PRINTED, id="garbage"),
        pytest.param(GOOD[:17], PRINTED, id="17-chars-not-repaired"),
        pytest.param(GOOD, PRINTED, id="already-valid"),
        # A wrong sequence digit: the check char or another sequence digit fix it too.
        pytest.param(_sub(GOOD, 15, "3"), PRINTED, id="ambiguous-sequence-digit"),
        pytest.param(_sub(GOOD, 17, "0"), PRINTED, id="ambiguous-check-char"),
        # Substitution repairs need the printed birth date (measured 11-16 % wrong without).
        pytest.param(_sub(GOOD, 9, "1"), NO_PRINTED, id="substitution-needs-printed-birth"),
        pytest.param(
            _sub(GOOD, 9, "1"),
            {"printed_birth_date": None, "printed_sex": "男"},
            id="substitution-needs-printed-birth-not-sex",
        ),
        pytest.param("9" + GOOD[:9] + "5" + GOOD[9:], PRINTED, id="two-insertions"),
        # Dropping the stray 7 or the 1 before 2397 both validate: refuse, don't guess.
        pytest.param(GOOD + "7", NO_PRINTED, id="19-suffix-ambiguous-with-a-deletion"),
        pytest.param(GOOD + "7", PRINTED, id="19-suffix-ambiguous-even-with-printed"),
        pytest.param(GOOD + make_id(seq="124"), NO_PRINTED, id="two-numbers-merged"),
    ],
)
def test_correct_id_number_refuses(read: str, kwargs: dict[str, Any]) -> None:
    assert correct_id_number(read, today=TODAY, **kwargs) is None


@pytest.mark.parametrize(
    ("read", "kwargs", "position", "method", "considered"),
    [
        pytest.param(_sub(GOOD, 9, "1"), PRINTED, 9, "substitution", 17 * 9 + 10, id="birth-month"),
        pytest.param(_sub(GOOD, 13, "8"), PRINTED, 13, "substitution", 163, id="birth-day"),
        pytest.param(_sub(GOOD, 2, "1"), PRINTED, 2, "substitution", 163, id="region"),
        pytest.param(_sub(GOOD, 16, "4"), PRINTED, 16, "substitution", 163, id="sex-digit"),
        pytest.param("7" + GOOD, NO_PRINTED, 1, "window", 16, id="19-prefix"),
        pytest.param(GOOD + "5", NO_PRINTED, 0, "window", 16, id="19-suffix"),
        pytest.param(GOOD + "5", PRINTED, 0, "window", 16, id="19-suffix-printed"),
        pytest.param("公民身份号码" + GOOD, NO_PRINTED, 6, "window", 7, id="label-merged"),
        pytest.param("号" + GOOD + "住址", NO_PRINTED, 1, "window", 4, id="both-sides"),
        pytest.param(GOOD[:9] + "5" + GOOD[9:], PRINTED, 9, "deletion", 16, id="19-inserted-digit"),
        pytest.param(
            GOOD[:9] + "5" + GOOD[9:], NO_PRINTED, 9, "deletion", 16, id="19-inserted-no-printed"
        ),
    ],
)
def test_correct_id_number_unique_repair(
    read: str, kwargs: dict[str, Any], position: int, method: str, considered: int
) -> None:
    correction = correct_id_number(read, today=TODAY, **kwargs)

    assert correction is not None
    assert correction.corrected == GOOD
    assert (correction.original, correction.position, correction.method) == (
        normalize_id_number(read),
        position,
        method,
    )
    assert correction.candidates_considered == considered


@pytest.mark.parametrize("start", range(2))
def test_correct_id_number_tries_every_window_of_a_19_char_read(start: int) -> None:
    """The true number at either window of a 19-character read is found."""
    read = (GOOD + "5") if start == 0 else ("5" + GOOD)

    correction = correct_id_number(read, **NO_PRINTED, today=TODAY)

    assert correction is not None
    assert (correction.corrected, correction.position) == (GOOD, start)


# --- validate_validity ----------------------------------------------------------------


def _d(text: str) -> date:
    return date.fromisoformat(text)


@pytest.mark.parametrize(
    ("valid_from", "valid_to", "birth", "today", "errors", "expected_years"),
    [
        pytest.param(None, None, None, TODAY, ("validity.missing",), None, id="empty"),
        pytest.param(None, "2030-01-01", None, TODAY, ("validity.missing",), None, id="no-from"),
        pytest.param("2020-01-01", None, None, TODAY, ("validity.missing",), None, id="no-to"),
        pytest.param(
            "2020-01-01", "2030-01-01", None, TODAY, (), None, id="no-birth-no-period-check"
        ),
        pytest.param(
            "2020-01-01",
            "2019-01-01",
            None,
            TODAY,
            ("validity.inconsistent", "validity.expired"),
            None,
            id="to-before-from",
        ),
        pytest.param(
            "2020-01-01",
            "2020-01-01",
            None,
            TODAY,
            ("validity.inconsistent", "validity.expired"),
            None,
            id="to-equals-from",
        ),
        pytest.param(
            "2020-01-01",
            "2030-01-01",
            "2021-01-01",
            TODAY,
            ("validity.inconsistent",),
            None,
            id="issued-before-birth",
        ),
        pytest.param(
            "2025-06-02",
            "2045-06-02",
            "1995-01-01",
            TODAY,
            ("validity.not_yet_valid",),
            20,
            id="starts-tomorrow",
        ),
        pytest.param("2025-06-01", "2045-06-01", "1995-01-01", TODAY, (), 20, id="starts-today"),
        # Age boundaries, birth 2000-06-15: 15 -> 5 years, 16 -> 10 years.
        pytest.param(
            "2016-06-14", "2021-06-14", "2000-06-15", _d("2020-01-01"), (), 5, id="age15-5y"
        ),
        pytest.param(
            "2016-06-14",
            "2026-06-14",
            "2000-06-15",
            _d("2020-01-01"),
            ("validity.period_mismatch",),
            5,
            id="age15-10y",
        ),
        pytest.param(
            "2016-06-15", "2026-06-15", "2000-06-15", _d("2020-01-01"), (), 10, id="age16-10y"
        ),
        pytest.param(
            "2016-06-15",
            "2021-06-15",
            "2000-06-15",
            _d("2020-01-01"),
            ("validity.period_mismatch",),
            10,
            id="age16-5y",
        ),
        # birth 1990-03-10: 25 -> 10 years, 26 -> 20 years.
        pytest.param("2016-03-09", "2026-03-09", "1990-03-10", TODAY, (), 10, id="age25-10y"),
        pytest.param("2016-03-10", "2036-03-10", "1990-03-10", TODAY, (), 20, id="age26-20y"),
        pytest.param(
            "2016-03-10",
            "2026-03-10",
            "1990-03-10",
            _d("2020-01-01"),
            ("validity.period_mismatch",),
            20,
            id="age26-10y",
        ),
        # birth 1970-01-20: 45 -> 20 years, 46 -> long-term.
        pytest.param("2016-01-19", "2036-01-19", "1970-01-20", TODAY, (), 20, id="age45-20y"),
        pytest.param(
            "2016-01-19",
            "long-term",
            "1970-01-20",
            TODAY,
            ("validity.period_mismatch",),
            20,
            id="age45-long-term",
        ),
        pytest.param(
            "2016-01-20", "long-term", "1970-01-20", TODAY, (), None, id="age46-long-term"
        ),
        pytest.param("2016-01-20", "长期", "1970-01-20", TODAY, (), None, id="age46-长期"),
        pytest.param(
            "2016-01-20",
            "2036-01-20",
            "1970-01-20",
            TODAY,
            ("validity.period_mismatch",),
            None,
            id="age46-20y",
        ),
        pytest.param(
            "2016-01-20",
            "2036-01-21",
            "1985-01-20",
            TODAY,
            ("validity.period_mismatch",),
            20,
            id="day-of-month-differs",
        ),
        pytest.param("2016-02-29", "2026-02-28", "1995-01-01", TODAY, (), 10, id="feb29-to-feb28"),
        pytest.param("2016-02-29", "2026-03-01", "1995-01-01", TODAY, (), 10, id="feb29-to-mar1"),
        pytest.param("2016-02-29", "2036-02-29", "1985-01-01", TODAY, (), 20, id="feb29-to-feb29"),
        pytest.param(
            "2016-02-29",
            "2036-03-01",
            "1985-01-01",
            TODAY,
            ("validity.period_mismatch",),
            20,
            id="feb29-leap-target-must-be-feb29",
        ),
        # Expiry: valid through valid_to itself.
        pytest.param("2005-06-01", "2025-06-01", "1975-01-01", TODAY, (), 20, id="last-day"),
        pytest.param(
            "2005-05-31",
            "2025-05-31",
            "1975-01-01",
            TODAY,
            ("validity.expired",),
            20,
            id="expired-day-after",
        ),
        pytest.param(
            "1995-05-31", "long-term", "1940-01-01", TODAY, (), None, id="long-term-never-expires"
        ),
    ],
)
def test_validate_validity(
    valid_from: str | None,
    valid_to: str | None,
    birth: str | None,
    today: date,
    errors: tuple[str, ...],
    expected_years: int | None,
) -> None:
    to: date | str | None = valid_to
    if valid_to is not None and valid_to[0].isdigit():
        to = _d(valid_to)

    result = validate_validity(
        _d(valid_from) if valid_from else None,
        to,
        birth_date=_d(birth) if birth else None,
        today=today,
    )

    assert result.errors == errors
    assert result.valid is (not errors)
    assert result.expected_years == expected_years
    assert result.long_term is (isinstance(to, str))


def test_validate_validity_reports_age() -> None:
    result = validate_validity(
        _d("2016-06-14"), _d("2021-06-14"), birth_date=_d("2000-06-15"), today=_d("2020-01-01")
    )

    assert (result.age_at_issue, result.valid_to) == (15, _d("2021-06-14"))


@pytest.mark.parametrize("valid_to", ["", "forever", "2030-01-01"])
def test_validate_validity_rejects_unknown_strings(valid_to: str) -> None:
    with pytest.raises(ValueError, match="long-term"):
        validate_validity(_d("2020-01-01"), valid_to, birth_date=None, today=TODAY)
