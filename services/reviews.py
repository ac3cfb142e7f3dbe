"""A person's review of an order the rules sent to ``needs_review`` (the back office).

The reviewer (an ``admin``) approves or rejects with a reason; both are recorded in one
transaction, guarded by a conditional UPDATE (``WHERE status = 'decided' AND outcome =
'needs_review'``), so an order is reviewed once even when two reviewers press at the
same moment:

- the order's outcome (``approved`` or ``rejected``), ship mode, ``decided_at`` (the
  time of the review: the final decision) and ``reasons["review"]`` (decision, reason,
  reviewer, time, the outcome and time of the machine decision). The reason codes the
  rules found are kept as they were: they say why a person had to look;
- the SIM: ``needs_review`` keeps the number reserved for the order while a person
  looks (services/decisions.py). Approval moves that held SIM like a machine approval
  and, when it ships inactive, gives it its one-time activation code (R7); an order
  decided before numbers were held gets its number reserved again (``409
  order.msisdn_unavailable`` when another order took it meanwhile). Rejection gives the
  number back to the inventory;
- the audit entry ``order.reviewed`` ``{decision, reason, reviewer, previous_outcome,
  outcome, ship_mode}`` (the reason with anything shaped like an ID number masked);
- when the order has a ``callback_url``, an ``order.decided`` webhook outbox row with
  the final outcome (``"review": {"decision", "previous_outcome", "reviewed_at"}``; the
  reviewer's free text stays in the back office).

Approval ships the card inactive: a person looking at photos cannot do the door
check's face confirmation, and the customer's video check (R7) compares the live face
with the verified portrait before anything is activated. ``activate_on_handover`` is
allowed only where the machine would have allowed it: a door-check delivery whose
selfie face verdict was a confident ``match``, so the courier's check has a portrait to
compare the recipient with. R2 is applied again at approval time (the ID may have
gained cards since): ``409 review.card_limit``. A suspended or revoked agent's order is
not approved (``409 agent.suspended`` / ``agent.revoked``).

R5: a person never approves an order the national lookup did not confirm. Approval is
refused with ``409 review.lookup_required`` when the order's reasons hold
``lookup.unavailable``, ``lookup.not_checked`` or ``lookup.request_refused``, or its
recorded lookup result is not ``match``; rejecting stays allowed. Such an order is sent
back to the checks instead (:func:`recheck_order`): one transaction with a conditional
UPDATE (``decided``/``needs_review`` -> ``checking``; outcome, ship mode and decision
time cleared; ``reasons["rechecks"]`` gains ``{by, reason, at, previous_reasons}``) and
the audit entry ``order.recheck`` ``{reason, reviewer, previous_reasons}``; the caller
enqueues the worker's check step after the commit. The worker asks the lookup again
from the stored reading (the images are not read again) and decides anew: a second
``order.decided`` audit entry. At most :data:`MAX_RECHECKS` per order (``409
review.too_many_rechecks``); the SIM stays reserved throughout. A cancelled order is
neither reviewed nor rechecked.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from services.carrier import inventory
from services.config import Settings
from services.domain.decide import Policy
from services.domain.states import Delivery, OrderStatus, Outcome, ShipMode, SimStatus
from services.errors import Conflict, NotFound, Unprocessable
from services.privacy import id_hash, mask_text
from services.storage import audit
from services.storage.blobs import open_text
from services.storage.models import Agent, Blob, Order, Sim, WebhookDelivery, utcnow

log = logging.getLogger(__name__)
ReviewChoice = Literal["approve", "reject"]
MAX_REASON = 1000
MAX_RECHECKS = 3  # per order: a lookup that keeps failing is a case for rejection
# Reason codes saying the national lookup did not answer: no approval by a person (R5).
LOOKUP_UNCONFIRMED = frozenset(
    {"lookup.unavailable", "lookup.not_checked", "lookup.request_refused"}
)
EVIDENCE_ROLE = "evidence"  # the worker's stored reading (services/workers/pipeline.py)


@dataclass(frozen=True, slots=True)
class ReviewResult:
    order_id: str
    outcome: str
    ship_mode: str | None
    webhook_id: str | None  # an outbox row to enqueue after the commit


@dataclass(frozen=True, slots=True)
class RecheckResult:
    order_id: str
    status: str
    rechecks: int  # how many times the order was sent back, this one included


def review_marker(order: Order) -> dict[str, Any] | None:
    value = (order.reasons or {}).get("review")
    return value if isinstance(value, dict) else None


def rechecks_of(order: Order) -> list[dict[str, Any]]:
    value = (order.reasons or {}).get("rechecks")
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def reviewable(order: Order) -> bool:
    return (
        order.status == OrderStatus.DECIDED
        and order.outcome == Outcome.NEEDS_REVIEW
        and review_marker(order) is None
        and order.cancelled_at is None
    )


def lookup_confirmed(order: Order) -> bool:
    """Whether the national lookup answered ``match`` for this order (R5)."""
    codes = set((order.reasons or {}).get("reasons") or [])
    lookup = (order.evidence or {}).get("lookup") or {}
    return not codes & LOOKUP_UNCONFIRMED and lookup.get("result") == "match"


def can_recheck(order: Order) -> bool:
    return reviewable(order) and len(rechecks_of(order)) < MAX_RECHECKS


def door_activation_allowed(order: Order) -> bool:
    """Whether a reviewer may approve with ``activate_on_handover``: the courier's door
    check needs a door-check delivery and a portrait the live face confidently matched."""
    scores = (order.evidence or {}).get("scores") or {}
    face = scores.get("face_match") or {}
    return order.delivery == Delivery.DOOR_CHECK and face.get("verdict") == "match"


def allowed_ship_modes(order: Order) -> list[str]:
    modes = [ShipMode.SHIP_INACTIVE.value]
    if door_activation_allowed(order):
        modes.append(ShipMode.ACTIVATE_ON_HANDOVER.value)
    return modes


def clean_reason(reason: str) -> str:
    text = " ".join(reason.split())
    if not text:
        raise Unprocessable("reason: say why (free text)", code="review.reason_required")
    return mask_text(text[:MAX_REASON])


def _not_pending(order: Order) -> Conflict:
    if review_marker(order) is not None:
        return Conflict(f"order {order.id} was reviewed already", code="review.already_reviewed")
    if order.cancelled_at is not None:
        return Conflict(f"order {order.id} was cancelled", code="review.not_pending")
    return Conflict(
        f"order {order.id} is {order.outcome or order.status}, not needs_review",
        code="review.not_pending",
    )


def _holder(settings: Settings, order: Order) -> str:
    """Whose card it becomes (R2): the number read, else the number the agent typed,
    which the reviewer has just compared with the card in the photos."""
    if order.id_hash:
        return order.id_hash
    declared = json.loads(open_text(settings.blob_key_bytes, order.declared_enc, order.id))
    return id_hash(settings.id_hash_key, str(declared["id_number"]))


def _approve(
    session: Session, settings: Settings, order: Order, ship_mode: ShipMode, holder: str
) -> None:
    agent = session.get(Agent, order.agent_id)
    if agent is not None and agent.status != "active":
        raise Conflict(f"agent {agent.id} is {agent.status}", code=f"agent.{agent.status}")
    limit = Policy(version=settings.policy_version).card_limit
    cards = inventory.count_cards(session, holder, order.province, order.agent_id)
    if max(cards.in_province, cards.at_reseller) >= limit:
        raise Conflict(
            f"this ID holds {limit} or more cards already (R2): a store visit is needed",
            code="review.card_limit",
        )
    _hold_number(session, order)
    sim_to = {
        ShipMode.ACTIVATE_ON_HANDOVER: SimStatus.AWAITING_HANDOVER,
        ShipMode.SHIP_INACTIVE: SimStatus.SHIPPED_INACTIVE,
    }[ship_mode]
    inventory.transition(session, order.id, sim_to, holder_id_hash=holder)
    if ship_mode == ShipMode.SHIP_INACTIVE:
        inventory.issue_activation_code(session, order.id, settings.blob_key_bytes)


def _holds_number(session: Session, order: Order) -> bool:
    found = session.scalar(
        select(Sim.iccid).where(
            Sim.order_id == order.id,
            Sim.msisdn == order.msisdn,
            Sim.status == SimStatus.RESERVED.value,
        )
    )
    return found is not None


def _hold_number(session: Session, order: Order) -> None:
    """The order's number, reserved for it: held since the needs_review decision, or
    (an order decided before numbers were held) reserved again now."""
    if _holds_number(session, order):
        return
    if not inventory.reserve(session, order.msisdn, order.id, order.agent_id):
        raise Conflict(
            f"msisdn {order.msisdn} was taken by another order meanwhile",
            code="order.msisdn_unavailable",
        )


def _lookup_required(order: Order) -> Conflict:
    return Conflict(
        f"order {order.id}: the national ID lookup did not confirm this identity (R5); "
        "re-run the checks or reject",
        code="review.lookup_required",
    )


def review_order(
    sessions: sessionmaker[Session],
    settings: Settings,
    order_id: str,
    *,
    decision: ReviewChoice,
    reason: str,
    reviewer: str,
    ship_mode: str | None = None,
) -> ReviewResult:
    """Record a reviewer's decision on a ``needs_review`` order (see the module doc);
    raises NotFound, Conflict or Unprocessable (nothing is written then)."""
    text = clean_reason(reason)
    with sessions() as session:
        order = session.get(Order, order_id)
    if order is None:
        raise NotFound(f"no order {order_id}", code="order.not_found")
    if not reviewable(order):
        raise _not_pending(order)
    mode: ShipMode | None = None
    if decision == "approve":
        if not lookup_confirmed(order):
            raise _lookup_required(order)
        mode = ShipMode(ship_mode or ShipMode.SHIP_INACTIVE.value)
        if mode.value not in allowed_ship_modes(order):
            raise Unprocessable(
                "activate_on_handover needs a door-check delivery and a confident face "
                "match; approve with ship_inactive (the video check activates)",
                code="review.ship_mode_not_allowed",
            )
    elif ship_mode is not None:
        raise Unprocessable("a rejected order ships nothing", code="review.ship_mode_not_allowed")
    outcome = Outcome.APPROVED if decision == "approve" else Outcome.REJECTED
    holder = _holder(settings, order) if decision == "approve" else None
    previous = order.outcome
    for _ in range(audit.MAX_RACES):
        now = utcnow()
        marker = {
            "decision": decision,
            "reason": text,
            "reviewer": reviewer,
            "reviewed_at": now.isoformat(),
            "previous_outcome": previous,
            "machine_decided_at": order.decided_at.isoformat() if order.decided_at else None,
        }
        reasons = {**(order.reasons or {}), "review": marker}
        webhook_id: str | None = None
        try:
            with sessions() as session, session.begin():
                res = session.execute(
                    update(Order)
                    .where(
                        Order.id == order.id,
                        Order.status == OrderStatus.DECIDED.value,
                        Order.outcome == Outcome.NEEDS_REVIEW.value,
                        Order.cancelled_at.is_(None),
                    )
                    .values(
                        outcome=outcome.value,
                        ship_mode=mode.value if mode else None,
                        reasons=reasons,
                        decided_at=now,
                        updated_at=now,
                    )
                )
                if not res.rowcount:  # type: ignore[attr-defined]
                    current = session.get(Order, order.id)
                    assert current is not None
                    raise _not_pending(current)
                if mode is not None and holder is not None:
                    _approve(session, settings, order, mode, holder)
                else:
                    # The number held while a person looked goes back to the inventory.
                    inventory.transition(session, order.id, SimStatus.AVAILABLE)
                audit.append(
                    session,
                    kind="order.reviewed",
                    subject=order.id,
                    actor=reviewer,
                    payload={
                        "decision": decision,
                        "reason": text,
                        "reviewer": reviewer,
                        "previous_outcome": previous,
                        "outcome": outcome.value,
                        "ship_mode": mode.value if mode else None,
                        "reasons": list((order.reasons or {}).get("reasons", [])),
                        "id_number": order.id_number_masked or order.declared_number_masked,
                    },
                )
                if order.callback_url:
                    seed = f"{order.id}/review".encode()
                    webhook_id = "whk_" + hashlib.sha256(seed).hexdigest()[:24]
                    body = {
                        "event": "order.decided",
                        "order_id": order.id,
                        "outcome": outcome.value,
                        "ship_mode": mode.value if mode else None,
                        "reasons": list((order.reasons or {}).get("reasons", [])),
                        "decided_at": now.isoformat(),
                        "review": {
                            "decision": decision,
                            "previous_outcome": previous,
                            "reviewed_at": now.isoformat(),
                        },
                    }
                    session.add(
                        WebhookDelivery(
                            id=webhook_id,
                            order_id=order.id,
                            event="order.decided",
                            url=order.callback_url,
                            body=json.dumps(body, ensure_ascii=False, sort_keys=True),
                        )
                    )
            break
        except IntegrityError:
            continue  # lost the audit seq race: replay the whole transaction
    else:
        raise RuntimeError(f"order {order.id}: could not record the review (audit races)")
    log.info("order %s reviewed by %s: %s", order.id, reviewer, outcome.value)
    return ReviewResult(order.id, outcome.value, mode.value if mode else None, webhook_id)


def recheck_order(
    sessions: sessionmaker[Session],
    order_id: str,
    *,
    reason: str,
    reviewer: str,
) -> RecheckResult:
    """Send a ``needs_review`` order, not reviewed yet, back to the worker's checking
    step (see the module doc). The caller enqueues the check step after this returns
    (a lost message is picked up by the sweeper: the order is ``checking`` and touched
    now). Raises NotFound, Conflict or Unprocessable (nothing is written then)."""
    text = clean_reason(reason)
    with sessions() as session:
        order = session.get(Order, order_id)
        has_reading = (
            session.scalar(
                select(Blob.id).where(Blob.order_id == order_id, Blob.role == EVIDENCE_ROLE)
            )
            is not None
        )
    if order is None:
        raise NotFound(f"no order {order_id}", code="order.not_found")
    if not reviewable(order):
        raise _not_pending(order)
    history = rechecks_of(order)
    if len(history) >= MAX_RECHECKS:
        raise Conflict(
            f"order {order.id} was sent back to the checks {len(history)} times already; "
            "approve or reject it",
            code="review.too_many_rechecks",
        )
    if not has_reading:
        raise Conflict(
            f"order {order.id} has no stored reading of its images to check again",
            code="review.no_reading",
        )
    previous = list((order.reasons or {}).get("reasons") or [])
    for _ in range(audit.MAX_RACES):
        now = utcnow()
        entry = {
            "by": reviewer,
            "reason": text,
            "at": now.isoformat(),
            "previous_reasons": previous,
        }
        try:
            with sessions() as session, session.begin():
                res = session.execute(
                    update(Order)
                    .where(
                        Order.id == order.id,
                        Order.status == OrderStatus.DECIDED.value,
                        Order.outcome == Outcome.NEEDS_REVIEW.value,
                        Order.cancelled_at.is_(None),
                        # The decision read above, not a later one: the history written
                        # here is built on it.
                        Order.decided_at == order.decided_at,
                    )
                    .values(
                        status=OrderStatus.CHECKING.value,
                        outcome=None,
                        ship_mode=None,
                        decided_at=None,
                        reasons={"rechecks": [*history, entry]},
                        updated_at=now,
                    )
                )
                if not res.rowcount:  # type: ignore[attr-defined]
                    current = session.get(Order, order.id)
                    assert current is not None
                    if reviewable(current):  # decided again meanwhile: read it afresh
                        raise Conflict(
                            f"order {order.id} changed meanwhile; reload it",
                            code="review.not_pending",
                        )
                    raise _not_pending(current)
                _hold_number(session, order)
                audit.append(
                    session,
                    kind="order.recheck",
                    subject=order.id,
                    actor=reviewer,
                    payload={"reason": text, "reviewer": reviewer, "previous_reasons": previous},
                )
            break
        except IntegrityError:
            continue  # lost the audit seq race: replay the whole transaction
    else:
        raise RuntimeError(f"order {order.id}: could not record the recheck (audit races)")
    log.info("order %s sent back to the checks by %s", order.id, reviewer)
    return RecheckResult(order.id, OrderStatus.CHECKING.value, len(history) + 1)
