"""Inspection reports (R8): counts and rates against the channel, the CSV and the SVG chart."""

from __future__ import annotations

import csv
import datetime as dt
import io
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy.orm import Session, sessionmaker

from services.inspection import (
    CSV_COLUMNS,
    MAX_PERIOD_DAYS,
    PeriodError,
    agent_report,
    chart_svg,
    report_csv,
    resolve_period,
)
from tests.unit.channel_rows import DAY0, agent, at, order, sessions

__all__ = ["sessions"]  # the fixture
SVG = "{http://www.w3.org/2000/svg}"
END = DAY0 + dt.timedelta(days=6)  # a week


def seed(sessions: sessionmaker[Session]) -> tuple[str, str]:
    """Agent A: 10 orders, 8 decided (6 approved, 2 rejected), 2 still checking.
    Agent B: 10 orders, all approved. Plus orders just outside the week."""
    with sessions() as session, session.begin():
        a = agent(session, "A <&> shop")
        b = agent(session, "B")
        for i in range(6):
            order(session, a, at(0, 9 + i), notes=["quality.blur"])
        order(session, a, at(1, 9), outcome="rejected", reasons=["face.mismatch"])
        order(
            session,
            a,
            at(1, 10),
            outcome="rejected",
            reasons=["face.mismatch", "lookup.photo_mismatch"],
        )
        order(session, a, at(6, 23.99), outcome=None)  # the last minutes of the period
        order(session, a, at(6, 23.5), outcome=None)
        order(session, a, at(7, 0), outcome="rejected", reasons=["document.expired"])  # after
        order(session, a, at(-1, 23.9), outcome="rejected", reasons=["document.expired"])
        for i in range(10):
            order(session, b, at(i % 7, 12))
    return a, b


def test_counts_rates_and_channel_comparison(sessions: sessionmaker[Session]) -> None:
    a, _b = seed(sessions)
    with sessions() as session:
        rep = agent_report(session, a, DAY0, END)
    assert rep["agent"]["id"] == a
    assert rep["period"]["days"] == 7
    assert (rep["orders"], rep["decided"], rep["undecided"]) == (10, 8, 2)
    assert rep["outcomes"]["approved"] == {"count": 6, "rate": 0.75}
    assert rep["outcomes"]["rejected"] == {"count": 2, "rate": 0.25}
    assert rep["outcomes"]["needs_review"] == {"count": 0, "rate": 0.0}
    assert rep["rejection_rate"] == 0.25
    # A code counts once per order; notes are not reasons.
    assert rep["reasons"] == {
        "face.mismatch": {"count": 2, "rate": 0.25},
        "lookup.photo_mismatch": {"count": 1, "rate": 0.125},
    }
    ch = rep["channel"]
    assert (ch["agents"], ch["orders"], ch["decided"]) == (2, 20, 18)
    assert ch["orders_per_agent"] == 10.0
    assert ch["rejection_rate"] == round(2 / 18, 4)
    cmp = rep["comparison"]
    assert cmp["rejection_rate"] == {
        "agent": 0.25,
        "channel": round(2 / 18, 4),
        "delta": round(0.25 - round(2 / 18, 4), 4),
    }
    assert cmp["volume"]["ratio"] == 1.0
    assert cmp["reasons"]["face.mismatch"]["channel"] == round(2 / 18, 4)


def test_daily_series_is_zero_filled(sessions: sessionmaker[Session]) -> None:
    a, _ = seed(sessions)
    with sessions() as session:
        rep = agent_report(session, a, DAY0, END)
    days = rep["daily"]
    assert [d["day"] for d in days] == [(DAY0 + dt.timedelta(days=i)).isoformat() for i in range(7)]
    assert [d["orders"] for d in days] == [6, 2, 0, 0, 0, 0, 2]
    assert days[1] == {
        "day": days[1]["day"],
        "orders": 2,
        "decided": 2,
        "rejected": 2,
        "rejection_rate": 1.0,
    }
    assert days[2]["rejection_rate"] is None  # nothing decided that day
    assert days[6]["decided"] == 0
    assert sum(d["orders"] for d in rep["channel"]["daily"]) == 20


def test_unknown_agent(sessions: sessionmaker[Session]) -> None:
    seed(sessions)
    with sessions() as session, pytest.raises(KeyError):
        agent_report(session, "agt_nobody", DAY0, END)


def test_resolve_period() -> None:
    today = dt.date(2026, 11, 30)
    assert resolve_period(None, None, today=today) == (dt.date(2026, 11, 1), today)
    assert resolve_period("2026-10-01", "2026-10-31") == (
        dt.date(2026, 10, 1),
        dt.date(2026, 10, 31),
    )
    assert resolve_period("2026-11-29", None, today=today) == (dt.date(2026, 11, 29), today)
    first = dt.date(2025, 1, 1)
    last = first + dt.timedelta(days=MAX_PERIOD_DAYS - 1)
    assert resolve_period(first.isoformat(), last.isoformat()) == (first, last)
    for bad in (
        ("2026-11-02", "2026-11-01"),  # reversed
        (first.isoformat(), (last + dt.timedelta(days=1)).isoformat()),  # too long
        ("2026-11-1", "2026-11-30"),
        ("yesterday", None),
    ):
        with pytest.raises(PeriodError):
            resolve_period(*bad, today=today)


def test_csv_parses_and_matches_the_report(sessions: sessionmaker[Session]) -> None:
    a, _ = seed(sessions)
    with sessions() as session:
        rep = agent_report(session, a, DAY0, END)
    rows = list(csv.DictReader(io.StringIO(report_csv(rep))))
    assert tuple(rows[0]) == CSV_COLUMNS
    by = {(r["section"], r["name"]): r for r in rows}
    assert by[("summary", "orders")]["agent_count"] == "10"
    assert by[("summary", "orders")]["channel_count"] == "20"
    rej = by[("outcome", "rejected")]
    assert (rej["agent_count"], rej["agent_rate"], rej["channel_count"]) == ("2", "0.25", "2")
    assert float(rej["rate_delta"]) == pytest.approx(0.25 - 2 / 18, abs=1e-3)
    assert by[("reason", "lookup.photo_mismatch")]["agent_rate"] == "0.125"
    day_rows = [r for r in rows if r["section"] == "day"]
    assert len(day_rows) == 7
    assert day_rows[2]["agent_rate"] == ""  # no rate on a day with nothing decided
    assert [int(r["agent_count"]) for r in day_rows] == [6, 2, 0, 0, 0, 0, 2]


def test_svg_is_well_formed_with_one_bar_a_day(sessions: sessionmaker[Session]) -> None:
    a, _ = seed(sessions)
    with sessions() as session:
        rep = agent_report(session, a, DAY0, END)
    svg = chart_svg(rep)
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    title = root.find(f"{SVG}title")
    assert title is not None
    assert title.text is not None
    assert title.text.startswith("A <&> shop (NO-A <&> shop)")  # escaped in the file
    assert "<&>" not in svg
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]
    assert len(bars) == 7
    heights = [float(b.get("height", "0")) for b in bars]
    assert heights[0] > heights[1] > 0
    assert heights[2] == 0
    paths = [p for p in root.iter(f"{SVG}path") if p.get("class") == "rejection-rate"]
    assert len(paths) == 1
    # Days with a rate: 0 (0 %) and 1 (100 %); the line breaks after them.
    assert paths[0].get("d", "").count("M") == 1
    assert paths[0].get("d", "").count("L") == 1
    dashed = [x for x in root.iter(f"{SVG}line") if x.get("class") == "channel-average"]
    assert len(dashed) == 1
    assert dashed[0].get("stroke-dasharray")


def test_svg_of_an_empty_period(sessions: sessionmaker[Session]) -> None:
    a, _ = seed(sessions)
    with sessions() as session:
        far = DAY0 + dt.timedelta(days=100)
        rep = agent_report(session, a, far, far + dt.timedelta(days=29))
    root = ET.fromstring(chart_svg(rep))
    assert len([r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]) == 30
    assert not [x for x in root.iter(f"{SVG}line") if x.get("class") == "channel-average"]
    assert rep["rejection_rate"] is None
    assert rep["orders"] == 0


def test_cli_period_forms() -> None:
    from services.inspect_cli import parse_period

    assert parse_period("2026-11-01..2026-11-30") == ("2026-11-01", "2026-11-30")
    assert parse_period("2026-02") == ("2026-02-01", "2026-02-28")
    assert parse_period("2028-02") == ("2028-02-01", "2028-02-29")
    assert parse_period("2026-11-05") == ("2026-11-05", "2026-11-05")
    for bad in ("March", "2026-13", "2026-11-01..", "2026/11/01"):
        with pytest.raises(ValueError, match="--period"):
            parse_period(bad)
