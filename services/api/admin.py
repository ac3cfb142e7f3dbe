"""The carrier's agent registry (R4, R8), admin role only: create agents, rotate their
API keys, suspend, reinstate and revoke them.

Revocation takes effect at once, in this order: the agent row turns ``revoked`` (every
later request with its keys is refused; an order being stored re-reads the status in
its own transaction, so none commits after this point), its keys and badges are
stamped revoked, then every order of the agent not yet decided is rejected with
``agent.revoked`` through the same recording as any decision (status, SIM back to the
inventory, audit entry, webhook outbox row in one transaction each), its orders
waiting for a person are rejected as a review (``order.reviewed``), and the platform's
``agent.revoked`` webhook is queued. A worker still busy with one of those
orders finds it decided and stops.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services import agents as registry
from services.api.deps import Admin, DbSession, State
from services.api.schemas import ErrorBody
from services.decisions import UNDECIDED, stop_order
from services.domain.decide import Policy
from services.errors import Conflict, NotFound
from services.reviews import review_order, reviewable
from services.storage import audit
from services.storage.models import Agent, AgentKey, Badge, Order, WebhookDelivery, utcnow
from services.workers import enqueue

router = APIRouter(prefix="/v1/admin", tags=["back office: agent registry"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422)
}
PROVINCE_RE = re.compile(r"^\d{2}$")
URL_RE = re.compile(r"^https?://[^\s]{1,1990}$")


class Contact(BaseModel):
    name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=200)


class AgentFields(BaseModel):
    """What an admin may set on an agent (all optional on update)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    legal_name: str | None = Field(default=None, min_length=1, max_length=200)
    licence_number: str | None = Field(
        default=None, min_length=1, max_length=40, description="business licence number"
    )
    provinces: list[str] | None = Field(
        default=None, description="two-digit province codes it may sell numbers of"
    )
    products: list[Annotated[str, Field(min_length=1, max_length=40)]] | None = None
    channels: list[Literal["online", "door_to_door"]] | None = None
    contact: Contact | None = None
    webhook_url: str | None = Field(
        default=None, description="the platform's URL for agent events (agent.revoked)"
    )

    @field_validator("provinces")
    @classmethod
    def _provinces(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not all(PROVINCE_RE.match(p) for p in v):
            raise ValueError("provinces are two-digit codes such as '11'")
        return v

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not URL_RE.match(v):
            raise ValueError("an http(s) URL")
        return v


class AgentCreate(AgentFields):
    name: str = Field(min_length=1, max_length=200)
    legal_name: str = Field(min_length=1, max_length=200)
    licence_number: str = Field(min_length=1, max_length=40)
    agent_number: str = Field(
        pattern=r"^[A-Za-z0-9-]{1,40}$", description="the carrier's unified agent identifier"
    )
    provinces: list[str] = Field(min_length=1)
    carrier: str | None = Field(default=None, max_length=40)


class KeyView(BaseModel):
    key_id: str
    prefix: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class AgentView(BaseModel):
    id: str
    agent_number: str | None
    name: str
    legal_name: str | None
    licence_number: str | None
    carrier: str | None
    provinces: list[str]
    products: list[str]
    channels: list[str]
    contact: dict[str, Any]
    webhook_url: str | None
    status: str
    status_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    keys: list[KeyView]


class AgentCreated(BaseModel):
    agent: AgentView
    api_key: str = Field(description="shown once; only its hash is kept")


class KeyIssued(BaseModel):
    key_id: str
    api_key: str = Field(description="shown once; only its hash is kept")
    revoked_keys: int


class StatusChange(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class Revocation(BaseModel):
    agent: AgentView
    stopped_orders: list[str]
    already_decided: int = Field(description="orders a worker decided during the revocation")
    rejected_in_review: list[str] = Field(
        default_factory=list, description="orders that were waiting for a person"
    )


def _view(session: Session, agent: Agent) -> AgentView:
    keys = session.scalars(
        select(AgentKey).where(AgentKey.agent_id == agent.id).order_by(AgentKey.created_at)
    )
    scope = agent.scope or {}
    return AgentView(
        id=agent.id,
        agent_number=agent.agent_number,
        name=agent.name,
        legal_name=agent.legal_name,
        licence_number=agent.licence_number,
        carrier=agent.carrier,
        provinces=list((agent.provinces or {}).get("provinces", [])),
        products=list(scope.get("products", [])),
        channels=list(scope.get("channels", [])),
        contact=dict(agent.contact or {}),
        webhook_url=agent.webhook_url,
        status=agent.status,
        status_reason=agent.status_reason,
        created_at=agent.created_at,
        updated_at=agent.updated_at,
        keys=[
            KeyView(key_id=k.id, prefix=k.prefix, created_at=k.created_at, revoked_at=k.revoked_at)
            for k in keys
        ],
    )


def _get(session: Session, agent_id: str) -> Agent:
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"no agent {agent_id}", code="agent.not_found")
    return agent


def _apply(agent: Agent, fields: AgentFields) -> list[str]:
    """Set what ``fields`` carries; the names of what changed (for the audit entry)."""
    given = fields.model_dump(exclude_unset=True)
    scope = dict(agent.scope or {})
    for name, value in given.items():
        if name == "provinces":
            agent.provinces = {"provinces": sorted(set(value))}
        elif name in ("products", "channels"):
            scope[name] = sorted(set(value))
        elif name == "contact":
            agent.contact = {k: v for k, v in (value or {}).items() if v}
        else:
            setattr(agent, name, value)
    agent.scope = scope
    agent.updated_at = utcnow()
    return sorted(given)


@router.post("/agents", status_code=201, response_model=AgentCreated, responses=ERRORS)
def create_agent(body: AgentCreate, admin: Admin, state: State) -> AgentCreated:
    """Register a licensed agent and issue its first API key (shown once)."""
    try:
        with state.sessions() as session, session.begin():
            agent, key = registry.create_agent(
                session,
                body.name,
                provinces=body.provinces,
                agent_number=body.agent_number,
                licence_number=body.licence_number,
                legal_name=body.legal_name,
                carrier=body.carrier or state.settings.carrier,
                scope={
                    "products": sorted(set(body.products or [])),
                    "channels": sorted(set(body.channels or ["online"])),
                },
                contact=body.contact.model_dump(exclude_none=True) if body.contact else {},
                webhook_url=body.webhook_url,
            )
            audit.append(
                session,
                kind="agent.created",
                subject=agent.id,
                actor=admin.id,
                payload={"agent_number": agent.agent_number, "provinces": body.provinces},
            )
            view = _view(session, agent)
    except IntegrityError:
        raise Conflict(
            f"agent number {body.agent_number} is registered already", code="agent.exists"
        ) from None
    return AgentCreated(agent=view, api_key=key)


@router.get("/agents", response_model=list[AgentView], responses=ERRORS)
def list_agents(
    _: Admin,
    session: DbSession,
    status: Annotated[Literal["active", "suspended", "revoked"] | None, Query()] = None,
) -> list[AgentView]:
    q = select(Agent).order_by(Agent.created_at)
    if status is not None:
        q = q.where(Agent.status == status)
    return [_view(session, a) for a in session.scalars(q)]


@router.get("/agents/{agent_id}", response_model=AgentView, responses=ERRORS)
def get_agent(agent_id: str, _: Admin, session: DbSession) -> AgentView:
    return _view(session, _get(session, agent_id))


@router.patch("/agents/{agent_id}", response_model=AgentView, responses=ERRORS)
def update_agent(agent_id: str, body: AgentFields, admin: Admin, state: State) -> AgentView:
    """Change registry details or the delegation scope (effective for the next order)."""
    with state.sessions() as session, session.begin():
        agent = _get(session, agent_id)
        if agent.status == "revoked":
            raise Conflict("a revoked agent cannot be changed", code="agent.revoked")
        changed = _apply(agent, body)
        audit.append(
            session,
            kind="agent.updated",
            subject=agent.id,
            actor=admin.id,
            payload={"changed": changed, "provinces": agent.provinces.get("provinces")},
        )
        return _view(session, agent)


@router.post("/agents/{agent_id}/keys", status_code=201, response_model=KeyIssued, responses=ERRORS)
def rotate_key(
    agent_id: str,
    admin: Admin,
    state: State,
    keep_old: Annotated[bool, Query(description="keep the current keys working")] = False,
) -> KeyIssued:
    """Issue a new API key; the old ones stop working at once unless ``keep_old``
    (a hand-over period: revoke them later with DELETE .../keys/{key_id})."""
    with state.sessions() as session, session.begin():
        agent = _get(session, agent_id)
        if agent.status == "revoked":
            raise Conflict("a revoked agent gets no keys", code="agent.revoked")
        row, key = registry.add_key(session, agent.id)
        revoked = 0 if keep_old else registry.revoke_keys(session, agent.id, except_key_id=row.id)
        audit.append(
            session,
            kind="agent.key_rotated",
            subject=agent.id,
            actor=admin.id,
            payload={"key_id": row.id, "revoked_keys": revoked},
        )
    return KeyIssued(key_id=row.id, api_key=key, revoked_keys=revoked)


@router.delete("/agents/{agent_id}/keys/{key_id}", response_model=AgentView, responses=ERRORS)
def revoke_key(agent_id: str, key_id: str, admin: Admin, state: State) -> AgentView:
    with state.sessions() as session, session.begin():
        agent = _get(session, agent_id)
        key = session.get(AgentKey, key_id)
        if key is None or key.agent_id != agent.id:
            raise NotFound(f"no key {key_id} for agent {agent_id}", code="agent.key_not_found")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            audit.append(
                session,
                kind="agent.key_revoked",
                subject=agent.id,
                actor=admin.id,
                payload={"key_id": key.id},
            )
        session.flush()
        return _view(session, agent)


def _set_status(
    state: State, agent_id: str, to: str, allowed: tuple[str, ...], reason: str, actor: str
) -> AgentView:
    with state.sessions() as session, session.begin():
        # Lock the row on PostgreSQL: an order being stored re-reads it in its transaction.
        agent = session.scalars(select(Agent).where(Agent.id == agent_id).with_for_update()).first()
        if agent is None:
            raise NotFound(f"no agent {agent_id}", code="agent.not_found")
        if agent.status not in allowed:
            raise Conflict(f"agent {agent_id} is {agent.status}", code=f"agent.{agent.status}")
        before = agent.status
        agent.status, agent.status_reason, agent.updated_at = to, reason, utcnow()
        if to == "revoked":
            registry.revoke_keys(session, agent.id)
            session.execute(
                update(Badge)
                .where(Badge.agent_id == agent.id, Badge.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        audit.append(
            session,
            kind={"active": "agent.reinstated"}.get(to, f"agent.{to}"),
            subject=agent.id,
            actor=actor,
            payload={"from": before, "reason": reason},
        )
        return _view(session, agent)


@router.post("/agents/{agent_id}/suspend", response_model=AgentView, responses=ERRORS)
def suspend(agent_id: str, body: StatusChange, admin: Admin, state: State) -> AgentView:
    """Refuse the agent's keys until reinstated; orders already being verified go to
    review (``agent.suspended``)."""
    return _set_status(state, agent_id, "suspended", ("active",), body.reason, admin.id)


@router.post("/agents/{agent_id}/reinstate", response_model=AgentView, responses=ERRORS)
def reinstate(agent_id: str, body: StatusChange, admin: Admin, state: State) -> AgentView:
    return _set_status(state, agent_id, "active", ("suspended",), body.reason, admin.id)


@router.post("/agents/{agent_id}/revoke", response_model=Revocation, responses=ERRORS)
def revoke(agent_id: str, body: StatusChange, admin: Admin, state: State) -> Revocation:
    """Revoke for good: keys and badges stop at once, undecided orders are rejected with
    ``agent.revoked``, the platform is told by webhook (order callbacks and the agent's
    ``webhook_url``)."""
    view = _set_status(state, agent_id, "revoked", ("active", "suspended"), body.reason, admin.id)
    with state.sessions() as session:
        pending = list(
            session.scalars(
                select(Order.id).where(
                    Order.agent_id == agent_id, Order.status.in_([s.value for s in UNDECIDED])
                )
            )
        )
    stopped: list[str] = []
    webhooks: list[str] = []
    card_limit = Policy(version=state.settings.policy_version).card_limit
    for order_id in pending:
        result = stop_order(
            state.sessions,
            state.settings,
            order_id,
            reason="agent.revoked",
            actor=admin.id,
            card_limit=card_limit,
        )
        if result is False:
            continue  # a worker decided it meanwhile
        stopped.append(order_id)
        if isinstance(result, str):
            webhooks.append(result)
    # Orders already waiting for a person are rejected too: nothing of a revoked agent
    # ships, and their reserved numbers go back on sale.
    with state.sessions() as session:
        in_review = [
            o
            for o in session.scalars(
                select(Order).where(
                    Order.agent_id == agent_id,
                    Order.status == "decided",
                    Order.outcome == "needs_review",
                )
            )
            if reviewable(o)
        ]
    rejected: list[str] = []
    for order in in_review:
        try:
            reviewed = review_order(
                state.sessions,
                state.settings,
                order.id,
                decision="reject",
                reason=f"agent.revoked: {body.reason}",
                reviewer=admin.id,
            )
        except Conflict:
            continue  # a reviewer decided it meanwhile
        rejected.append(order.id)
        if reviewed.webhook_id:
            webhooks.append(reviewed.webhook_id)
    if view.webhook_url:
        webhooks.append(_queue_agent_event(state, view, body.reason, stopped, rejected))
    for webhook_id in webhooks:
        # Committed already: a lost message is picked up by the sweeper.
        enqueue.send(enqueue.WEBHOOK, webhook_id, app=state.celery)
    return Revocation(
        agent=view,
        stopped_orders=stopped,
        already_decided=len(pending) - len(stopped),
        rejected_in_review=rejected,
    )


def _queue_agent_event(
    state: State, view: AgentView, reason: str, stopped: list[str], rejected: list[str]
) -> str:
    webhook_id = "whk_" + secrets.token_hex(12)
    body = {
        "event": "agent.revoked",
        "agent_id": view.id,
        "agent_number": view.agent_number,
        "reason": reason,
        "stopped_orders": stopped,
        "rejected_in_review": rejected,
        "revoked_at": view.updated_at.isoformat(),
    }
    assert view.webhook_url is not None
    with state.sessions() as session, session.begin():
        session.add(
            WebhookDelivery(
                id=webhook_id,
                order_id=None,
                agent_id=view.id,
                event="agent.revoked",
                url=view.webhook_url,
                body=json.dumps(body, ensure_ascii=False, sort_keys=True),
            )
        )
    return webhook_id
