"""Parser tables: empty and malformed input first, then the real shapes of OCR output."""

from __future__ import annotations

from datetime import date

import pytest

from vision import idtext
from vision.idtext import PositionedText


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", None),
        ("   ", None),
        ("12345", None),
        ("姓名", None),
        ("王小明", "王小明"),
        ("姓名王小明", "王小明"),
        ("名王小明", "王小明"),  # detector merged only the label's last character
        ("欧阳娜娜", "欧阳娜娜"),
        ("買買提•艾力", "买买提·艾力"),  # traditional read simplified, dot normalised
        ("王小明 ", "王小明"),
        ("乾坤", "乾坤"),  # protected: zhconv would turn 乾 into 干
    ],
)
def test_parse_name(raw: str, expected: str | None) -> None:
    assert idtext.parse_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", None),
        ("性别", None),
        ("男", "男"),
        ("女", "女"),
        ("性别女", "女"),
        ("男女", None),
        ("X", None),
    ],
)
def test_parse_sex(raw: str, expected: str | None) -> None:
    assert idtext.parse_sex(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", None),
        ("民族", None),
        ("汉", "汉"),
        ("漢", "汉"),  # PP-OCR reads a lone 汉 as 漢 on a quarter of cards
        ("汉族", "汉"),
        ("民族回", "回"),
        ("维吾尔", "维吾尔"),
        ("维吾儿", "维吾尔"),  # one misread character, unique in the closed list
        ("东汉", "汉"),  # the neighbouring label's 族 leaked in, read as 东
        ("东乡", "东乡"),
        ("仏佬", None),  # one edit from both 仫佬 and 仡佬: ambiguous, not guessed
        ("火星", None),
    ],
)
def test_parse_ethnicity(raw: str, expected: str | None) -> None:
    assert idtext.parse_ethnicity(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", None),
        ("年月日", None),
        ("1990年3月7日", date(1990, 3, 7)),
        ("出生1990年 3 月 7 日", date(1990, 3, 7)),
        ("1990年13月7日", None),
        ("2000年2月29日", date(2000, 2, 29)),
        ("1900年2月29日", None),  # not a leap year
        ("199O年1O月2日", date(1990, 10, 2)),  # O read for 0
    ],
)
def test_parse_birth_date(raw: str, expected: date | None) -> None:
    assert idtext.parse_birth_date(raw) == expected


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([], None),
        ([""], None),
        (["住址北京市朝阳区", "建国路88号"], "北京市朝阳区建国路88号"),
        (["四川省南充市 高坪区", "东公园大道488号"], "四川省南充市高坪区东公园大道488号"),
        (["廣東省廣州市"], "广东省广州市"),
        (["住", "址北京市朝阳区"], "北京市朝阳区"),  # label split into single boxes
    ],
)
def test_parse_address(lines: list[str], expected: str | None) -> None:
    assert idtext.parse_address(lines) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", None),
        ("公民身份号码", None),
        ("11010519900307123X", "11010519900307123X"),
        ("11010519900307123x", "11010519900307123X"),
        ("1101051990O307123X", "11010519900307123X"),
        ("公民身份号码 110105 19900307 123X", "11010519900307123X"),
        ("1101051990030712", "1101051990030712"),  # too short: returned for repair/rejection
    ],
)
def test_parse_id_number(raw: str, expected: str | None) -> None:
    assert idtext.parse_id_number(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", None),
        ("有效期限", None),
        ("2015.03.01", None),
        ("2015.03.01-2035.03.01", (date(2015, 3, 1), date(2035, 3, 1))),
        ("有效期限2015.03.01-长期", (date(2015, 3, 1), idtext.LONG_TERM)),
        ("2015.03.01一2025.03.01", (date(2015, 3, 1), date(2025, 3, 1))),  # dash read as 一
        ("2015.02.30-2025.02.30", None),
    ],
)
def test_parse_validity(raw: str, expected: tuple[date, date | str] | None) -> None:
    period = idtext.parse_validity(raw)
    if expected is None:
        assert period is None
    else:
        assert period is not None
        assert (period.valid_from, period.valid_to) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", None), ("签发机关", None), ("签发机关北京市公安局朝阳分局", "北京市公安局朝阳分局")],
)
def test_parse_authority(raw: str, expected: str | None) -> None:
    assert idtext.parse_authority(raw) == expected


def _line(text: str, x0: float, y0: float, x1: float, y1: float) -> PositionedText:
    return PositionedText(text, 0.99, x0, y0, x1, y1)


def test_parse_front_lines_empty() -> None:
    parsed = idtext.parse_front_lines([])
    assert all(value is None for value, _ in parsed.values())


def test_parse_front_lines_merged_labels() -> None:
    lines = [
        _line("姓名沈秀", 0.06, 0.10, 0.30, 0.17),
        _line("性别女", 0.06, 0.21, 0.22, 0.29),
        _line("民族漢", 0.30, 0.21, 0.46, 0.29),
        _line("出生1988年12月1日", 0.06, 0.33, 0.50, 0.40),
        _line("住址浙江省杭州市西湖区", 0.06, 0.44, 0.60, 0.51),
        _line("文三路100号", 0.18, 0.53, 0.40, 0.60),
        _line("公民身份号码", 0.06, 0.81, 0.29, 0.88),
        _line("330106198812010024", 0.33, 0.80, 0.93, 0.89),
    ]
    parsed = {k: v for k, (v, _) in idtext.parse_front_lines(lines).items()}
    assert parsed == {
        "name": "沈秀",
        "sex": "女",
        "ethnicity": "汉",
        "birth_date": "1988-12-01",
        "address": "浙江省杭州市西湖区文三路100号",
        "id_number": "330106198812010024",
    }


def test_parse_free_text_any_coordinates() -> None:
    # Lines from a whole photo: pixel coordinates, clutter around the card.
    lines = [
        _line("TOTAL 555-0134", 10, 5, 300, 40),
        _line("姓名", 400, 300, 480, 340),
        _line("沈秀", 520, 300, 620, 340),
        _line("性别女", 400, 380, 520, 420),
        _line("民族汉", 600, 380, 720, 420),
        _line("出生1988年12月1日", 400, 460, 800, 500),
        _line("住址浙江省杭州市西湖区", 400, 540, 900, 580),
        _line("文三路100号", 520, 600, 760, 640),
        _line("公民身份号码", 400, 800, 600, 840),
        _line("330106198812010024", 650, 800, 1200, 840),
    ]
    parsed = {k: v for k, (v, _) in idtext.parse_free_text(lines).items()}
    assert parsed["name"] == "沈秀"
    assert parsed["sex"] == "女"
    assert parsed["ethnicity"] == "汉"
    assert parsed["birth_date"] == "1988-12-01"
    assert parsed["address"] == "浙江省杭州市西湖区文三路100号"
    assert parsed["id_number"] == "330106198812010024"


def test_parse_back_lines() -> None:
    lines = [
        _line("中华人民共和国", 0.30, 0.12, 0.93, 0.20),
        _line("签发机关", 0.20, 0.73, 0.37, 0.80),
        _line("杭州市公安局西湖分局", 0.38, 0.72, 0.80, 0.80),
        _line("有效期限2010.05.06-2030.05.06", 0.20, 0.84, 0.82, 0.91),
    ]
    parsed = {k: v for k, (v, _) in idtext.parse_back_lines(lines).items()}
    assert parsed == {
        "authority": "杭州市公安局西湖分局",
        "valid_from": "2010-05-06",
        "valid_to": "2030-05-06",
    }
