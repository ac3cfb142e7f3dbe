"""Leak tracing (R8), ``admin`` role: a SIM found on sale elsewhere, by ICCID or MSISDN
-> the agent and the order it was allocated to, its door check, its activation, and the
audit history. Identity data appear masked only. The ``Admin`` dependency writes the
request, queried identifier included, to the audit log (``access.admin``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from services.api.auditor import audit_entries
from services.api.deps import Admin, DbSession
from services.api.orders import ERRORS
from services.errors import NotFound, Unprocessable
from services.storage.models import Agent, Challenge, Delivery, HandoverAttempt, Order, Sim

router = APIRouter(prefix="/v1/trace", tags=["inspection"])


class TracedSim(BaseModel):
    iccid: str
    msisdn: str
    province: str
    status: str
    agent_id: str | None
    order_id: str | None
    activated_at: dt.datetime | None
    last_used_at: dt.datetime | None
    usage_reported_at: dt.datetime | None


class TracedAgent(BaseModel):
    agent_id: str
    name: str
    agent_number: str | None
    status: str


class TracedOrder(BaseModel):
    order_id: str
    agent_id: str
    status: str
    outcome: str | None
    ship_mode: str | None
    reasons: list[str]
    delivery: str
    id_number_masked: str | None
    created_at: dt.datetime
    decided_at: dt.datetime | None
    cancelled_at: dt.datetime | None


class TracedDelivery(BaseModel):
    courier_id: str
    status: str
    failed_attempts: int
    assigned_at: dt.datetime
    updated_at: dt.datetime


class TracedAttempt(BaseModel):
    attempt_id: str
    courier_id: str
    status: str
    result: str | None
    reasons: list[str]
    created_at: dt.datetime
    decided_at: dt.datetime | None


class TracedChallenge(BaseModel):
    challenge_id: str
    status: str
    result: str | None
    reasons: list[str]
    created_at: dt.datetime
    decided_at: dt.datetime | None


class HistoryEntry(BaseModel):
    seq: int
    at: dt.datetime
    kind: str
    subject: str
    actor: str


class SimTrace(BaseModel):
    sim: TracedSim
    # The allocation: the order holding the SIM now, else the latest order that took
    # its number (a rejected or cancelled order gives the number back).
    agent: TracedAgent | None
    order: TracedOrder | None
    delivery: TracedDelivery | None
    handover_attempts: list[TracedAttempt]
    challenges: list[TracedChallenge]
    # Every audit entry about those orders or the ICCID, oldest first.
    history: list[HistoryEntry]
    # Earlier orders that took the same number, newest first.
    earlier_orders: list[TracedOrder]


def _order(o: Order) -> TracedOrder:
    return TracedOrder(
        order_id=o.id,
        agent_id=o.agent_id,
        status=o.status,
        outcome=o.outcome,
        ship_mode=o.ship_mode,
        reasons=list((o.reasons or {}).get("reasons", [])),
        delivery=o.delivery,
        id_number_masked=o.id_number_masked or o.declared_number_masked,
        created_at=o.created_at,
        decided_at=o.decided_at,
        cancelled_at=o.cancelled_at,
    )


def _reasons(value: dict[str, Any] | None) -> list[str]:
    return list((value or {}).get("reasons", []))


@router.get("/sims", response_model=SimTrace, responses=ERRORS)
def trace_sim(
    _: Admin,
    session: DbSession,
    iccid: Annotated[str | None, Query(min_length=1, max_length=22)] = None,
    msisdn: Annotated[str | None, Query(min_length=1, max_length=20)] = None,
) -> SimTrace:
    """Give exactly one of ``iccid`` and ``msisdn``."""
    if (iccid is None) == (msisdn is None):
        raise Unprocessable("give exactly one of iccid and msisdn", code="trace.one_identifier")
    sim = session.scalars(
        select(Sim).where(Sim.iccid == iccid.strip() if iccid else Sim.msisdn == msisdn)
    ).first()
    if sim is None:
        raise NotFound("no such SIM in the carrier's inventory", code="sim.not_found")
    orders = list(
        session.scalars(
            select(Order).where(Order.msisdn == sim.msisdn).order_by(Order.created_at.desc())
        )
    )
    current = next((o for o in orders if o.id == sim.order_id), orders[0] if orders else None)
    agent_id = sim.agent_id or (current.agent_id if current else None)
    agent = session.get(Agent, agent_id) if agent_id else None
    delivery = session.get(Delivery, current.id) if current else None
    attempts = (
        list(
            session.scalars(
                select(HandoverAttempt)
                .where(HandoverAttempt.order_id == current.id)
                .order_by(HandoverAttempt.created_at)
            )
        )
        if current
        else []
    )
    challenges = list(
        session.scalars(
            select(Challenge).where(Challenge.iccid == sim.iccid).order_by(Challenge.created_at)
        )
    )
    history = audit_entries(session, [*(o.id for o in orders), sim.iccid])
    return SimTrace(
        sim=TracedSim(
            iccid=sim.iccid,
            msisdn=sim.msisdn,
            province=sim.province,
            status=sim.status,
            agent_id=sim.agent_id,
            order_id=sim.order_id,
            activated_at=sim.activated_at,
            last_used_at=sim.last_used_at,
            usage_reported_at=sim.usage_reported_at,
        ),
        agent=TracedAgent(
            agent_id=agent.id, name=agent.name, agent_number=agent.agent_number, status=agent.status
        )
        if agent
        else None,
        order=_order(current) if current else None,
        delivery=TracedDelivery(
            courier_id=delivery.courier_id,
            status=delivery.status,
            failed_attempts=delivery.failed_attempts,
            assigned_at=delivery.assigned_at,
            updated_at=delivery.updated_at,
        )
        if delivery
        else None,
        handover_attempts=[
            TracedAttempt(
                attempt_id=a.id,
                courier_id=a.courier_id,
                status=a.status,
                result=a.result,
                reasons=_reasons(a.reasons),
                created_at=a.created_at,
                decided_at=a.decided_at,
            )
            for a in attempts
        ],
        challenges=[
            TracedChallenge(
                challenge_id=c.id,
                status=c.status,
                result=c.result,
                reasons=_reasons(c.reasons),
                created_at=c.created_at,
                decided_at=c.decided_at,
            )
            for c in challenges
        ],
        history=[
            HistoryEntry(seq=e.seq, at=e.at, kind=e.kind, subject=e.subject, actor=e.actor)
            for e in history
        ],
        earlier_orders=[_order(o) for o in orders if current is None or o.id != current.id],
    )
