"""The carrier's network side reports SIM usage (R8): the last traffic seen per ICCID,
so that cards activated but never used (bulk opening) can be found. Authenticated with
the logistics token: the carrier's back-end systems share it.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.api.deps import Logistics, State
from services.api.orders import ERRORS
from services.errors import Conflict
from services.storage import audit
from services.storage.models import Sim, utcnow

router = APIRouter(prefix="/v1/carrier", tags=["carrier"], dependencies=[Logistics])
MAX_REPORTS = 10_000
CHUNK = 500  # ICCIDs per IN (...) query
CLOCK_SKEW = dt.timedelta(minutes=5)


class UsageReport(BaseModel):
    iccid: str = Field(min_length=1, max_length=22)
    # The last traffic seen; null: none seen (yet).
    last_used_at: AwareDatetime | None


class UsageBatch(BaseModel):
    reports: list[UsageReport] = Field(max_length=MAX_REPORTS)


class UsageResult(BaseModel):
    received: int
    updated: int  # SIMs whose row was stamped (duplicates in the batch count once)
    unknown: list[str]  # ICCIDs not in the inventory: not fatal
    in_future: list[str]  # last_used_at later than now: ignored


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@router.post("/usage", response_model=UsageResult, responses=ERRORS)
def report_usage(body: UsageBatch, state: State) -> UsageResult:
    """Stamp ``usage_reported_at`` on each known SIM and keep the latest ``last_used_at``
    (a null or older report never erases traffic seen before)."""
    now = utcnow()
    latest: dict[str, dt.datetime | None] = {}
    in_future: list[str] = []
    for r in body.reports:
        iccid = r.iccid.strip()
        seen = r.last_used_at.astimezone(dt.UTC) if r.last_used_at else None
        if seen is not None and seen > now + CLOCK_SKEW:
            in_future.append(iccid)
            seen = None
        prev = latest.get(iccid)
        latest[iccid] = max(filter(None, (prev, seen)), default=None)
    iccids = sorted(latest)
    for _ in range(audit.MAX_RACES):
        try:
            with state.sessions() as session, session.begin():
                found: set[str] = set()
                for i in range(0, len(iccids), CHUNK):
                    for sim in session.scalars(
                        select(Sim).where(Sim.iccid.in_(iccids[i : i + CHUNK]))
                    ):
                        found.add(sim.iccid)
                        sim.usage_reported_at = now
                        seen = latest[sim.iccid]
                        before = _aware(sim.last_used_at)
                        if seen is not None and (before is None or seen > before):
                            sim.last_used_at = seen
                unknown = [i for i in iccids if i not in found]
                audit.append(
                    session,
                    kind="carrier.usage_reported",
                    subject="carrier",
                    actor="logistics",
                    payload={
                        "received": len(body.reports),
                        "updated": len(found),
                        "unknown": len(unknown),
                        "in_future": len(in_future),
                    },
                )
            break
        except IntegrityError:
            continue  # lost the audit seq race: replay
    else:
        raise Conflict("too many concurrent writers, retry", code="carrier.busy")
    return UsageResult(
        received=len(body.reports), updated=len(found), unknown=unknown, in_future=in_future
    )
