"""What a storefront needs around an order: numbers it may offer, its own agent record."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from services.agents import in_scope
from services.api.deps import CurrentAgent, DbSession
from services.domain.states import SimStatus
from services.storage.models import Sim

router = APIRouter(prefix="/v1", tags=["storefront"])


class NumberList(BaseModel):
    msisdns: list[str]


class AgentView(BaseModel):
    agent_id: str
    name: str
    status: str
    provinces: list[str]
    webhook_secret: str  # signs decision callbacks (X-Simgate-Signature)


@router.get("/numbers", response_model=NumberList, summary="Available numbers to offer")
def available_numbers(
    agent: CurrentAgent,
    session: DbSession,
    province: Annotated[str | None, Query(pattern=r"^\d{2}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> NumberList:
    q = select(Sim).where(Sim.status == SimStatus.AVAILABLE)
    if province:
        q = q.where(Sim.province == province)
    rows = session.scalars(q.order_by(Sim.msisdn).limit(limit * 4)).all()
    allowed = [s.msisdn for s in rows if in_scope(agent, s.province)]
    return NumberList(msisdns=allowed[:limit])


@router.get("/agent", response_model=AgentView, summary="The calling agent")
def me(agent: CurrentAgent) -> AgentView:
    return AgentView(
        agent_id=agent.id,
        name=agent.name,
        status=agent.status,
        provinces=list(agent.provinces.get("provinces", [])),
        webhook_secret=agent.webhook_secret,
    )
