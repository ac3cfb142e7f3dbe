"""Channel inspection (R8): one agent's orders over a period, compared with the channel.

:func:`agent_report` counts, in SQL aggregates (``GROUP BY``), the agent's orders, their
outcomes and reason codes, rates, and a daily series, and the same numbers for the
whole channel (every agent) as the comparison. :func:`report_csv` and
:func:`chart_svg` render a report for a spreadsheet and a browser. No FastAPI and no
vision here: the API process imports this module.

Definitions (the same in the JSON, the CSV and the chart):

- a period is ``start``..``end``, whole UTC days, both included; an order belongs to the
  day it was *created* (``orders.created_at``);
- ``decided`` orders have an outcome; every rate is over decided orders (an undecided
  order has no outcome yet), ``None`` when nothing was decided;
- a reason code counts once per order (``reasons["reasons"]``, what drove the outcome;
  ``notes`` are not counted);
- ``rejection_rate`` = rejected / decided;
- ``channel`` = all agents' orders in the same period, this agent's included;
  ``delta`` = agent rate - channel rate.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections import Counter
from typing import Any, Final
from xml.sax.saxutils import escape, quoteattr

from sqlalchemy import ColumnElement, String, and_, case, cast, func, select
from sqlalchemy.orm import Session

from services.domain.states import Outcome
from services.storage.models import Agent, Order

MAX_PERIOD_DAYS: Final = 366
DEFAULT_PERIOD_DAYS: Final = 30
OUTCOMES: Final = tuple(o.value for o in Outcome)
CSV_COLUMNS: Final = (
    "section",
    "name",
    "agent_count",
    "agent_rate",
    "channel_count",
    "channel_rate",
    "rate_delta",
)


class PeriodError(ValueError):
    """A period that cannot be inspected (malformed, reversed or too long)."""


def parse_day(text: str) -> dt.date:
    """``YYYY-MM-DD`` exactly (PeriodError otherwise)."""
    try:
        if len(text) != 10:
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise PeriodError(f"expected a day as YYYY-MM-DD, got {text!r}") from None


def resolve_period(
    start: str | None, end: str | None, *, today: dt.date | None = None
) -> tuple[dt.date, dt.date]:
    """The period asked for: ``end`` defaults to today (UTC), ``start`` to
    ``DEFAULT_PERIOD_DAYS`` days ending on ``end``. PeriodError when ``start`` is after
    ``end`` or the period is longer than ``MAX_PERIOD_DAYS``."""
    last = parse_day(end) if end else (today or dt.datetime.now(dt.UTC).date())
    first = parse_day(start) if start else last - dt.timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    if first > last:
        raise PeriodError(f"the period starts ({first}) after it ends ({last})")
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise PeriodError(f"a period is at most {MAX_PERIOD_DAYS} days")
    return first, last


def bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """``[start 00:00, end + 1 day 00:00)`` in UTC."""
    lo = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    return lo, dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def days_of(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def rate(count: int, total: int) -> float | None:
    return round(count / total, 4) if total else None


def delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 4)


def day_key(value: Any) -> str:
    """``func.date()``: a string on SQLite, a date on PostgreSQL."""
    return value.isoformat() if isinstance(value, dt.date) else str(value)[:10]


def utc_day(session: Session, col: Any) -> Any:
    """The UTC day of a timestamp column, as SQL (PostgreSQL's ``date()`` of a
    ``timestamptz`` would use the session's time zone)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", col))
    return func.date(col)


def reason_codes(text: str | None) -> set[str]:
    """The codes of one ``reasons`` JSON value (text, as grouped in SQL)."""
    if not text:
        return set()
    try:
        value = json.loads(text)
    except ValueError:
        return set()
    codes = value.get("reasons") if isinstance(value, dict) else None
    return {c for c in codes if isinstance(c, str)} if isinstance(codes, list) else set()


def _scope(
    session: Session, lo: dt.datetime, hi: dt.datetime, agent_id: str | None
) -> dict[str, Any]:
    """Counts, outcomes, reasons and the daily series of one agent, or of the channel."""
    where: list[ColumnElement[bool]] = [Order.created_at >= lo, Order.created_at < hi]
    if agent_id is not None:
        where.append(Order.agent_id == agent_id)
    cond = and_(*where)
    decided_col = Order.outcome.is_not(None)

    outcome_rows = session.execute(
        select(Order.outcome, func.count()).where(cond).group_by(Order.outcome)
    ).all()
    counts = dict.fromkeys(OUTCOMES, 0)
    orders = 0
    for outcome, n in outcome_rows:
        orders += int(n)
        if outcome is not None:
            counts[str(outcome)] = counts.get(str(outcome), 0) + int(n)
    decided = sum(counts.values())

    # Reason codes: group by the JSON text (few distinct combinations), then split.
    reason_rows = session.execute(
        select(cast(Order.reasons, String), func.count())
        .where(cond, decided_col)
        .group_by(cast(Order.reasons, String))
    ).all()
    reasons: Counter[str] = Counter()
    for text, n in reason_rows:
        for code in reason_codes(text):
            reasons[code] += int(n)

    day = utc_day(session, Order.created_at)
    daily_rows = session.execute(
        select(
            day,
            func.count(),
            func.sum(case((decided_col, 1), else_=0)),
            func.sum(case((Order.outcome == Outcome.REJECTED.value, 1), else_=0)),
        )
        .where(cond)
        .group_by(day)
    ).all()
    by_day = {day_key(d): (int(n), int(dec or 0), int(rej or 0)) for d, n, dec, rej in daily_rows}
    agents = (
        session.scalar(select(func.count(func.distinct(Order.agent_id))).where(cond))
        if agent_id is None
        else 1
    )
    return {
        "orders": orders,
        "decided": decided,
        "undecided": orders - decided,
        "agents": int(agents or 0),
        "outcomes": {o: {"count": c, "rate": rate(c, decided)} for o, c in counts.items()},
        "rejection_rate": rate(counts.get(Outcome.REJECTED.value, 0), decided),
        "reasons": {
            code: {"count": n, "rate": rate(n, decided)}
            for code, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        },
        "by_day": by_day,
    }


def _daily(by_day: dict[str, tuple[int, int, int]], days: list[dt.date]) -> list[dict[str, Any]]:
    out = []
    for d in days:
        n, dec, rej = by_day.get(d.isoformat(), (0, 0, 0))
        out.append(
            {
                "day": d.isoformat(),
                "orders": n,
                "decided": dec,
                "rejected": rej,
                "rejection_rate": rate(rej, dec),
            }
        )
    return out


def agent_report(session: Session, agent_id: str, start: dt.date, end: dt.date) -> dict[str, Any]:
    """The inspection report of one agent (KeyError when there is no such agent)."""
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise KeyError(agent_id)
    lo, hi = bounds(start, end)
    days = days_of(start, end)
    mine = _scope(session, lo, hi, agent_id)
    channel = _scope(session, lo, hi, None)
    codes = sorted(set(mine["reasons"]) | set(channel["reasons"]))
    per_agent = channel["orders"] / channel["agents"] if channel["agents"] else None

    def compare(a: dict[str, Any], c: dict[str, Any], key: str) -> dict[str, Any]:
        ar = (a.get(key) or {}).get("rate")
        cr = (c.get(key) or {}).get("rate")
        return {"agent": ar, "channel": cr, "delta": delta(ar, cr)}

    return {
        "agent": {
            "id": agent.id,
            "name": agent.name,
            "agent_number": agent.agent_number,
            "legal_name": agent.legal_name,
            "status": agent.status,
        },
        "period": {"from": start.isoformat(), "to": end.isoformat(), "days": len(days)},
        "orders": mine["orders"],
        "decided": mine["decided"],
        "undecided": mine["undecided"],
        "outcomes": mine["outcomes"],
        "rejection_rate": mine["rejection_rate"],
        "reasons": mine["reasons"],
        "daily": _daily(mine["by_day"], days),
        "channel": {
            "agents": channel["agents"],
            "orders": channel["orders"],
            "orders_per_agent": None if per_agent is None else round(per_agent, 2),
            "decided": channel["decided"],
            "undecided": channel["undecided"],
            "outcomes": channel["outcomes"],
            "rejection_rate": channel["rejection_rate"],
            "reasons": channel["reasons"],
            "daily": _daily(channel["by_day"], days),
        },
        "comparison": {
            "volume": {
                "agent_orders": mine["orders"],
                "channel_orders_per_agent": None if per_agent is None else round(per_agent, 2),
                "ratio": round(mine["orders"] / per_agent, 4) if per_agent else None,
            },
            "rejection_rate": {
                "agent": mine["rejection_rate"],
                "channel": channel["rejection_rate"],
                "delta": delta(mine["rejection_rate"], channel["rejection_rate"]),
            },
            "outcomes": {o: compare(mine["outcomes"], channel["outcomes"], o) for o in OUTCOMES},
            "reasons": {c: compare(mine["reasons"], channel["reasons"], c) for c in codes},
        },
    }


# --- CSV ------------------------------------------------------------------------------


def _num(value: float | int | None) -> str:
    return "" if value is None else str(value)


def report_csv(report: dict[str, Any]) -> str:
    """One table, one header row (``CSV_COLUMNS``), so a spreadsheet can filter it by
    ``section``:

    - ``summary``: ``orders``, ``decided``, ``undecided`` (counts only);
    - ``outcome``: one row per outcome: counts and rates (over decided orders);
    - ``reason``: one row per reason code seen at the agent or in the channel;
    - ``day``: one row per day of the period: orders that day, and the rejection rate
      of that day's decided orders.

    ``agent_*`` is the agent, ``channel_*`` the whole channel, ``rate_delta`` = agent
    rate - channel rate. Empty cells: no rate (nothing decided). Rates are fractions
    (0.25 = 25 %).
    """
    ch = report["channel"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for key in ("orders", "decided", "undecided"):
        w.writerow(["summary", key, report[key], "", ch[key], "", ""])
    for o in OUTCOMES:
        a, c = report["outcomes"][o], ch["outcomes"][o]
        w.writerow(
            [
                "outcome",
                o,
                a["count"],
                _num(a["rate"]),
                c["count"],
                _num(c["rate"]),
                _num(delta(a["rate"], c["rate"])),
            ]
        )
    empty = {"count": 0, "rate": None}
    for code in sorted(set(report["reasons"]) | set(ch["reasons"])):
        a = report["reasons"].get(code, empty)
        c = ch["reasons"].get(code, empty)
        ar = a["rate"] if a["rate"] is not None else rate(0, report["decided"])
        cr = c["rate"] if c["rate"] is not None else rate(0, ch["decided"])
        w.writerow(
            ["reason", code, a["count"], _num(ar), c["count"], _num(cr), _num(delta(ar, cr))]
        )
    for a_day, c_day in zip(report["daily"], ch["daily"], strict=True):
        ar, cr = a_day["rejection_rate"], c_day["rejection_rate"]
        w.writerow(
            [
                "day",
                a_day["day"],
                a_day["orders"],
                _num(ar),
                c_day["orders"],
                _num(cr),
                _num(delta(ar, cr)),
            ]
        )
    return buf.getvalue()


# --- chart ----------------------------------------------------------------------------

CHART_W: Final = 860
CHART_H: Final = 420
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 70, 60, 90


def _nice_ceiling(value: int) -> int:
    """1, 2, 5 x 10^k at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1
    exp: int = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 5, 10):
        if m * exp >= value:
            return int(m * exp)
    return int(10 * exp)  # pragma: no cover


def _fmt(x: float) -> str:
    return f"{x:.1f}"


def chart_svg(report: dict[str, Any]) -> str:
    """A hand-written SVG: one bar per day (the agent's orders, left axis), the agent's
    daily rejection rate as a line (right axis, 0-100 %; gaps on days with nothing
    decided), and the channel's rejection rate over the period as a dashed line."""
    daily: list[dict[str, Any]] = report["daily"]
    n = max(1, len(daily))
    agent = report["agent"]
    period = report["period"]
    who = agent["name"] + (f" ({agent['agent_number']})" if agent.get("agent_number") else "")
    title = f"{who}: orders per day and rejection rate, {period['from']} to {period['to']}"
    channel_rate = report["channel"]["rejection_rate"]
    desc = (
        f"{report['orders']} orders, {report['decided']} decided, rejection rate "
        f"{_pct(report['rejection_rate'])} against {_pct(channel_rate)} for the channel "
        f"({report['channel']['agents']} agents)."
    )
    pw, ph = CHART_W - _LEFT - _RIGHT, CHART_H - _TOP - _BOTTOM
    x0, y0 = _LEFT, _TOP + ph  # origin (bottom left of the plot)
    top = _nice_ceiling(max([d["orders"] for d in daily] + [1]))
    step = pw / n
    bar_w = max(1.0, step * 0.7)

    def y_orders(v: float) -> float:
        return y0 - ph * v / top

    def y_rate(r: float) -> float:
        return y0 - ph * r

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{CHART_H}" '
        f'viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-labelledby="chart-title chart-desc" '
        'font-family="sans-serif" font-size="12">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(desc)}</desc>',
        f'<rect x="0" y="0" width="{CHART_W}" height="{CHART_H}" fill="#ffffff"/>',
        f'<text x="{CHART_W / 2}" y="24" text-anchor="middle" font-size="15" '
        f'font-weight="bold">{escape(title)}</text>',
    ]
    # Grid and axes.
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        gy = _fmt(y0 - ph * frac)
        parts.append(
            f'<line x1="{x0}" y1="{gy}" x2="{x0 + pw}" y2="{gy}" stroke="#e5e5e5" '
            'stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{x0 - 8}" y="{gy}" text-anchor="end" dominant-baseline="middle">'
            f"{_fmt_count(top * frac)}</text>"
        )
        parts.append(
            f'<text x="{x0 + pw + 8}" y="{gy}" dominant-baseline="middle">'
            f"{round(frac * 100)}%</text>"
        )
    parts.append(
        f'<line x1="{x0}" y1="{_TOP}" x2="{x0}" y2="{y0}" stroke="#333333" class="axis-orders"/>'
    )
    parts.append(
        f'<line x1="{x0 + pw}" y1="{_TOP}" x2="{x0 + pw}" y2="{y0}" stroke="#333333" '
        'class="axis-rate"/>'
    )
    parts.append(
        f'<line x1="{x0}" y1="{y0}" x2="{x0 + pw}" y2="{y0}" stroke="#333333" class="axis-days"/>'
    )
    # Bars.
    label_every = max(1, math.ceil(n / 12))
    for i, d in enumerate(daily):
        cx = x0 + step * (i + 0.5)
        y = y_orders(d["orders"])
        tip = (
            f"{d['day']}: {d['orders']} orders, {d['rejected']} rejected of {d['decided']} "
            f"decided ({_pct(d['rejection_rate'])})"
        )
        parts.append(
            f'<rect class="bar" x="{_fmt(cx - bar_w / 2)}" y="{_fmt(y)}" width="{_fmt(bar_w)}" '
            f'height="{_fmt(y0 - y)}" fill="#4a7ebb"><title>{escape(tip)}</title></rect>'
        )
        if i % label_every == 0:
            parts.append(
                f'<text x="{_fmt(cx)}" y="{y0 + 16}" text-anchor="middle">'
                f"{escape(d['day'][5:])}</text>"
            )
    # The agent's rejection rate (a path with gaps on days with nothing decided).
    segs: list[str] = []
    pen_down = False
    for i, d in enumerate(daily):
        r = d["rejection_rate"]
        if r is None:
            pen_down = False
            continue
        cx = x0 + step * (i + 0.5)
        segs.append(f"{'L' if pen_down else 'M'}{_fmt(cx)} {_fmt(y_rate(r))}")
        pen_down = True
    if segs:
        parts.append(
            f'<path class="rejection-rate" d="{" ".join(segs)}" fill="none" stroke="#d62728" '
            'stroke-width="2"/>'
        )
        for i, d in enumerate(daily):
            if d["rejection_rate"] is not None:
                cx = x0 + step * (i + 0.5)
                parts.append(
                    f'<circle cx="{_fmt(cx)}" cy="{_fmt(y_rate(d["rejection_rate"]))}" r="2.5" '
                    'fill="#d62728"/>'
                )
    if channel_rate is not None:
        cy = _fmt(y_rate(channel_rate))
        parts.append(
            f'<line class="channel-average" x1="{x0}" y1="{cy}" x2="{x0 + pw}" y2="{cy}" '
            'stroke="#555555" stroke-width="1.5" stroke-dasharray="6 4"/>'
        )
    # Axis titles.
    mid_y = _TOP + ph / 2
    parts.append(
        f'<text x="18" y="{_fmt(mid_y)}" text-anchor="middle" '
        f'transform="rotate(-90 18 {_fmt(mid_y)})">orders per day</text>'
    )
    rx = CHART_W - 14
    parts.append(
        f'<text x="{rx}" y="{_fmt(mid_y)}" text-anchor="middle" '
        f'transform="rotate(90 {rx} {_fmt(mid_y)})">rejection rate (of decided orders)</text>'
    )
    parts.append(
        f'<text x="{x0 + pw / 2}" y="{y0 + 38}" text-anchor="middle">day (UTC, MM-DD)</text>'
    )
    # Legend.
    ly = CHART_H - 22
    parts.append(f'<rect x="{x0}" y="{ly - 9}" width="14" height="10" fill="#4a7ebb"/>')
    parts.append(f'<text x="{x0 + 20}" y="{ly}">orders (this agent)</text>')
    lx = x0 + 170
    parts.append(
        f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 24}" y2="{ly - 4}" stroke="#d62728" '
        'stroke-width="2"/>'
    )
    parts.append(f'<text x="{lx + 30}" y="{ly}">rejection rate (this agent)</text>')
    lx2 = lx + 220
    parts.append(
        f'<line x1="{lx2}" y1="{ly - 4}" x2="{lx2 + 24}" y2="{ly - 4}" stroke="#555555" '
        'stroke-width="1.5" stroke-dasharray="6 4"/>'
    )
    parts.append(
        f"<text x={quoteattr(str(lx2 + 30))} y={quoteattr(str(ly))}>"
        f"{escape(f'channel average rejection rate ({_pct(channel_rate)})')}</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _pct(r: float | None) -> str:
    return "n/a" if r is None else f"{r * 100:.1f}%"


def _fmt_count(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.1f}"
