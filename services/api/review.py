"""Review of borderline orders (the back office), ``admin`` role: reviewers are admins
here. Every request is an ``access.admin`` audit entry (services/api/deps.py), image
views included.

- ``GET /v1/review/orders?outcome=&limit=&before=``: the queue, orders decided
  ``needs_review`` (not yet reviewed) first, then the others, newest first; masked ID
  numbers only;
- ``GET /v1/review/orders/{id}``: what a reviewer needs: scores with their thresholds,
  reasons and notes, the lookup result, masked numbers, SIM, agent, the order's audit
  entries, whether it can be reviewed and with which ship modes;
- ``GET /v1/review/orders/{id}/images/{role}`` (``id_front``, ``id_back``, ``selfie``):
  the decrypted upload, ``Cache-Control: no-store``;
- ``POST /v1/review/orders/{id}/decision`` ``{"decision": "approve"|"reject",
  "reason", "ship_mode"?}``: services/reviews.py. Approval needs the national lookup's
  ``match`` (R5: ``409 review.lookup_required`` otherwise);
- ``POST /v1/review/orders/{id}/recheck`` ``{"reason"}``: ``202``, the order goes back
  to the worker's checking step (services/reviews.py recheck_order) and the check task
  is enqueued by name after the commit; the worker decides it again.

The full reading of the card (every field, the full number) is not here: it leaves the
system only in the auditor's evidence package.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import String, and_, case, cast, or_, select
from sqlalchemy.orm import Session

from services.api.auditor import ORDER_IMAGES, audit_entries, iso, parse_when
from services.api.deps import Admin, AppState, DbSession, State
from services.api.schemas import ErrorBody
from services.domain.decide import Policy
from services.domain.states import OrderStatus, Outcome
from services.errors import NotFound, ServiceError, Unprocessable
from services.reviews import (
    MAX_RECHECKS,
    allowed_ship_modes,
    can_recheck,
    lookup_confirmed,
    recheck_order,
    rechecks_of,
    review_marker,
    review_order,
    reviewable,
)
from services.storage.blobs import BlobError
from services.storage.models import Agent, Blob, Order, Sim
from services.workers import enqueue

router = APIRouter(prefix="/v1/review", tags=["back office: review"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422)
}
ImageRole = Literal["id_front", "id_back", "selfie"]
QueueFilter = Literal[
    "needs_review", "approved", "rejected", "store_visit_required", "reviewed", "undecided"
]


class QueueItem(BaseModel):
    order_id: str
    agent_id: str
    agent_name: str | None
    agent_number: str | None
    status: str
    outcome: str | None
    ship_mode: str | None
    reasons: list[str]
    notes: list[str]
    id_number_masked: str | None
    msisdn: str
    province: str
    delivery: str
    created_at: dt.datetime
    decided_at: dt.datetime | None
    reviewable: bool
    reviewed: bool


class Queue(BaseModel):
    orders: list[QueueItem]
    next_before: str | None = Field(description="cursor for the next page (opaque)")


class AuditView(BaseModel):
    seq: int
    at: str | None
    kind: str
    subject: str
    actor: str
    payload: dict[str, Any]


class ImageView(BaseModel):
    role: str
    content_type: str
    bytes: int
    url: str


class OrderReview(BaseModel):
    order_id: str
    status: str
    outcome: str | None
    ship_mode: str | None
    reasons: list[str]
    notes: list[str]
    id_number_masked: str | None
    declared_number_masked: str
    declared_matches: bool | None = Field(description="typed identity equals what was read")
    msisdn: str
    province: str
    delivery: str
    has_callback: bool
    created_at: dt.datetime
    decided_at: dt.datetime | None
    agent: dict[str, Any] | None
    sim: dict[str, Any] | None
    scores: dict[str, Any]
    document: dict[str, Any]
    lookup: dict[str, Any]
    policy: dict[str, Any]
    thresholds: dict[str, Any] = Field(
        description="policy thresholds the scores are judged against (faces: per score)"
    )
    face_links: int
    images: list[ImageView]
    review: dict[str, Any] | None
    reviewable: bool
    lookup_confirmed: bool = Field(
        description="the national lookup answered match: approval is possible (R5)"
    )
    ship_modes: list[str] = Field(description="what an approval may ship as")
    rechecks: list[dict[str, Any]] = Field(
        description="each time a reviewer sent the order back to the checks: by, reason, "
        "at, previous_reasons"
    )
    can_recheck: bool = Field(description="the order may be sent back to the checks")
    max_rechecks: int
    audit: list[AuditView]


class RecheckRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=1000, description="why; required")


class ReviewDecision(BaseModel):
    decision: Literal["approve", "reject"]
    reason: str = Field(min_length=1, max_length=1000, description="why; required")
    ship_mode: Literal["ship_inactive", "activate_on_handover"] | None = Field(
        default=None, description="approve only; default ship_inactive"
    )


# --- the queue -------------------------------------------------------------------------


def _rank() -> Any:
    """0 for an order waiting for a person (not cancelled), 1 for the rest."""
    waiting = and_(Order.outcome == Outcome.NEEDS_REVIEW.value, Order.cancelled_at.is_(None))
    return case((waiting, 0), else_=1)


def _cursor(value: str) -> tuple[int, dt.datetime, str]:
    bad = Unprocessable("before: the next_before of a page", code="review.bad_cursor")
    parts = value.split("|", 2)
    if len(parts) != 3 or parts[0] not in ("0", "1") or not parts[2]:
        raise bad
    try:
        moment = parse_when(parts[1], "before")
    except Unprocessable:
        raise bad from None
    if moment is None:
        raise bad
    return int(parts[0]), moment, parts[2]


def queue(
    session: Session,
    *,
    outcome: str | None = None,
    limit: int = 50,
    before: str | None = None,
) -> Queue:
    """Orders for the review queue (see the module doc); ``outcome`` also takes
    ``reviewed`` (orders a person decided) and ``undecided`` (still in the pipeline)."""
    rank = _rank()
    q = select(Order, Agent, rank.label("rank")).outerjoin(Agent, Agent.id == Order.agent_id)
    if outcome == "undecided":
        q = q.where(Order.status != OrderStatus.DECIDED.value)
    elif outcome == "reviewed":
        # A reviewed order left needs_review; the marker is the reasons JSON's "review"
        # key (reason codes are dotted, so only the key is the quoted word).
        q = q.where(
            Order.status == OrderStatus.DECIDED.value,
            cast(Order.reasons, String).like('%"review"%'),
        )
    elif outcome is not None:
        q = q.where(Order.outcome == outcome)
    if before is not None:
        r, when, oid = _cursor(before)
        q = q.where(
            or_(
                rank > r,
                and_(
                    rank == r,
                    or_(
                        Order.created_at < when,
                        and_(Order.created_at == when, Order.id < oid),
                    ),
                ),
            )
        )
    rows = list(
        session.execute(q.order_by(rank, Order.created_at.desc(), Order.id.desc()).limit(limit))
    )
    items = [_item(o, a) for o, a, _ in rows]
    nxt = None
    if len(rows) == limit:
        last, _, last_rank = rows[-1]
        nxt = f"{last_rank}|{iso(last.created_at)}|{last.id}"
    return Queue(orders=items, next_before=nxt)


def _item(order: Order, agent: Agent | None) -> QueueItem:
    reasons = order.reasons or {}
    return QueueItem(
        order_id=order.id,
        agent_id=order.agent_id,
        agent_name=agent.name if agent else None,
        agent_number=agent.agent_number if agent else None,
        status=order.status,
        outcome=order.outcome,
        ship_mode=order.ship_mode,
        reasons=list(reasons.get("reasons", [])),
        notes=list(reasons.get("notes", [])),
        id_number_masked=order.id_number_masked or order.declared_number_masked,
        msisdn=order.msisdn,
        province=order.province,
        delivery=order.delivery,
        created_at=order.created_at,
        decided_at=order.decided_at,
        reviewable=reviewable(order),
        reviewed=review_marker(order) is not None,
    )


# --- one order -------------------------------------------------------------------------


def order_review(session: Session, state: AppState, order_id: str, image_url: str) -> OrderReview:
    """The reviewer's view of one order; ``image_url`` is formatted with ``order_id``
    and ``role`` (the API's image route, or the back-office page's)."""
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound(f"no order {order_id}", code="order.not_found")
    agent = session.get(Agent, order.agent_id)
    sim = session.scalars(select(Sim).where(Sim.order_id == order.id)).first()
    blobs = {b.role: b for b in session.scalars(select(Blob).where(Blob.order_id == order.id))}
    subjects = [order.id, *([sim.iccid] if sim else [])]
    entries = audit_entries(session, subjects)
    evidence = order.evidence or {}
    vision = evidence.get("vision") or {}
    reasons = order.reasons or {}
    policy = Policy(version=state.settings.policy_version)
    recorded_policy = evidence.get("policy") or {}
    return OrderReview(
        order_id=order.id,
        status=order.status,
        outcome=order.outcome,
        ship_mode=order.ship_mode,
        reasons=list(reasons.get("reasons", [])),
        notes=list(reasons.get("notes", [])),
        id_number_masked=order.id_number_masked,
        declared_number_masked=order.declared_number_masked,
        declared_matches=evidence.get("declared_matches"),
        msisdn=order.msisdn,
        province=order.province,
        delivery=order.delivery,
        has_callback=bool(order.callback_url),
        created_at=order.created_at,
        decided_at=order.decided_at,
        agent=None
        if agent is None
        else {
            "id": agent.id,
            "name": agent.name,
            "agent_number": agent.agent_number,
            "status": agent.status,
        },
        sim=None if sim is None else {"iccid": sim.iccid, "status": sim.status},
        scores=dict(evidence.get("scores") or {}),
        document=dict(vision.get("document") or {}),
        lookup=dict(evidence.get("lookup") or {}),
        policy=dict(recorded_policy),
        thresholds={
            "card_limit": recorded_policy.get("card_limit", policy.card_limit),
            "min_lookup_photo_similarity": policy.min_lookup_photo_similarity,
        },
        face_links=int(evidence.get("face_links") or 0),
        images=[
            ImageView(
                role=role,
                content_type=blobs[role].content_type,
                bytes=blobs[role].size,
                url=image_url.format(order_id=order.id, role=role),
            )
            for role in ORDER_IMAGES
            if role in blobs
        ],
        review=review_marker(order),
        reviewable=reviewable(order),
        lookup_confirmed=lookup_confirmed(order),
        ship_modes=allowed_ship_modes(order)
        if reviewable(order) and lookup_confirmed(order)
        else [],
        rechecks=rechecks_of(order),
        can_recheck=can_recheck(order),
        max_rechecks=MAX_RECHECKS,
        audit=[
            AuditView(
                seq=e.seq,
                at=iso(e.at),
                kind=e.kind,
                subject=e.subject,
                actor=e.actor,
                payload=dict(e.payload or {}),
            )
            for e in entries
        ],
    )


def image_response(state: AppState, order_id: str, role: str) -> Response:
    """One decrypted upload of an order, never cached."""
    if role not in ORDER_IMAGES:
        raise NotFound(f"no image {role}", code="image.not_found")
    with state.sessions() as session:
        blob = session.scalars(
            select(Blob).where(Blob.order_id == order_id, Blob.role == role)
        ).first()
    if blob is None:
        raise NotFound(f"order {order_id} has no {role} image", code="image.not_found")
    try:
        data = state.blobs.get(blob.id)
    except BlobError as exc:
        raise ServiceError(str(exc), code="image.unreadable", status=500) from None
    return Response(
        data,
        media_type=blob.content_type,
        headers={
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'inline; filename="{order_id}-{role}"',
        },
    )


def decide(state: AppState, order_id: str, body: ReviewDecision, reviewer: str) -> None:
    """Record the review, then enqueue its webhook (committed already: a lost message is
    picked up by the sweeper)."""
    result = review_order(
        state.sessions,
        state.settings,
        order_id,
        decision=body.decision,
        reason=body.reason,
        reviewer=reviewer,
        ship_mode=body.ship_mode,
    )
    if result.webhook_id:
        enqueue.send(enqueue.WEBHOOK, result.webhook_id, app=state.celery)


def recheck(state: AppState, order_id: str, body: RecheckRequest, reviewer: str) -> None:
    """Send the order back to the checks, then enqueue the check step by name (after
    the commit; a lost message is picked up by the sweeper)."""
    result = recheck_order(state.sessions, order_id, reason=body.reason, reviewer=reviewer)
    enqueue.send(enqueue.CHECK, result.order_id, app=state.celery)


API_IMAGE_URL = "/v1/review/orders/{order_id}/images/{role}"


@router.get("/orders", response_model=Queue, responses=ERRORS)
def list_orders(
    _admin: Admin,
    session: DbSession,
    outcome: Annotated[QueueFilter | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[str | None, Query(max_length=200)] = None,
) -> Queue:
    """The review queue: ``needs_review`` first, then the others, newest first."""
    return queue(session, outcome=outcome, limit=limit, before=before)


@router.get("/orders/{order_id}", response_model=OrderReview, responses=ERRORS)
def get_order(order_id: str, _admin: Admin, session: DbSession, state: State) -> OrderReview:
    """One order's evidence for the reviewer (masked numbers; images by URL)."""
    return order_review(session, state, order_id, API_IMAGE_URL)


@router.get(
    "/orders/{order_id}/images/{role}",
    response_class=Response,
    responses={**ERRORS, 200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}},
)
def get_image(order_id: str, role: ImageRole, _admin: Admin, state: State) -> Response:
    """The decrypted upload (``Cache-Control: no-store``)."""
    return image_response(state, order_id, role)


@router.post("/orders/{order_id}/decision", response_model=OrderReview, responses=ERRORS)
def post_decision(order_id: str, body: ReviewDecision, admin: Admin, state: State) -> OrderReview:
    """Approve or reject an order decided ``needs_review`` and not reviewed yet (409
    ``review.not_pending`` / ``review.already_reviewed`` otherwise). Approval needs the
    national lookup's ``match`` (409 ``review.lookup_required``: recheck or reject),
    uses the number held for the order (reserved again for an order decided before
    numbers were held: 409 ``order.msisdn_unavailable``) and ships the card inactive
    with an activation code, or ``activate_on_handover`` where ``ship_modes`` offers
    it. Rejection gives the number back to the inventory."""
    decide(state, order_id, body, admin.id)
    with state.sessions() as session:
        return order_review(session, state, order_id, API_IMAGE_URL)


@router.post(
    "/orders/{order_id}/recheck", status_code=202, response_model=OrderReview, responses=ERRORS
)
def post_recheck(order_id: str, body: RecheckRequest, admin: Admin, state: State) -> OrderReview:
    """Send an order decided ``needs_review`` and not reviewed yet back to the worker's
    checking step (the national lookup is asked again, the stored reading is reused):
    ``202`` with the order now ``checking``; the worker decides it again. At most
    ``max_rechecks`` times (409 ``review.too_many_rechecks``); the SIM stays reserved."""
    recheck(state, order_id, body, admin.id)
    with state.sessions() as session:
        return order_review(session, state, order_id, API_IMAGE_URL)
