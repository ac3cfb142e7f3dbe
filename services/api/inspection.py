"""Channel inspection for the carrier's back office (R8), admin role only; every request
is an ``access.admin`` audit entry (services/api/deps.py).

- ``GET /v1/inspection/agents/{agent_id}?from=&to=&format=json|csv``: the agent's orders,
  outcomes, reason codes and rates against the channel's (services/inspection.py);
- ``GET /v1/inspection/agents/{agent_id}/chart.svg?from=&to=``: daily volumes and
  rejection rates;
- ``GET /v1/inspection/risk?from=&to=``: agents ranked by risk, with each signal's
  evidence (services/risk.py).

``from`` and ``to`` are UTC days (``YYYY-MM-DD``, both included); the default period is
the last 30 days up to today. A reversed, malformed or over-long (366 days) period is
``422 inspection.bad_period``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from services.api.deps import Admin, DbSession
from services.api.schemas import ErrorBody
from services.errors import NotFound, Unprocessable
from services.inspection import PeriodError, agent_report, chart_svg, report_csv, resolve_period
from services.risk import Thresholds, rank_agents

router = APIRouter(prefix="/v1/inspection", tags=["back office: inspection"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 422)
}
FromDay = Annotated[
    str | None, Query(alias="from", description="first day, YYYY-MM-DD (default: to - 29 days)")
]
ToDay = Annotated[
    str | None, Query(alias="to", description="last day, YYYY-MM-DD (default: today, UTC)")
]


def _period(start: str | None, end: str | None) -> tuple[dt.date, dt.date]:
    try:
        return resolve_period(start, end)
    except PeriodError as exc:
        raise Unprocessable(str(exc), code="inspection.bad_period") from None


def _report(session: DbSession, agent_id: str, start: dt.date, end: dt.date) -> dict[str, Any]:
    try:
        return agent_report(session, agent_id, start, end)
    except KeyError:
        raise NotFound(f"no agent {agent_id}", code="agent.not_found") from None


@router.get("/agents/{agent_id}", responses=ERRORS, response_model=None)
def agent_inspection(
    agent_id: str,
    _admin: Admin,
    session: DbSession,
    start: FromDay = None,
    end: ToDay = None,
    fmt: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> dict[str, Any] | Response:
    """One agent's orders, outcomes, reason codes and rates over the period, with the
    same numbers for the whole channel and the differences. ``format=csv``: one table
    (columns ``section,name,agent_count,agent_rate,channel_count,channel_rate,
    rate_delta``; sections ``summary``, ``outcome``, ``reason``, ``day``)."""
    first, last = _period(start, end)
    report = _report(session, agent_id, first, last)
    if fmt == "csv":
        name = f"inspection_{agent_id}_{first}_{last}.csv"
        return Response(
            report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return report


@router.get(
    "/agents/{agent_id}/chart.svg",
    responses={**ERRORS, 200: {"content": {"image/svg+xml": {}}}},
    response_class=Response,
)
def agent_chart(
    agent_id: str,
    _admin: Admin,
    session: DbSession,
    start: FromDay = None,
    end: ToDay = None,
) -> Response:
    """Orders per day (bars), the daily rejection rate (line) and the channel's
    rejection rate over the period (dashed), as SVG."""
    first, last = _period(start, end)
    report = _report(session, agent_id, first, last)
    return Response(chart_svg(report), media_type="image/svg+xml")


@router.get("/risk", responses=ERRORS)
def risk_ranking(
    _admin: Admin,
    session: DbSession,
    start: FromDay = None,
    end: ToDay = None,
) -> dict[str, Any]:
    """Agents with orders in the period ranked by risk (sum of their signals' scores;
    ties: more orders first), each with its signals and their masked evidence."""
    first, last = _period(start, end)
    thresholds = Thresholds()
    ranking = rank_agents(session, first, last, thresholds=thresholds)
    return {
        "period": {"from": first.isoformat(), "to": last.isoformat()},
        "thresholds": thresholds.to_dict(),
        "agents": [r.to_dict() for r in ranking],
    }
