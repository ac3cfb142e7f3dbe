"""Real county-level region codes (GB/T 2260) with their province/city/county names.

The data is python-stdnum's ``cn/loc.dat`` (the same table ``stdnum.cn.ric`` checks
birth places against), so every generated ID number passes ``stdnum.cn.ric.validate``
and the printed address starts with the names that belong to its region code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

# Two-digit province codes left out: Taiwan, Hong Kong and Macau residents do not hold
# mainland resident ID cards.
_EXCLUDED_PROVINCES = frozenset({"71", "81", "82"})
# Municipalities directly under the central government: their "city" level is a
# placeholder (市辖区/县), and district police bureaus are 北京市公安局XX分局.
MUNICIPALITIES = frozenset({"11", "12", "31", "50"})
# Placeholder names for grouping rows, not real places.
_PLACEHOLDERS = frozenset({"市辖区", "县", "市区", "郊区"})

_LINE = re.compile(r'^(?P<indent>\s*)(?P<code>\d+)\s+(?P<key>province|county)="(?P<names>[^"]*)"')
_SPAN = re.compile(r"^\[(?P<start>\d*)-(?P<end>\d*)\](?P<name>.*)$")


@dataclass(frozen=True, slots=True)
class County:
    """A county-level division that exists today, with the year its code was first used."""

    code: str  # 6 digits
    province: str
    city: str  # "" for municipalities and province-administered counties
    county: str
    since: int  # first year the code denotes this county (0 when always)

    @property
    def address_prefix(self) -> str:
        """Province + city + county as printed at the start of an address."""
        return f"{self.province}{self.city}{self.county}"


def _current_name(names: str) -> tuple[str, int] | None:
    """The name still in use today (open-ended span) and the year it started, if any."""
    for part in names.split(","):
        match = _SPAN.match(part)
        if match is None:
            return part, 0
        if match["end"] == "":
            return match["name"], int(match["start"] or 0)
    return None


@cache
def counties() -> tuple[County, ...]:
    """All current county-level divisions, in code order."""
    text = resources.files("stdnum").joinpath("cn/loc.dat").read_text(encoding="utf-8")
    result: list[County] = []
    province = ""
    province_code = ""
    cities: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        if match["key"] == "province":
            province_code, province, cities = match["code"], match["names"], {}
            continue
        if province_code in _EXCLUDED_PROVINCES:
            continue
        current = _current_name(match["names"])
        if current is None:
            continue
        name, since = current
        code = match["code"]
        if code.endswith("00"):
            cities[code[:2]] = name
            continue
        city = cities.get(code[:2], "")
        if province_code in MUNICIPALITIES or city in _PLACEHOLDERS or "直辖" in city:
            city = ""
        if name in _PLACEHOLDERS or "办事处" in name or "直辖" in name:
            continue
        result.append(County(province_code + code, province, city, name, since))
    return tuple(result)


def county_by_code(code: str) -> County | None:
    """Look up a current county by its 6-digit code."""
    for county in counties():
        if county.code == code:
            return county
    return None
